"""A Hugging Face model folder <-> a jaxst encoder and the checkpoint's extras.

`load_checkpoint` returns the encoder and, apart, what the checkpoint held besides its parameters (the
key prefix, the pooler and heads); `save_encoder(encoder, path, extras)` writes both back. The extras are
never module attributes: a module's static attributes form the NNX graphdef, which jit hashes and
compares on every call.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxst.io import hf
from jaxst.models.config import auto_config, read_config
from jaxst.models.encoder import TransformerEncoder
from jaxst.models.fused_attention import choose_kernel
from jaxst.models.json_config import InexactJsonConfig, JsonConfig
from jaxst.models.registry import ENCODER_CLASSES, SUPPORTED_MODEL_TYPES
from jaxst.models.spec import EncoderSpec

# The extras of the encoders `load_encoder` returned, by the identity of their spec: nnx.split and
# nnx.merge pass the spec object along unchanged, so a merged copy of such an encoder finds them too.
# An entry goes when its spec is garbage collected.
_LOADED_EXTRAS: dict[int, hf.CheckpointExtras] = {}


def load_checkpoint(
    path: str | Path,
    dtype: Any = jnp.float32,
    *,
    attention_implementation: str = "auto",
    attention_dropout: str = "exact",
    scan_layers: bool = False,
) -> tuple[TransformerEncoder, hf.CheckpointExtras]:
    """Load an encoder from a local Hugging Face model folder (no network), with the checkpoint's extras.

    Reads config.json (see `read_spec`) and model.safetensors, a sharded
    model.safetensors.index.json, or pytorch_model.bin (only through torch.load(weights_only=True)).
    Safetensors weights are read, checked and copied to the device one tensor at a time, so the host
    holds at most about one tensor besides the placed parameters; pytorch_model.bin is read whole first.

    Args:
        path: the folder, e.g. a sentence-transformers model folder or a `save_pretrained` output.
        dtype: compute dtype, float32 or bfloat16; parameters stay float32.
        attention_implementation, attention_dropout: the encoder's attention options ("auto" | "xla" |
            "pallas" | "cudnn", "exact" | "skip"; see `TransformerEncoder`).
        scan_layers: run the layers under `jax.lax.scan` (see `TransformerEncoder`).

    Returns:
        (the encoder module, with `spec`, `config`, `hidden_size`, `num_hidden_layers` and `dtype`
        attributes; the extras to pass to `save_encoder`: the key prefix and the unused tensors).

    Raises:
        FileNotFoundError: no such folder, or no config.json in it.
        UnsupportedConfigError: an unsupported model_type (the message lists the supported ones) or
            config option (named).
        WeightLoadingError: unreadable weights, or a missing, unexpected or wrong-shaped tensor (named).
        ValueError: an unknown attention option value (named), "cudnn" off a GPU, or a scan_layers
            that is not a bool.
    """
    choose_kernel(attention_implementation, attention_dropout, jax.default_backend())  # fails early
    folder = Path(path)
    spec = read_spec(folder)
    encoder_class = ENCODER_CLASSES[spec.model_type]
    abstract = nnx.eval_shape(lambda: encoder_class(spec, dtype=dtype, rngs=nnx.Rngs(0)))
    graphdef, abstract_state = nnx.split(abstract)
    flat_state = dict(nnx.to_flat_state(abstract_state))
    param_shapes = {path: variable.shape for path, variable in flat_state.items()}
    with hf.open_checkpoint(folder) as checkpoint:
        params, extras = hf.read_params(
            checkpoint, encoder_class.key_mapping(spec), param_shapes, place=jnp.asarray
        )
    state = nnx.from_flat_state(
        {path: variable.replace(value=params[path]) for path, variable in flat_state.items()}
    )
    encoder = nnx.merge(graphdef, state)
    encoder.use_attention(attention_implementation, attention_dropout)
    encoder.use_scan_layers(scan_layers)
    return encoder, extras


def read_spec(folder: Path) -> EncoderSpec:
    """The EncoderSpec of a local model folder's config.json.

    A family that `reads_config_json` reads it through `json_config.JsonConfig` (without transformers'
    configuration module, which imports torch) when that gives exactly what the transformers config
    object holds; otherwise, and for the other families, through AutoConfig. The two give equal specs
    but for `transformers_json` (see `spec.config_json`), from which they build equal config objects.

    Raises:
        FileNotFoundError, UnsupportedConfigError: as `load_checkpoint`.
    """
    options = read_config(folder, SUPPORTED_MODEL_TYPES)
    encoder_class = ENCODER_CLASSES[options["model_type"]]
    if encoder_class.reads_config_json:
        try:
            return encoder_class.spec_from_config(JsonConfig(options))
        except InexactJsonConfig:
            pass
    return encoder_class.spec_from_config(auto_config(folder))


def load_encoder(path: str | Path, dtype: Any = jnp.float32) -> TransformerEncoder:
    """`load_checkpoint`'s encoder alone; `save_encoder(encoder, path)` still writes its extras back.

    The extras stay with this module, keyed by the encoder's spec, not on the encoder.
    """
    encoder, extras = load_checkpoint(path, dtype)
    _keep_extras(encoder.spec, extras)
    return encoder


def save_encoder(
    encoder: TransformerEncoder,
    path: str | Path,
    extras: hf.CheckpointExtras | None = None,
    max_shard_size: int | str = hf.DEFAULT_MAX_SHARD_SIZE,
) -> None:
    """Write config.json and the weights as transformers' `save_pretrained` does; AutoModel loads them.

    The parameters are written in float32 under their checkpoint keys, with the extras' key prefix; the
    extras' unused tensors (pooler, heads) are written back unchanged. Up to `max_shard_size` bytes they
    go to model.safetensors, above it to model-0000k-of-0000n.safetensors shards and their
    model.safetensors.index.json; each shard is copied from the device only when it is written.

    Args:
        encoder: the encoder to save.
        path: the folder, created if needed.
        extras: what `load_checkpoint` returned with the encoder; None: the extras of the checkpoint
            `load_encoder` read this encoder from, or none for an encoder that was not loaded.
        max_shard_size: bytes (or a string like "5GB") above which the weights are sharded; the default
            is transformers' "50GB".
    """
    if extras is None:
        extras = _LOADED_EXTRAS.get(id(encoder.spec), hf.CheckpointExtras())
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    encoder.config.save_pretrained(str(folder))
    params = {path: variable[...] for path, variable in nnx.to_flat_state(nnx.state(encoder, nnx.Param))}
    mapping = type(encoder).key_mapping(encoder.spec)
    hf.write_checkpoint(params, mapping, extras, folder, max_shard_size)


def _keep_extras(spec: EncoderSpec, extras: hf.CheckpointExtras) -> None:
    _LOADED_EXTRAS[id(spec)] = extras
    weakref.finalize(spec, _LOADED_EXTRAS.pop, id(spec), None)
