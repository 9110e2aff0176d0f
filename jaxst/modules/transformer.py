"""The host side of sentence-transformers' Transformer module: its config and the tokenizer.

The encoder itself is a Flax module from `jaxst.models` (the two together make the Transformer module,
`jaxst.modules.hf_transformer`); `TransformerTokenizer` owns what happens before the encoder:
reading `sentence_bert_config.json` (or its legacy names), loading the model's fast tokenizer, the
maximum sequence length and lower-casing, and tokenizing texts into compact unpadded arrays.

Sequence length, as sentence-transformers sets it: `max_seq_length` from the config, when given, becomes
the tokenizer's `model_max_length` (a `model_max_length` in the tokenizer kwargs wins); otherwise the
tokenizer's own `model_max_length` is capped at the encoder's positions. Texts longer than
`max_seq_length` tokens are truncated (special tokens kept). The positions are the encoder's usable
ones: `max_position_embeddings` for BERT, DistilBERT and Qwen3, `max_position_embeddings - padding_idx - 1`
for RoBERTa, XLM-R and MPNet, whose positions start after the padding index (sentence-transformers caps at
`max_position_embeddings`, which lets such a model fail on its longest texts). A `max_seq_length` or
`model_max_length` given explicitly (config, tokenizer kwargs, setter) is never capped: one above the
positions, or not an integer >= 2, is an error naming both numbers.

A decoder's tokenizer (Qwen3-Embedding's) takes no token type ids, may pad on the left, and may append
an end token through its post-processor (Qwen3-Embedding pads with that same token). jaxst tokenizes
without padding, so each text keeps its appended token (truncation keeps it too, as the tokenizer's
template does), and pads on the right itself: a rotary model's outputs depend on relative positions
only, and last-token pooling finds the last real token on either side.

The tokenizer must come with its vocabulary: `tokenizer.json`, or the files its class reads
(`vocab.txt` for BERT; `vocab.json` and `merges.txt` for RoBERTa, `sentencepiece.bpe.model` for XLM-R).
transformers builds a tokenizer without them, one that turns every word into the unknown token, so
`TransformerTokenizer.load` refuses such a folder. File paths in the tokenizer kwargs (`tokenizer_file`,
`vocab_file`, ...) are read relative to the module folder and must resolve inside it.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers.normalizers import Lowercase
from tokenizers.normalizers import Sequence as NormalizerSequence
from transformers import PreTrainedTokenizerBase

from jaxst.io.st_format import check_type, path_inside, read_json_object
from jaxst.modules.tokenizer_class import load_tokenizer

CONFIG_FILE_NAMES = (
    "sentence_bert_config.json",
    "sentence_roberta_config.json",
    "sentence_distilbert_config.json",
    "sentence_camembert_config.json",
    "sentence_albert_config.json",
    "sentence_xlm-roberta_config.json",
    "sentence_xlnet_config.json",
)
TEXT_MODALITY = {"text": {"method": "forward", "method_output_name": "last_hidden_state"}}
# What sentence-transformers 6 writes to sentence_bert_config.json for a text feature-extraction model.
SAVED_CONFIG = {
    "transformer_task": "feature-extraction",
    "modality_config": TEXT_MODALITY,
    "module_output_name": "token_embeddings",
}
# Config values jaxst accepts only at these settings (they select what the module computes).
REQUIRED_VALUES: dict[str, Any] = {
    **SAVED_CONFIG,
    "query_length": None,
    "document_length": None,
    "query_expansion": None,
    "processing_kwargs": {},
    "config_kwargs": {},
    "config_args": {},
}
# Torch-side loading options with no meaning for jaxst.
IGNORED_KEYS = {"model_kwargs", "model_args", "unpad_inputs", "backend"}
TOKENIZER_KEYS = ("processor_kwargs", "tokenizer_args")
# Hub / loading options the tokenizer must not receive.
HUB_KEYS = {"trust_remote_code", "token", "revision", "cache_dir", "local_files_only", "subfolder"}
# Tokenizer kwargs that name files (besides those ending in "_file"): a vocabulary or merges file.
PATH_KWARGS = {"vocab", "merges"}
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
TOKENIZE_CHUNK = 1024  # texts per tokenizer call: bounds the Python lists alive at once


def find_transformer_config(folder: str | Path) -> Path | None:
    """The first Transformer config file (CONFIG_FILE_NAMES) in `folder`, or None (a Hugging Face folder)."""
    return next((Path(folder) / name for name in CONFIG_FILE_NAMES if (Path(folder) / name).is_file()), None)


def read_transformer_config(path: Path) -> dict[str, Any]:
    """The module config in the Transformer config file `path`.

    Raises:
        ValueError: naming the file, for invalid JSON, an unknown key, a setting that jaxst does not
            implement, or a value of the wrong type (do_lower_case not a bool, tokenizer kwargs not an
            object).
    """
    config = read_json_object(path)
    known = {"max_seq_length", "do_lower_case", *REQUIRED_VALUES, *IGNORED_KEYS, *TOKENIZER_KEYS}
    if unknown := sorted(set(config) - known):
        raise ValueError(
            f"Unknown Transformer config key(s) {unknown} in {path}; jaxst knows {sorted(known)}."
        )
    for key, required in REQUIRED_VALUES.items():
        if key in config and (config[key] or None) != (required or None):
            raise ValueError(
                f"{path}: {key}={config[key]!r} is not supported by jaxst (it supports {required!r} only)."
            )
    try:
        check_type("do_lower_case", config.get("do_lower_case", False), bool)
        for key in TOKENIZER_KEYS:
            check_type(key, config.get(key, {}), dict)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error
    return config


def check_max_seq_length(value: Any, max_positions: int, name: str = "max_seq_length") -> int:
    """`value` when it is an int from 2 to the encoder's usable positions.

    Raises:
        ValueError: naming `name`, the value and `max_positions`, otherwise.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise ValueError(
            f"{name} must be an integer from 2 to the model's {max_positions} positions, "
            f"got {type(value).__name__} {value!r:.80}."
        )
    if value > max_positions:
        raise ValueError(f"{name} {value} exceeds the model's {max_positions} positions.")
    return value


