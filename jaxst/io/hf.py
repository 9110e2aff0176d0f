"""Hugging Face checkpoints <-> encoder parameters: reading and writing the files, strict key mapping.

A checkpoint is mapped through the `KeyMapping` its encoder family gives (see `jaxst.models`):
- a parameter key of the table (optionally with the family prefix, e.g. "bert.") -> a parameter path of
  the jaxst encoder; a torch `Linear.weight` [out, in] is transposed to the kernel [in, out];
- a key in the mapping's unused keys (pooler, pre-training heads, position-id buffers) is kept aside
  unchanged in `CheckpointExtras`, to be written back on save;
- anything else is an error naming the key, as is a missing, duplicated or wrong-shaped parameter.
"""

from __future__ import annotations

import dataclasses
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


class WeightLoadingError(ValueError):
    """A checkpoint cannot be read or does not match the encoder (the key or file is named)."""


@dataclasses.dataclass(frozen=True)
class KeyMapping:
    """How one encoder family's checkpoint keys map onto an encoder's parameters.

    model_type: named in error messages.
    table: every parameter's checkpoint key (without prefix) -> (parameter path, transposed).
    prefix: the key prefix of a checkpoint saved with heads, e.g. "bert." (keys may carry it or not).
    unused_keys: keys (without prefix) the checkpoint may hold that the encoder does not use.
    """

    model_type: str
    table: Mapping[str, tuple[ParamPath, bool]]
    prefix: str
    unused_keys: frozenset[str]


@dataclasses.dataclass(frozen=True, eq=False)
class CheckpointExtras:
    """What a loaded checkpoint held besides the encoder's parameters, kept to be written back on save.

    key_prefix: "" or the family prefix ("bert.") the parameter keys carried in the file.
    unused_tensors: the tensors named in the family's unused keys (pooler, heads, position-id buffers),
    by their names in the file.
    """

    key_prefix: str = ""
    unused_tensors: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)


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
    mapping: KeyMapping,
    param_shapes: Mapping[ParamPath, tuple[int, ...]],
    source: str,
) -> tuple[dict[ParamPath, np.ndarray], CheckpointExtras]:
    """Map checkpoint tensors onto the encoder's parameters, strictly.

    Args:
        tensors: checkpoint key -> array, as read from the files.
        mapping: the encoder family's key mapping.
        param_shapes: the encoder's parameter paths and shapes (they must equal the table's paths).
        source: the folder, named in error messages.

    Returns:
        (float32 parameters by path, the extras: the key prefix used and the unused tensors).

    Raises:
        WeightLoadingError: naming the unexpected, missing, duplicated or wrong-shaped keys.
    """
    table, prefix, model_type = mapping.table, mapping.prefix, mapping.model_type
    if set(param_shapes) != {path for path, _ in table.values()}:
        raise AssertionError(f"internal: the {model_type} key table does not cover the encoder's parameters")
    found: dict[str, str] = {}  # table key -> checkpoint key
    unused: dict[str, np.ndarray] = {}
    unexpected = []
    for key, value in tensors.items():
        short = key.removeprefix(prefix)
        if short in table:
            if short in found:
                raise WeightLoadingError(f"{source}: {found[short]!r} and {key!r} are the same tensor twice")
            found[short] = key
        elif short in mapping.unused_keys:
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
    return params, CheckpointExtras(key_prefix=prefix if prefixed == {True} else "", unused_tensors=unused)


def params_to_checkpoint(
    params: Mapping[ParamPath, np.ndarray], mapping: KeyMapping, extras: CheckpointExtras
) -> dict[str, np.ndarray]:
    """The inverse of `checkpoint_to_params`: checkpoint key -> contiguous array, unused tensors included."""
    tensors = {}
    for short, (path, transposed) in mapping.table.items():
        value = np.asarray(params[path], dtype=np.float32)
        tensors[extras.key_prefix + short] = np.ascontiguousarray(value.T if transposed else value)
    tensors.update({key: np.ascontiguousarray(value) for key, value in extras.unused_tensors.items()})
    return tensors


def write_safetensors(tensors: Mapping[str, np.ndarray], file: Path) -> None:
    """Write tensors as a safetensors file with the metadata transformers requires ({"format": "pt"})."""
    save_file(dict(tensors), str(file), metadata={"format": "pt"})


def _names(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(repr(key) for key in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")
