"""Pooling: token embeddings [B, T, H] -> sentence embedding [B, M * H], as sentence-transformers' Pooling.

Modes (several are concatenated in the configured order; m = the attention mask, 1 for real tokens):

- cls:                  x[b, first t with m = 1]
- max:                  max over t with m = 1 (-inf where a row has no token)
- mean:                 sum_t m x / max(sum_t m, 1e-9)
- mean_sqrt_len_tokens: sum_t m x / sqrt(max(sum_t m, 1e-9))
- weightedmean:         sum_t w_t m x / max(sum_t w_t m, 1e-9), w_t = t + 1 - (index of the first real token)
- lasttoken:            (m x)[b, last t with m = 1] (position T - 1 when a row has no token)

`include_prompt=False` drops the first `prompt_length` real tokens of every row from the mask (the
`prompt_length` feature, set by encode when a prompt is used) before pooling; weightedmean keeps the
remaining tokens' original weights. Pooling accumulates in float32 and returns float32, whatever the
token dtype (sentence-transformers casts bfloat16 inputs' result back to bfloat16; jaxst keeps float32).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from jaxst.io.st_format import check_positive_int, check_type, read_json_object

POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")

# The legacy boolean config keys, in the order their modes are concatenated.
LEGACY_MODE_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
MASK_DENOMINATOR_MIN = 1e-9


@dataclasses.dataclass(frozen=True, init=False)
class Pooling:
    """sentence-transformers' Pooling module: a pure function of the features, with no parameters.

    Built with sentence-transformers' arguments: `Pooling(384)`, `Pooling(384, pooling_mode="cls")`,
    `Pooling(word_embedding_dimension=384, pooling_mode_mean_tokens=True)` (its former names).

    Args:
        embedding_dimension: H, the token embedding size (`word_embedding_dimension`, its former name).
        pooling_mode: a mode or several, concatenated in this order (default "mean"; see the module doc).
        include_prompt: False to leave the prompt tokens out of the pooled tokens.
        legacy_modes: the former booleans `pooling_mode_cls_token`, `pooling_mode_max_tokens`, ...
            (LEGACY_MODE_KEYS): the true ones select their modes in the legacy order (mean when none is);
            `pooling_mode`, when given, wins over them.

    Raises:
        ValueError: an unknown mode or argument, or a value of the wrong type (naming it).
    """

    embedding_dimension: int
    pooling_mode: tuple[str, ...]
    include_prompt: bool

    type_ref = "sentence_transformers.sentence_transformer.modules.pooling.Pooling"

    def __init__(
        self,
        embedding_dimension: int | None = None,
        pooling_mode: str | tuple[str, ...] | list[str] | None = None,
        include_prompt: bool = True,
        *,
        word_embedding_dimension: int | None = None,
        **legacy_modes: bool,
    ) -> None:
        if unknown := sorted(set(legacy_modes) - set(LEGACY_MODE_KEYS)):
            raise ValueError(
                f"Unknown Pooling argument(s) {unknown}; jaxst knows embedding_dimension, pooling_mode, "
                f"include_prompt, word_embedding_dimension and {sorted(LEGACY_MODE_KEYS)}."
            )
        legacy = {key: check_type(key, value, bool) for key, value in legacy_modes.items()}
        if pooling_mode is None:
            chosen = tuple(mode for key, mode in LEGACY_MODE_KEYS.items() if legacy.get(key))
            pooling_mode = chosen or ("mean",)
        if embedding_dimension is None:
            embedding_dimension = word_embedding_dimension
        object.__setattr__(self, "embedding_dimension", embedding_dimension)
        object.__setattr__(self, "pooling_mode", pooling_mode)
        object.__setattr__(self, "include_prompt", include_prompt)
        self.__post_init__()

    def __post_init__(self) -> None:
        check_positive_int("embedding_dimension", self.embedding_dimension)
        check_type("pooling_mode", self.pooling_mode, str, list, tuple)
        check_type("include_prompt", self.include_prompt, bool)
        modes = (self.pooling_mode,) if isinstance(self.pooling_mode, str) else tuple(self.pooling_mode)
        if not modes:
            raise ValueError(f"Pooling needs at least one pooling mode; valid modes are {POOLING_MODES}.")
        for mode in modes:
            if mode not in POOLING_MODES:
                raise ValueError(f"Invalid pooling mode {mode!r}. Valid pooling modes are: {POOLING_MODES}.")
        object.__setattr__(self, "pooling_mode", modes)

    @property
    def output_dimension(self) -> int:
        """M * H: the size of the concatenated sentence embedding."""
        return len(self.pooling_mode) * self.embedding_dimension

    def get_embedding_dimension(self) -> int:
        """M * H, as sentence-transformers' Pooling names it."""
        return self.output_dimension

    get_sentence_embedding_dimension = get_embedding_dimension

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Pooling:
        """Builds from either config format: `pooling_mode` (a name or a list) or the legacy booleans.

        `word_embedding_dimension` is the legacy name of `embedding_dimension` (which wins when both are).

        Raises:
            ValueError: for an unknown key or mode, or a value of the wrong type (naming its key).
        """
        known = {"embedding_dimension", "word_embedding_dimension", "pooling_mode", "include_prompt"}
        if unknown := sorted(set(config) - known - set(LEGACY_MODE_KEYS)):
            raise ValueError(f"Unknown Pooling config key(s) {unknown}; jaxst knows {sorted(known)}.")
        return cls(**config)

    @classmethod
    def load(cls, folder: str | Path) -> Pooling:
        """Reads `config.json` of a saved Pooling module folder.

        Raises:
            ValueError: naming the file, for invalid JSON or a config `from_config` refuses.
        """
        path = Path(folder) / "config.json"
        config = read_json_object(path)
        try:
            return cls.from_config(config)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from error

    def __repr__(self) -> str:
        """As sentence-transformers prints the module: `Kind({config})`."""
        return f"{type(self).__name__}({self.get_config_dict()})"

    def get_config_dict(self) -> dict[str, Any]:
        """The config sentence-transformers 6 keeps: one mode as a name, several as a tuple (a JSON list)."""
        modes = self.pooling_mode[0] if len(self.pooling_mode) == 1 else self.pooling_mode
        return {
            "embedding_dimension": self.embedding_dimension,
            "pooling_mode": modes,
            "include_prompt": self.include_prompt,
        }

    def save(self, folder: str | Path, params: None = None) -> None:
        """Writes `config.json` into `folder` (Pooling has no weights)."""
        with open(Path(folder) / "config.json", "w", encoding="utf-8") as f:
            json.dump(self.get_config_dict(), f, indent=4)

    def __call__(self, params: None, features: dict[str, jax.Array]) -> dict[str, jax.Array]:
        """Adds "sentence_embedding" [B, M * H] float32 to the features.

        Reads "token_embeddings" [B, T, H], "attention_mask" [B, T] (all ones when absent) and, with
        include_prompt=False, "prompt_length" (a scalar int).
        """
        tokens = features["token_embeddings"]
        batch, length, _ = tokens.shape
        mask = features.get("attention_mask")
        if mask is None or mask.shape[-1] != length:
            mask = jnp.ones((batch, length), jnp.int32)
        mask = mask.astype(jnp.int32)
        first_real = jnp.argmax(mask, axis=1)
        positions = jnp.arange(length)[None, :]
        if not self.include_prompt and "prompt_length" in features:
            prompt_end = first_real + jnp.asarray(features["prompt_length"], jnp.int32)
            mask = jnp.where(positions < prompt_end[:, None], 0, mask)

        tokens = tokens.astype(jnp.float32)
        mask_f = mask[:, :, None].astype(jnp.float32)
        pooled = []
        for mode in self.pooling_mode:
            if mode == "cls":
                index = jnp.argmax(mask, axis=1)
                pooled.append(jnp.take_along_axis(tokens, index[:, None, None], axis=1)[:, 0])
            elif mode == "max":
                pooled.append(jnp.max(jnp.where(mask_f > 0, tokens, -jnp.inf), axis=1))
            elif mode in ("mean", "mean_sqrt_len_tokens"):
                total = jnp.sum(tokens * mask_f, axis=1)
                count = jnp.maximum(jnp.sum(mask_f, axis=1), MASK_DENOMINATOR_MIN)
                pooled.append(total / (count if mode == "mean" else jnp.sqrt(count)))
            elif mode == "weightedmean":
                weights = (positions + 1 - first_real[:, None]).astype(jnp.float32)
                weighted_mask = mask_f * weights[:, :, None]
                total = jnp.sum(tokens * weighted_mask, axis=1)
                pooled.append(total / jnp.maximum(jnp.sum(weighted_mask, axis=1), MASK_DENOMINATOR_MIN))
            else:  # lasttoken
                flipped = mask[:, ::-1]
                from_end = jnp.where(jnp.max(flipped, axis=1) == 0, length - 1, jnp.argmax(flipped, axis=1))
                index = length - 1 - from_end
                pooled.append(jnp.take_along_axis(tokens * mask_f, index[:, None, None], axis=1)[:, 0])
        return {**features, "sentence_embedding": jnp.concatenate(pooled, axis=-1)}