def tokenizer_kwargs_from(config: dict[str, Any], folder: Path, config_path: Path | None) -> dict[str, Any]:
    """The kwargs for the tokenizer: `tokenizer_args` then `processor_kwargs`, without hub options, with
    file paths (PATH_KWARGS and keys ending in "_file") resolved inside the module folder."""
    kwargs: dict[str, Any] = {}
    for key in TOKENIZER_KEYS:
        kwargs.update({k: v for k, v in config.get(key, {}).items() if k not in HUB_KEYS})
    for key, value in kwargs.items():
        if isinstance(value, str) and (key.endswith("_file") or key in PATH_KWARGS):
            kwargs[key] = str(path_inside(folder, value, f"{config_path}: tokenizer argument {key!r} ="))
    return kwargs


def check_vocabulary_files(tokenizer: PreTrainedTokenizerBase, folder: Path, kwargs: dict[str, Any]) -> None:
    """Checks that the files the tokenizer class builds its vocabulary from are there.

    They are `tokenizer.json`, or all the other files of the class' `vocab_files_names` (e.g. vocab.txt;
    vocab.json and merges.txt), at their names in `folder` or at the paths the kwargs give.

    Raises:
        FileNotFoundError: naming the folder, the tokenizer class and the files it needs.
    """
    names = dict(type(tokenizer).vocab_files_names)
    if not names or "vocab" in kwargs:
        return

    def found(key: str) -> bool:
        return (folder / (kwargs.get(key) or names[key])).is_file()

    if "tokenizer_file" in names and found("tokenizer_file"):
        return
    others = [key for key in names if key != "tokenizer_file"]
    if others and all(found(key) for key in others):
        return
    needed = [names["tokenizer_file"]] if "tokenizer_file" in names else []
    needed += [" and ".join(kwargs.get(key) or names[key] for key in others)] if others else []
    raise FileNotFoundError(
        f"{folder} has no vocabulary for its {type(tokenizer).__name__}: it needs {' or '.join(needed)}. "
        "Without them every word would become the unknown token."
    )


