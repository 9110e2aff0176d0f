"""Hugging Face checkpoints <-> encoder parameters: strict key tables, safetensors reading and writing.

Every checkpoint key is mapped through an explicit table per architecture:
- a parameter key (optionally with the architecture prefix, e.g. "bert.") -> a parameter path of the
  jaxst encoder; torch `Linear.weight` [out, in] is transposed to the kernel [in, out];
- a key in the architecture's UNUSED_KEYS list (pooler, pre-training heads, position-id buffers) is kept
  aside unchanged, to be written back on save;
- anything else is an error naming the key, as is a missing or wrong-shaped parameter.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

ParamPath = tuple[str | int, ...]
# checkpoint key (without prefix) -> (parameter path, whether the tensor is a transposed torch Linear weight)
KeyTable = dict[str, tuple[ParamPath, bool]]

SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX_FILE = "model.safetensors.index.json"
PYTORCH_FILE = "pytorch_model.bin"

PREFIXES = {
    "bert": "bert.",
    "roberta": "roberta.",
    "xlm-roberta": "roberta.",
    "distilbert": "distilbert.",
    "mpnet": "mpnet.",
}

_POOLER = ("pooler.dense.weight", "pooler.dense.bias")
_LM_HEAD = (
    "lm_head.bias",
    "lm_head.dense.weight",
    "lm_head.dense.bias",
    "lm_head.layer_norm.weight",
    "lm_head.layer_norm.bias",
    "lm_head.decoder.weight",
    "lm_head.decoder.bias",
)
# Tensors a checkpoint may hold that the encoder does not use; they load aside and are saved back.
UNUSED_KEYS: dict[str, frozenset[str]] = {
    "bert": frozenset(
        (
            *_POOLER,
            "embeddings.position_ids",
            "cls.predictions.bias",
            "cls.predictions.transform.dense.weight",
            "cls.predictions.transform.dense.bias",
            "cls.predictions.transform.LayerNorm.weight",
            "cls.predictions.transform.LayerNorm.bias",
            "cls.predictions.decoder.weight",
            "cls.predictions.decoder.bias",
            "cls.seq_relationship.weight",
            "cls.seq_relationship.bias",
        )
    ),
    "roberta": frozenset((*_POOLER, "embeddings.position_ids", *_LM_HEAD)),
    "xlm-roberta": frozenset((*_POOLER, "embeddings.position_ids", *_LM_HEAD)),
    "distilbert": frozenset(
        (
            "embeddings.position_ids",
            "vocab_transform.weight",
            "vocab_transform.bias",
            "vocab_layer_norm.weight",
            "vocab_layer_norm.bias",
            "vocab_projector.weight",
            "vocab_projector.bias",
        )
    ),
    "mpnet": frozenset((*_POOLER, "embeddings.position_ids", *_LM_HEAD)),
}

# Checkpoint names of the TransformerLayer submodules, per architecture family.
_BERT_LAYER = {
    "query": "attention.self.query",
    "key": "attention.self.key",
    "value": "attention.self.value",
    "attention_output": "attention.output.dense",
    "attention_norm": "attention.output.LayerNorm",
    "intermediate": "intermediate.dense",
    "output": "output.dense",
    "output_norm": "output.LayerNorm",
}
_DISTILBERT_LAYER = {
    "query": "attention.q_lin",
    "key": "attention.k_lin",
    "value": "attention.v_lin",
    "attention_output": "attention.out_lin",
    "attention_norm": "sa_layer_norm",
    "intermediate": "ffn.lin1",
    "output": "ffn.lin2",
    "output_norm": "output_layer_norm",
}
_MPNET_LAYER = {
    "query": "attention.attn.q",
    "key": "attention.attn.k",
    "value": "attention.attn.v",
    "attention_output": "attention.attn.o",
    "attention_norm": "attention.LayerNorm",
    "intermediate": "intermediate.dense",
    "output": "output.dense",
    "output_norm": "output.LayerNorm",
}
_NORMS = ("attention_norm", "output_norm")


class WeightLoadingError(ValueError):
    """A checkpoint cannot be read or does not match the encoder (the key or file is named)."""


def key_table(model_type: str, num_layers: int) -> KeyTable:
    """The complete checkpoint-key -> parameter-path table of one architecture with `num_layers` layers."""
    table: KeyTable = {
        "embeddings.word_embeddings.weight": (("embeddings", "word", "embedding"), False),
        "embeddings.position_embeddings.weight": (("embeddings", "position", "embedding"), False),
        "embeddings.LayerNorm.weight": (("embeddings", "norm", "scale"), False),
        "embeddings.LayerNorm.bias": (("embeddings", "norm", "bias"), False),
    }
    if model_type in ("bert", "roberta", "xlm-roberta"):
        table["embeddings.token_type_embeddings.weight"] = (("embeddings", "token_type", "embedding"), False)
    if model_type == "mpnet":
        table["encoder.relative_attention_bias.weight"] = (("relative_attention_bias", "embedding"), False)
    layer_names, layer_root = {
        "distilbert": (_DISTILBERT_LAYER, "transformer.layer"),
        "mpnet": (_MPNET_LAYER, "encoder.layer"),
    }.get(model_type, (_BERT_LAYER, "encoder.layer"))
    for index in range(num_layers):
        for ours, theirs in layer_names.items():
            path = ("layers", index, ours)
            name = f"{layer_root}.{index}.{theirs}"
            if ours in _NORMS:
                table[f"{name}.weight"] = ((*path, "scale"), False)
            else:
                table[f"{name}.weight"] = ((*path, "kernel"), True)
            table[f"{name}.bias"] = ((*path, "bias"), False)
    return table


def read_checkpoint(folder: Path) -> dict[str, np.ndarray]:
    """All tensors of a model folder: model.safetensors, else a sharded index, else pytorch_model.bin."""
    if (folder / SAFETENSORS_FILE).is_file():
        return _read_safetensors(folder / SAFETENSORS_FILE)
    if (folder / SAFETENSORS_INDEX_FILE).is_file():
        return _read_sharded_safetensors(folder / SAFETENSORS_INDEX_FILE)
    if (folder / PYTORCH_FILE).is_file():
        return _read_pytorch_bin(folder / PYTORCH_FILE)
    raise WeightLoadingError(
        f"{folder} has no weights: expected {SAFETENSORS_FILE}, {SAFETENSORS_INDEX_FILE} or {PYTORCH_FILE}"
    )


def _read_safetensors(file: Path) -> dict[str, np.ndarray]:
    try:
        with safe_open(str(file), framework="numpy") as f:
            return {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightLoadingError(
            f"cannot read {file} (truncated or not a safetensors file?): {error}"
        ) from error


def _read_sharded_safetensors(index_file: Path) -> dict[str, np.ndarray]:
    try:
        weight_map = json.loads(index_file.read_text(encoding="utf-8"))["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise WeightLoadingError(
            f"{index_file} is not a safetensors index with a weight_map: {error}"
        ) from error
    tensors: dict[str, np.ndarray] = {}
    for shard in sorted(set(weight_map.values())):
        shard_file = index_file.parent / shard
        if not shard_file.is_file():
            raise WeightLoadingError(f"shard {shard} listed in {index_file} does not exist")
        tensors.update(_read_safetensors(shard_file))
    for key, shard in weight_map.items():
        if key not in tensors:
            raise WeightLoadingError(f"tensor {key!r} listed in {index_file} is not in its shard {shard}")
    return tensors


def _read_pytorch_bin(file: Path) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError as error:
        raise WeightLoadingError(
            f"{file} is a PyTorch pickle; jaxst reads it only through torch.load(weights_only=True), and "
            "torch is not installed. Install torch, or convert it once to safetensors (where torch is "
            'installed): python -c "import torch; '
            "from safetensors.torch import save_file; "
            f"save_file(torch.load('{file}', weights_only=True), '{file.parent / SAFETENSORS_FILE}', "
            "metadata={'format': 'pt'})\""
        ) from error
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError, ... for bad files
        raise WeightLoadingError(f"cannot read {file} with torch.load(weights_only=True): {error}") from error
    return {
        key: (value.float() if value.is_floating_point() else value).numpy() for key, value in state.items()
    }


def checkpoint_to_params(
    tensors: Mapping[str, np.ndarray],
    model_type: str,
    param_shapes: Mapping[ParamPath, tuple[int, ...]],
    num_layers: int,
    source: str,
) -> tuple[dict[ParamPath, np.ndarray], dict[str, np.ndarray], str]:
    """Map checkpoint tensors onto the encoder's parameters, strictly.

    Args:
        tensors: checkpoint key -> array, as read from the files.
        model_type: the config's model_type.
        param_shapes: the encoder's parameter paths and shapes (they must equal the table's paths).
        num_layers: the config's number of layers.
        source: the folder, named in error messages.

    Returns:
        (float32 parameters by path, unused tensors by their checkpoint key, the key prefix used: "" or
        e.g. "bert.").

    Raises:
        WeightLoadingError: naming the unexpected, missing, duplicated or wrong-shaped keys.
    """
    table = key_table(model_type, num_layers)
    if set(param_shapes) != {path for path, _ in table.values()}:
        raise AssertionError(f"internal: the {model_type} key table does not cover the encoder's parameters")
    prefix = PREFIXES[model_type]
    found: dict[str, str] = {}  # table key -> checkpoint key
    unused: dict[str, np.ndarray] = {}
    unexpected = []
    for key, value in tensors.items():
        short = key.removeprefix(prefix)
        if short in table:
            if short in found:
                raise WeightLoadingError(f"{source}: {found[short]!r} and {key!r} are the same tensor twice")
            found[short] = key
        elif short in UNUSED_KEYS[model_type]:
            unused[key] = value
        else:
            unexpected.append(key)
    if unexpected:
        raise WeightLoadingError(
            f"{source}: unexpected tensors for a {model_type} encoder: {_names(unexpected)} "
            f"(known keys look like {next(iter(table))!r}, optionally prefixed {prefix!r})"
        )
    missing = [key for key in table if key not in found]
    if missing:
        raise WeightLoadingError(f"{source}: missing tensors for a {model_type} encoder: {_names(missing)}")
    prefixed = {key.startswith(prefix) for key in found.values()}
    if len(prefixed) > 1:
        raise WeightLoadingError(f"{source}: some parameter keys carry the prefix {prefix!r} and some do not")
    params = {}
    for short, key in found.items():
        path, transposed = table[short]
        expected = tuple(reversed(param_shapes[path])) if transposed else tuple(param_shapes[path])
        value = tensors[key]
        if value.shape != expected:
            raise WeightLoadingError(f"{source}: tensor {key!r} has shape {value.shape}, expected {expected}")
        if not np.issubdtype(value.dtype, np.floating) and value.dtype.name != "bfloat16":
            raise WeightLoadingError(f"{source}: tensor {key!r} has dtype {value.dtype}, expected floats")
        value = np.asarray(value, dtype=np.float32)
        params[path] = value.T if transposed else value
    return params, unused, prefix if prefixed == {True} else ""


def params_to_checkpoint(
    params: Mapping[ParamPath, np.ndarray],
    model_type: str,
    num_layers: int,
    unused: Mapping[str, np.ndarray],
    prefix: str,
) -> dict[str, np.ndarray]:
    """The inverse of `checkpoint_to_params`: checkpoint key -> contiguous array, unused tensors included."""
    tensors = {}
    for short, (path, transposed) in key_table(model_type, num_layers).items():
        value = np.asarray(params[path], dtype=np.float32)
        tensors[prefix + short] = np.ascontiguousarray(value.T if transposed else value)
    tensors.update({key: np.ascontiguousarray(value) for key, value in unused.items()})
    return tensors


def write_safetensors(tensors: Mapping[str, np.ndarray], file: Path) -> None:
    """Write tensors as a safetensors file with the metadata transformers requires ({"format": "pt"})."""
    save_file(dict(tensors), str(file), metadata={"format": "pt"})


def _names(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(repr(key) for key in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")
