"""LoraConfig: PEFT's LoRA options, by PEFT's names and defaults, and PEFT's adapter_config.json.

jaxst implements the options of plain LoRA on linear layers (see `LoraConfig`). Every other option of
peft's `LoraConfig` (DoRA, modules_to_save, rank / alpha patterns, ...) is accepted only at PEFT's
default and otherwise refused with an error naming it, whether it comes as an argument or from an
adapter_config.json.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ADAPTER_CONFIG_FILE = "adapter_config.json"
# peft's TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING, for the model types jaxst loads. PEFT has no
# default for the others (distilbert, mpnet, modernbert): they need explicit target_modules.
DEFAULT_TARGET_MODULES: dict[str, tuple[str, ...]] = {
    "bert": ("query", "value"),
    "roberta": ("query", "value"),
    "xlm-roberta": ("query", "value"),
    "t5": ("q", "v"),
    "mt5": ("q", "v"),
    "qwen3": ("q_proj", "v_proj"),
    "gemma3_text": ("q_proj", "v_proj"),
}
INIT_CHOICES = (True, False, "gaussian")
# PEFT 0.21's LoraConfig options that jaxst does not implement, at their defaults (the only accepted value).
UNSUPPORTED_DEFAULTS: dict[str, Any] = {
    "fan_in_fan_out": False,
    "modules_to_save": None,
    "layers_to_transform": None,
    "layers_pattern": None,
    "rank_pattern": {},
    "alpha_pattern": {},
    "megatron_config": None,
    "megatron_core": "megatron.core",
    "trainable_token_indices": None,
    "loftq_config": {},
    "eva_config": None,
    "corda_config": None,
    "lora_ga_config": None,
    "use_dora": False,
    "velora_config": None,
    "alora_invocation_tokens": None,
    "use_qalora": False,
    "qalora_group_size": 16,
    "monteclora_config": None,
    "layer_replication": None,
    "lora_bias": False,
    "target_parameters": None,
    "use_bdlora": None,
    "arrow_config": None,
    "kasa_config": None,
    "ensure_weight_tying": False,
}
# adapter_config.json entries that describe the file, not the adapter's computation.
METADATA_KEYS = ("peft_type", "task_type", "base_model_name_or_path", "revision", "inference_mode")
METADATA_IGNORED = ("auto_mapping", "peft_version", "runtime_config")


@dataclasses.dataclass(frozen=True, init=False)
class LoraConfig:
    """A LoRA adapter's options, with peft's `LoraConfig` names, defaults and meaning.

    A targeted linear layer y = x W + b becomes y = x W + b + scaling * (dropout(x) A) B, A [in, r],
    B [r, out] (PEFT stores their transposes, lora_A.weight [r, in] and lora_B.weight [out, r]).

    Attributes:
        r: the rank (default 8).
        lora_alpha: scaling = lora_alpha / r, or lora_alpha / sqrt(r) with `use_rslora` (default 8).
        lora_dropout: dropout rate on the input of A in training (default 0.0).
        target_modules: the linear layers to adapt, by their transformers module names: a list matches a
            name equal to an entry or ending in "." + entry; a string is a regular expression the whole
            name must match; "all-linear" takes every linear layer of the encoder. None (default): PEFT's
            default for the model type (`DEFAULT_TARGET_MODULES`).
        exclude_modules: layers to leave out, matched as `target_modules` (default None).
        bias: "none" only (PEFT's default; no bias trains).
        use_rslora: rank-stabilised scaling lora_alpha / sqrt(r) (default False).
        init_lora_weights: True (default): A ~ kaiming-uniform (U(-1/sqrt(in), 1/sqrt(in))), B = 0, so the
            adapter starts as a no-op; "gaussian": A ~ N(0, 1/r^2), B = 0; False: A and B both
            kaiming-uniform as a fresh torch Linear (a non-zero adapter, for tests).
        task_type: PEFT's task type, kept for the saved adapter_config.json (default None).

    Any other peft LoraConfig option is accepted at its PEFT default only (`UNSUPPORTED_DEFAULTS`).

    Raises:
        ValueError: naming the option, for a value out of range or an option jaxst does not implement.
        TypeError: naming an argument that is no peft LoraConfig option.
    """

    r: int
    lora_alpha: float
    lora_dropout: float
    target_modules: tuple[str, ...] | str | None
    exclude_modules: tuple[str, ...] | str | None
    bias: str
    use_rslora: bool
    init_lora_weights: bool | str
    task_type: str | None

    def __init__(
        self,
        r: int = 8,
        target_modules: Sequence[str] | str | None = None,
        exclude_modules: Sequence[str] | str | None = None,
        lora_alpha: float = 8,
        lora_dropout: float = 0.0,
        bias: str = "none",
        use_rslora: bool = False,
        init_lora_weights: bool | str = True,
        task_type: str | None = None,
        **other_options: Any,
    ):
        for name, value in other_options.items():
            if name not in UNSUPPORTED_DEFAULTS:
                raise TypeError(f"LoraConfig got an unknown option {name!r} (not a peft LoraConfig option).")
            if value != UNSUPPORTED_DEFAULTS[name]:
                raise ValueError(
                    f"LoraConfig option {name}={value!r} is not supported by jaxst "
                    f"(supported: {UNSUPPORTED_DEFAULTS[name]!r})."
                )
        if isinstance(r, bool) or not isinstance(r, int) or r < 1:
            raise ValueError(f"LoraConfig option r must be a positive integer, got {r!r}.")
        if isinstance(lora_alpha, bool) or not isinstance(lora_alpha, (int, float)) or lora_alpha <= 0:
            raise ValueError(f"LoraConfig option lora_alpha must be a positive number, got {lora_alpha!r}.")
        if isinstance(lora_dropout, bool) or not isinstance(lora_dropout, (int, float)):
            raise ValueError(f"LoraConfig option lora_dropout must be a number, got {lora_dropout!r}.")
        if not 0.0 <= lora_dropout < 1.0:
            raise ValueError(f"LoraConfig option lora_dropout must be in [0, 1), got {lora_dropout!r}.")
        if bias != "none":
            raise ValueError(
                f"LoraConfig option bias={bias!r} is not supported by jaxst (supported: 'none')."
            )
        if not isinstance(use_rslora, bool):
            raise ValueError(f"LoraConfig option use_rslora must be a bool, got {use_rslora!r}.")
        if not any(init_lora_weights is choice or init_lora_weights == choice for choice in INIT_CHOICES):
            raise ValueError(
                f"LoraConfig option init_lora_weights={init_lora_weights!r} is not supported by jaxst "
                f"(supported: {INIT_CHOICES})."
            )
        fields = {
            "r": r,
            "lora_alpha": lora_alpha,
            "lora_dropout": float(lora_dropout),
            "target_modules": _module_names("target_modules", target_modules),
            "exclude_modules": _module_names("exclude_modules", exclude_modules),
            "bias": bias,
            "use_rslora": use_rslora,
            "init_lora_weights": init_lora_weights,
            "task_type": task_type,
        }
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    @property
    def scaling(self) -> float:
        """The factor of the adapter's output: lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora."""
        return self.lora_alpha / (math.sqrt(self.r) if self.use_rslora else self.r)

    def with_target_modules(self, target_modules: Sequence[str] | str) -> LoraConfig:
        """This config with `target_modules` set (e.g. the model type's default, once resolved)."""
        return dataclasses.replace(self, target_modules=target_modules)

    def to_adapter_json(self, base_model_name_or_path: str | None) -> dict[str, Any]:
        """The adapter_config.json entries peft 0.21 writes for this config (every option, PEFT's
        defaults for those jaxst does not implement), naming the base model."""
        target = self.target_modules
        exclude = self.exclude_modules
        return {
            **UNSUPPORTED_DEFAULTS,
            "peft_type": "LORA",
            "task_type": self.task_type,
            "base_model_name_or_path": base_model_name_or_path,
            "revision": None,
            "inference_mode": True,
            "r": self.r,
            "lora_alpha": self.lora_alpha,
            "lora_dropout": self.lora_dropout,
            "target_modules": list(target) if isinstance(target, tuple) else target,
            "exclude_modules": list(exclude) if isinstance(exclude, tuple) else exclude,
            "bias": self.bias,
            "use_rslora": self.use_rslora,
            "init_lora_weights": self.init_lora_weights,
        }

    @classmethod
    def from_adapter_json(cls, options: Mapping[str, Any], source: str = ADAPTER_CONFIG_FILE) -> LoraConfig:
        """The config of an adapter_config.json's entries.

        The metadata entries (METADATA_KEYS, METADATA_IGNORED) do not enter the config; peft_type must be
        "LORA". An entry this version of peft does not know is accepted when it is empty (None, False,
        {} or []: an option left off) and refused otherwise.

        Raises:
            ValueError: naming `source` and the entry, for another peft_type or an unsupported option.
        """
        if options.get("peft_type", "LORA") != "LORA":
            raise ValueError(f"{source}: peft_type={options['peft_type']!r} is not supported (only 'LORA').")
        known = {field.name for field in dataclasses.fields(cls)} | set(UNSUPPORTED_DEFAULTS)
        kwargs = {}
        for name, value in options.items():
            if name in METADATA_IGNORED or (name in METADATA_KEYS and name != "task_type"):
                continue
            if name in known:
                kwargs[name] = value
            elif value not in (None, False, {}, []):
                raise ValueError(f"{source}: option {name}={value!r:.80} is not supported by jaxst.")
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{source}: {error}") from error


def _module_names(option: str, value: Sequence[str] | str | None) -> tuple[str, ...] | str | None:
    """A list of module names as a tuple (a string, a regular expression or "all-linear", as is)."""
    if value is None or isinstance(value, str):
        return value
    names = tuple(value)
    if not all(isinstance(name, str) for name in names):
        raise ValueError(f"LoraConfig option {option} must be a string or a list of strings, got {value!r}.")
    return names


def read_adapter_config(folder: Path) -> LoraConfig | None:
    """The LoraConfig of `folder`'s adapter_config.json, or None when it has none."""
    path = Path(folder) / ADAPTER_CONFIG_FILE
    if not path.is_file():
        return None
    try:
        options = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(options, dict):
        raise ValueError(f"{path} must hold a JSON object.")
    return LoraConfig.from_adapter_json(options, str(path))