@dataclasses.dataclass(frozen=True)
class Tokenized:
    """Token ids of N texts, unpadded and stored flat: text i is `ids[offsets[i]:offsets[i + 1]]`.

    Attributes:
        ids: [sum of lengths] int32 token ids.
        type_ids: [sum of lengths] int32 token type ids, or None when the model takes none.
        offsets: [N + 1] int64 start of each text in `ids`.
    """

    ids: np.ndarray
    type_ids: np.ndarray | None
    offsets: np.ndarray

    @property
    def lengths(self) -> np.ndarray:
        """[N] number of tokens of each text."""
        return np.diff(self.offsets)

    def padded(self, indices: np.ndarray, rows: int, length: int, pad_id: int) -> dict[str, np.ndarray]:
        """Texts `indices` as right-padded int32 arrays [rows, length]; rows past len(indices) are padding.

        Returns input_ids (padded with `pad_id`), attention_mask and (when the model takes them)
        token_type_ids (padded with 0).
        """
        lengths = self.lengths[indices]
        mask = np.zeros((rows, length), bool)
        mask[: len(indices)] = np.arange(length)[None, :] < lengths[:, None]
        gather = np.zeros((rows, length), np.int64)
        gather[: len(indices)] = self.offsets[indices][:, None] + np.arange(length)[None, :]
        gather = np.where(mask, gather, 0)
        features = {
            "input_ids": _gather(self.ids, gather, mask, pad_id),
            "attention_mask": mask.astype(np.int32),
        }
        if self.type_ids is not None:
            features["token_type_ids"] = _gather(self.type_ids, gather, mask, 0)
        return features


