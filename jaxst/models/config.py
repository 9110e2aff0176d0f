"""Reading a model folder's config.json and refusing config options the encoders do not implement."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from jaxst.models.layers import ACTIVATIONS


class UnsupportedConfigError(ValueError):
    """A config.json asks for something jaxst's encoders do not implement (named in the message)."""


def read_config(folder: Path, supported_model_types: Iterable[str]) -> dict[str, Any]:
    """The options of a local model folder's config.json, after checking the folder and model_type.

    jaxst reads them through `json_config.JsonConfig` where that is exact, else through `auto_config`.

    Raises:
        FileNotFoundError: the folder does not exist or has no config.json.
        UnsupportedConfigError: model_type is missing or not one of `supported_model_types` (listed in
            their order).
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder {folder} does not exist (or is not a directory)")
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(
            f"{folder} has no config.json: expected a Hugging Face model folder "
            "(config.json and model.safetensors, as save_pretrained writes them)"
        )
    try:
        options = json.loads(config_file.read_text(encoding="utf-8"))
        model_type = options.get("model_type")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as error:
        raise ValueError(f"{config_file} is not a JSON object: {error}") from error
    supported = list(supported_model_types)
    if model_type not in supported:
        raise UnsupportedConfigError(
            f"model_type {model_type!r} in {config_file} is not supported; supported model types: "
            + ", ".join(supported)
        )
    return options


def auto_config(folder: Path) -> Any:
    """The transformers config object of a local model folder, through `AutoConfig` (which imports torch
    when it is installed, hence imported here rather than with this module)."""
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(str(folder), local_files_only=True)


def require(config: Any, option: str, allowed: Iterable[Any], default: Any) -> None:
    """Raise UnsupportedConfigError unless `config.<option>` (or `default` when absent) is in `allowed`."""
    value = getattr(config, option, default)
    allowed = list(allowed)
    if value not in allowed:
        raise UnsupportedConfigError(
            f"{config.model_type} config option {option}={value!r} is not supported by jaxst "
            f"(supported: {', '.join(repr(a) for a in allowed)})"
        )


def require_activation(config: Any, option: str) -> None:
    """The activation named by `config.<option>` must be one of ACTIVATIONS."""
    require(config, option, ACTIVATIONS, None)


def require_encoder_only(config: Any) -> None:
    """No decoder / cross-attention variants and no pruned heads: their weights do not fit the layers."""
    require(config, "is_decoder", [False], False)
    require(config, "add_cross_attention", [False], False)
    if getattr(config, "pruned_heads", None):
        raise UnsupportedConfigError(
            f"{config.model_type} config option pruned_heads={config.pruned_heads!r} is not supported"
        )


def require_heads_divide_width(config: Any, width: int, heads: int) -> None:
    """The hidden size must split evenly into attention heads."""
    if heads <= 0 or width % heads:
        raise UnsupportedConfigError(
            f"{config.model_type} config: hidden size {width} is not a multiple of {heads} attention heads"
        )


def require_grouped_heads(config: Any) -> None:
    """The query heads must split evenly into groups, one per key / value head (grouped-query attention):
    num_attention_heads a multiple of num_key_value_heads > 0."""
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    if kv_heads <= 0 or heads % kv_heads:
        raise UnsupportedConfigError(
            f"{config.model_type} config: num_attention_heads={heads} is not a multiple of "
            f"num_key_value_heads={kv_heads}"
        )


def require_probabilities(config: Any, *options: str) -> None:
    """Dropout rates must lie in [0, 1)."""
    for option in options:
        value = getattr(config, option)
        if not 0.0 <= value < 1.0:
            raise UnsupportedConfigError(
                f"{config.model_type} config option {option}={value!r} must be a probability in [0, 1)"
            )


def default_rope_theta(config: Any) -> float:
    """The base theta of the config's rotary positions, which must be RoPE's "default" kind.

    transformers reads them from `rope_parameters`, which it also fills from the older `rope_theta` and
    `rope_scaling` options. The other rope types (linear, dynamic, yarn, longrope, llama3, ...) scale the
    positions or the frequencies; jaxst refuses them rather than compute different angles.

    Raises:
        UnsupportedConfigError: naming the option and its rope_type.
    """
    parameters = dict(config.rope_parameters or {})
    rope_type = parameters.get("rope_type", "default")
    if rope_type != "default":
        raise UnsupportedConfigError(
            f"{config.model_type} config option rope_parameters (rope_scaling in older configs) with "
            f"rope_type={rope_type!r} is not supported by jaxst (supported: 'default'); it holds {parameters}"
        )
    return float(parameters["rope_theta"])
