"""PEFT's adapter folder format: adapter_config.json and adapter_model.safetensors.

The weights file holds, for each adapted linear layer <name> of the transformers model (see
`jaxst.lora.layers.linear_layers`), "base_model.model.<name>.lora_A.weight" [r, in] and
"base_model.model.<name>.lora_B.weight" [out, r] in float32: what peft's `save_pretrained` writes for a
model that sentence-transformers wraps (its Transformer module's `auto_model`, e.g. a `BertModel`), so
`peft.PeftModel.from_pretrained(auto_model, folder)` loads it.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from jaxst.io.hf import WeightLoadingError
from jaxst.lora.config import ADAPTER_CONFIG_FILE, LoraConfig, read_adapter_config
from jaxst.lora.layers import adapted_layers, attach, resolve_targets
from jaxst.models.encoder import TransformerEncoder

ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors"
ADAPTER_FILES = (ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE)
KEY_PREFIX = "base_model.model."


def adapter_keys(name: str) -> tuple[str, str]:
    """The (lora_A, lora_B) weight keys of the linear layer transformers calls `name`."""
    return f"{KEY_PREFIX}{name}.lora_A.weight", f"{KEY_PREFIX}{name}.lora_B.weight"


def write_adapter(
    folder: Path, encoder: TransformerEncoder, config: LoraConfig, base_model_name_or_path: str | None
) -> None:
    """Writes `encoder`'s adapter (its `LoraDense` layers) and `config` to `folder` in PEFT's format."""
    tensors = {}
    for name, layer in adapted_layers(encoder):
        a_key, b_key = adapter_keys(name)
        tensors[a_key] = np.ascontiguousarray(np.asarray(layer.lora_a[...], np.float32).T)
        tensors[b_key] = np.ascontiguousarray(np.asarray(layer.lora_b[...], np.float32).T)
    save_file(tensors, str(folder / ADAPTER_WEIGHTS_FILE), metadata={"format": "pt"})
    options = config.to_adapter_json(base_model_name_or_path)
    (folder / ADAPTER_CONFIG_FILE).write_text(json.dumps(options, indent=2, sort_keys=True) + "\n", "utf-8")


def read_adapter_weights(folder: Path, encoder: TransformerEncoder) -> None:
    """Loads `folder`'s adapter_model.safetensors into `encoder`'s `LoraDense` layers (in place).

    Factors of a layer the encoder does not compute (a key of the family's unused keys, such as BERT's
    pooler.dense) are left out; on save they are not written back.

    Raises:
        WeightLoadingError: naming the file and the key, for an unreadable file, a missing or unexpected
            key, or a tensor whose shape differs from the layer's.
    """
    path = folder / ADAPTER_WEIGHTS_FILE
    try:
        tensors = load_file(str(path))
    except (OSError, SafetensorError) as error:
        raise WeightLoadingError(f"Cannot read the adapter weights {path}: {error}") from error
    expected = set()
    for name, layer in adapted_layers(encoder):
        for key, factor in zip(adapter_keys(name), (layer.lora_a, layer.lora_b), strict=True):
            expected.add(key)
            if key not in tensors:
                raise WeightLoadingError(f"{path} has no tensor {key!r} for the adapted layer {name!r}.")
            value = tensors[key].T
            if value.shape != factor.shape:
                raise WeightLoadingError(
                    f"{path}: {key!r} has shape {list(tensors[key].shape)}, the layer needs "
                    f"{list(factor.shape[::-1])}."
                )
            factor[...] = jnp.asarray(value, jnp.float32)
    # Layers the encoder never computes (BERT's pooler): PEFT adapts them under "all-linear" or a
    # matching name, and their factors cannot change the embeddings.
    unused = {key for key in type(encoder).key_mapping(encoder.spec).unused_keys if key.endswith(".weight")}
    expected.update(
        adapter_key for key in unused for adapter_key in adapter_keys(key.removesuffix(".weight"))
    )
    if unexpected := sorted(set(tensors) - expected):
        raise WeightLoadingError(
            f"{path} holds tensors that match no adapted layer of the config's target_modules: "
            f"{unexpected[:6]}."
        )


def attach_saved_adapter(encoder: TransformerEncoder, folder: Path) -> LoraConfig | None:
    """Attaches the adapter saved in `folder` (adapter_config.json and adapter_model.safetensors) to
    `encoder`, in place; returns its config (target_modules resolved), or None when `folder` has none.

    Raises:
        ValueError: for an unsupported adapter_config.json option (named).
        WeightLoadingError: for adapter weights that do not fit (see `read_adapter_weights`).
    """
    config = read_adapter_config(folder)
    if config is None:
        return None
    config = resolve_targets(config, encoder.spec.model_type)
    attach(encoder, config, jax.random.PRNGKey(0))
    read_adapter_weights(folder, encoder)
    return config