class TransformerTokenizer:
    """Tokenizer and sequence-length settings of a sentence-transformers Transformer module.

    Attributes:
        tokenizer: the model's fast Hugging Face tokenizer; its `model_max_length` is `max_seq_length`.
        max_positions: the encoder's usable positions, the largest `max_seq_length`.
        do_lower_case: whether a Lowercase normalizer was added to the tokenizer (saved with it).
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        max_positions: int,
        do_lower_case: bool = False,
        takes_token_type_ids: bool = True,
    ):
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError(f"jaxst needs a fast tokenizer; {type(tokenizer).__name__} is not one.")
        self.tokenizer = tokenizer
        self.max_positions = max_positions
        check_max_seq_length(self.max_seq_length, max_positions)
        self.do_lower_case = do_lower_case
        self.takes_token_type_ids = takes_token_type_ids
        if do_lower_case:
            normalizer = tokenizer.backend_tokenizer.normalizer
            if not _has_lowercase(normalizer):
                extra = list(normalizer) if isinstance(normalizer, NormalizerSequence) else [normalizer]
                tokenizer.backend_tokenizer.normalizer = NormalizerSequence(
                    [Lowercase()] + [n for n in extra if n is not None]
                )

    @classmethod
    def load(cls, folder: str | Path, max_positions: int, takes_token_type_ids: bool) -> TransformerTokenizer:
        """Loads the config (`sentence_bert_config.json` or a legacy name) and tokenizer saved in `folder`.

        Args:
            folder: the module folder (the model root for sentence-transformers folders).
            max_positions: the encoder's usable positions (`embeddings.max_length`), the largest
                max_seq_length; the tokenizer's own `model_max_length` is capped at it.
            takes_token_type_ids: whether the encoder has token type embeddings.

        Raises:
            ValueError: naming the file and key, for a bad config (see `read_transformer_config`), and as
                `build`.
            FileNotFoundError: when the tokenizer's vocabulary files are missing.
        """
        folder = Path(folder)
        config_path = find_transformer_config(folder)
        config = {} if config_path is None else read_transformer_config(config_path)
        return cls.build(
            folder,
            max_positions,
            takes_token_type_ids,
            max_seq_length=config.get("max_seq_length"),
            do_lower_case=config.get("do_lower_case", False),
            tokenizer_kwargs=tokenizer_kwargs_from(config, folder, config_path),
            source=config_path,
        )

    @classmethod
    def build(
        cls,
        folder: Path,
        max_positions: int,
        takes_token_type_ids: bool,
        *,
        max_seq_length: int | None = None,
        do_lower_case: bool = False,
        tokenizer_kwargs: dict[str, Any] | None = None,
        source: Path | None = None,
    ) -> TransformerTokenizer:
        """Loads the tokenizer of `folder` with explicit settings, as sentence-transformers' Transformer.

        `max_seq_length`, when given, becomes the tokenizer's `model_max_length` (one in
        `tokenizer_kwargs` wins); otherwise the tokenizer's own is capped at `max_positions`.

        Raises:
            ValueError: naming `source` (the settings' file, else the folder), for a max_seq_length or
                model_max_length that is not an integer from 2 to `max_positions`, or a tokenizer that
                does not load.
            FileNotFoundError: when the tokenizer's vocabulary files are missing.
        """
        tokenizer_kwargs = dict(tokenizer_kwargs or {})
        try:
            if max_seq_length is not None:
                check_max_seq_length(max_seq_length, max_positions)
            if "model_max_length" in tokenizer_kwargs:
                check_max_seq_length(tokenizer_kwargs["model_max_length"], max_positions, "model_max_length")
        except ValueError as error:
            raise ValueError(f"{source or folder}: {error}") from error
        if max_seq_length is not None:
            tokenizer_kwargs.setdefault("model_max_length", max_seq_length)
        try:
            tokenizer = load_tokenizer(Path(folder), tokenizer_kwargs)
        except (OSError, TypeError, ValueError) as error:
            raise ValueError(f"Could not load a tokenizer from {folder}: {error}") from error
        check_vocabulary_files(tokenizer, folder, tokenizer_kwargs)
        if "model_max_length" not in tokenizer_kwargs:
            own = tokenizer.model_max_length
            if isinstance(own, bool) or not isinstance(own, int) or own < 2:
                raise ValueError(
                    f"{folder / TOKENIZER_CONFIG_FILE}: 'model_max_length' must be an integer >= 2, "
                    f"got {type(own).__name__} {own!r:.80}."
                )
            tokenizer.model_max_length = min(own, max_positions)
        return cls(tokenizer, max_positions, do_lower_case, takes_token_type_ids)

    @property
    def max_seq_length(self) -> int:
        """Texts are truncated to this many tokens (the tokenizer's `model_max_length`)."""
        return int(self.tokenizer.model_max_length)

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        self.tokenizer.model_max_length = check_max_seq_length(value, self.max_positions)

    @property
    def uses_token_type_ids(self) -> bool:
        """Whether token_type_ids are fed: the tokenizer makes them and the encoder takes them."""
        return self.takes_token_type_ids and "token_type_ids" in self.tokenizer.model_input_names

    @property
    def pad_token_id(self) -> int:
        return 0 if self.tokenizer.pad_token_id is None else int(self.tokenizer.pad_token_id)

    def tokenize(self, texts: Sequence[str]) -> Tokenized:
        """Tokenizes texts with special tokens, truncated to `max_seq_length`, into a `Tokenized`."""
        lengths, ids, type_ids = [np.zeros(1, np.int64)], [], []
        for start in range(0, len(texts), TOKENIZE_CHUNK):
            encoded = self.tokenizer(
                list(texts[start : start + TOKENIZE_CHUNK]),
                truncation="longest_first",
                max_length=self.max_seq_length,
                padding=False,
                return_attention_mask=False,
                return_token_type_ids=self.uses_token_type_ids,
            )
            chunk_lengths = np.fromiter(map(len, encoded["input_ids"]), np.int64, len(encoded["input_ids"]))
            lengths.append(chunk_lengths)
            ids.append(_flatten(encoded["input_ids"], int(chunk_lengths.sum())))
            if self.uses_token_type_ids:
                type_ids.append(_flatten(encoded["token_type_ids"], int(chunk_lengths.sum())))
        return Tokenized(
            ids=np.concatenate(ids) if ids else np.zeros(0, np.int32),
            type_ids=(np.concatenate(type_ids) if type_ids else np.zeros(0, np.int32))
            if self.uses_token_type_ids
            else None,
            offsets=np.cumsum(np.concatenate(lengths)),
        )

    def prompt_length(self, prompt: str) -> int:
        """Tokens the prompt adds at the start of a text: its tokens without a trailing special token."""
        ids = self.tokenize([prompt]).ids
        return len(ids) - int(len(ids) > 0 and int(ids[-1]) in set(self.tokenizer.all_special_ids))

    def save(self, folder: str | Path) -> None:
        """Writes the tokenizer files (with `model_max_length`) and `sentence_bert_config.json`."""
        self.tokenizer.save_pretrained(str(folder))
        with open(Path(folder) / "sentence_bert_config.json", "w", encoding="utf-8") as f:
            json.dump(SAVED_CONFIG, f, indent=4)


def _gather(flat: np.ndarray, gather: np.ndarray, mask: np.ndarray, fill: int) -> np.ndarray:
    values = flat[gather] if flat.size else np.zeros(mask.shape, np.int32)
    return np.where(mask, values, fill).astype(np.int32)


def _flatten(rows: list[list[int]], total: int) -> np.ndarray:
    return np.fromiter(itertools.chain.from_iterable(rows), np.int32, total)


def _has_lowercase(normalizer: Any) -> bool:
    if isinstance(normalizer, Lowercase):
        return True
    return isinstance(normalizer, NormalizerSequence) and any(isinstance(n, Lowercase) for n in normalizer)
