"""Which model parameters train: with a LoRA adapter, all but the encoder's base weights.

`split_trainable` cuts `model.params` into the trained part (the adapter's `LoraParam`s, the pipeline
modules' parameters, as sentence-transformers trains a Dense module after a PEFT encoder) and the frozen
part (every other encoder parameter); `join_trainable` puts them back together. Without an adapter
everything trains and the frozen part is None.
"""

from __future__ import annotations

from typing import Any

from flax import nnx

from jaxst.lora.layers import LoraParam


def split_trainable(model_params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(trained, frozen) parts of `model_params` ({"encoder": nnx.State, "modules": {...}}).

    Returns:
        With LoRA parameters in the encoder: ({"encoder": the LoraParams, "modules": ...}, {"encoder":
        the other encoder parameters}); without: (model_params, None).
    """
    adapter, base = nnx.split_state(model_params["encoder"], LoraParam, ...)
    if not adapter:
        return model_params, None
    return {**model_params, "encoder": adapter}, {"encoder": base}


def join_trainable(trained: dict[str, Any], frozen: dict[str, Any] | None) -> dict[str, Any]:
    """The model parameters `split_trainable` cut into `trained` and `frozen` (`trained` when None)."""
    if frozen is None:
        return trained
    return {**trained, "encoder": nnx.merge_state(trained["encoder"], frozen["encoder"])}
