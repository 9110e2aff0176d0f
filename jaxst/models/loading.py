"""load_encoder / save_encoder: a Hugging Face model folder <-> a jaxst encoder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxst.io import hf
from jaxst.models.config import read_config
from jaxst.models.encoder import TransformerEncoder
from jaxst.models.registry import ENCODER_CLASSES, SUPPORTED_MODEL_TYPES


def load_encoder(path: str | Path, dtype: Any = jnp.float32) -> TransformerEncoder:
    """Load an encoder from a local Hugging Face model folder (no network).

    Reads config.json (through transformers' AutoConfig) and model.safetensors, a sharded
    model.safetensors.index.json, or pytorch_model.bin (only through torch.load(weights_only=True)).

    Args:
        path: the folder, e.g. a sentence-transformers model folder or a `save_pretrained` output.
        dtype: compute dtype, float32 or bfloat16; parameters stay float32.

    Returns:
        The encoder module, with `spec`, `config`, `hidden_size`, `num_hidden_layers` and `dtype` attributes.

    Raises:
        FileNotFoundError: no such folder, or no config.json in it.
        UnsupportedConfigError: an unsupported model_type (the message lists the supported ones) or
            config option (named).
        WeightLoadingError: unreadable weights, or a missing, unexpected or wrong-shaped tensor (named).
    """
    folder = Path(path)
    config = read_config(folder, SUPPORTED_MODEL_TYPES)
    encoder_class = ENCODER_CLASSES[config.model_type]
    spec = encoder_class.spec_from_config(config)
    abstract = nnx.eval_shape(lambda: encoder_class(spec, dtype=dtype, rngs=nnx.Rngs(0)))
    graphdef, abstract_state = nnx.split(abstract)
    flat_state = dict(nnx.to_flat_state(abstract_state))
    params, extras = hf.checkpoint_to_params(
        hf.read_checkpoint(folder),
        encoder_class.key_mapping(spec),
        {path: variable.shape for path, variable in flat_state.items()},
        str(folder),
    )
    state = nnx.from_flat_state(
        {path: variable.replace(value=jnp.asarray(params[path])) for path, variable in flat_state.items()}
    )
    encoder = nnx.merge(graphdef, state)
    encoder.checkpoint_extras = extras
    return encoder


def save_encoder(encoder: TransformerEncoder, path: str | Path) -> None:
    """Write config.json and model.safetensors that transformers' AutoModel.from_pretrained loads.

    The parameters are written in float32 under their checkpoint keys (with the prefix the loaded
    checkpoint used); the unused tensors the checkpoint held (pooler, heads) are written back unchanged.
    """
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    encoder.config.save_pretrained(str(folder))
    params = {
        path: np.asarray(variable[...]) for path, variable in nnx.to_flat_state(nnx.state(encoder, nnx.Param))
    }
    mapping = type(encoder).key_mapping(encoder.spec)
    hf.write_safetensors(
        hf.params_to_checkpoint(params, mapping, encoder.checkpoint_extras), folder / hf.SAFETENSORS_FILE
    )
