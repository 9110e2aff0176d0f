"""Hugging Face checkpoints <-> encoder parameters: reading and writing the files, strict key mapping.

A checkpoint is mapped through the `KeyMapping` its encoder family gives (see `jaxst.models`):
- a parameter key of the table (optionally with the family prefix, e.g. "bert.") -> a parameter path of
  the jaxst encoder; a torch `Linear.weight` [out, in] is transposed to the kernel [in, out];
- a key in the mapping's unused keys (pooler, pre-training heads, position-id buffers) is kept aside
  unchanged in `CheckpointExtras`, to be written back on save;
- a key in the mapping's tied keys (a second name of a parameter, as older T5 files hold
  "encoder.embed_tokens.weight" beside "shared.weight") must hold the same values as the parameter's
  key; it is then dropped, and not written on save (transformers' save_pretrained writes a tied tensor
  once; written back unchanged, a stale copy would outlive training);
- anything else is an error naming the key, as is a missing, duplicated or wrong-shaped parameter.

Reading streams: every key, shape and dtype is checked from the file headers first, then each parameter
is read, converted and handed on before the next is read, so the host never holds a second full copy of
the weights (pytorch_model.bin excepted: torch.load reads it whole). Writing follows transformers'
`save_pretrained`: one model.safetensors up to a size threshold, above it shards that a
model.safetensors.index.json lists.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterable, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from huggingface_hub import split_state_dict_into_shards_factory
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

ParamPath = tuple[str | int, ...]
# checkpoint key (without prefix) -> (parameter path, whether the tensor is a transposed torch Linear weight)
KeyTable = dict[str, tuple[ParamPath, bool]]
Placed = TypeVar("Placed")

SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX_FILE = "model.safetensors.index.json"
PYTORCH_FILE = "pytorch_model.bin"
# transformers' save_pretrained: its default shard threshold, and its shard names ("-00001-of-00003").
DEFAULT_MAX_SHARD_SIZE = "50GB"
_SHARD_FILE_PATTERN = "model{suffix}.safetensors"
_SHARD_FILE_GLOB = "model-?????-of-?????.safetensors"

# safetensors dtype codes -> numpy dtype names; parameters may be stored in the four float types.
_DTYPE_NAMES = {
    "BOOL": "bool",
    "U8": "uint8",
    "I8": "int8",
    "U16": "uint16",
    "I16": "int16",
    "U32": "uint32",
    "I32": "int32",
    "U64": "uint64",
    "I64": "int64",
    "F16": "float16",
    "BF16": "bfloat16",
    "F32": "float32",
    "F64": "float64",
}
_FLOAT_DTYPES = frozenset({"float16", "bfloat16", "float32", "float64"})


class WeightLoadingError(ValueError):
    """A checkpoint cannot be read or does not match the encoder (the key or file is named)."""


@dataclasses.dataclass(frozen=True)
class KeyMapping:
    """How one encoder family's checkpoint keys map onto an encoder's parameters.

    model_type: named in error messages.
    table: every parameter's checkpoint key (without prefix) -> (parameter path, transposed).
    prefix: the key prefix of a checkpoint saved with heads, e.g. "bert." (keys may carry it or not).
    unused_keys: keys (without prefix) the checkpoint may hold that the encoder does not use.
    tied_keys: (key, table key) pairs (without prefix): a key the checkpoint may hold as a second copy
        of a parameter's tensor, tied to it (checked equal on load, not written on save).
    """

    model_type: str
    table: Mapping[str, tuple[ParamPath, bool]]
    prefix: str
    unused_keys: frozenset[str]
    tied_keys: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True, eq=False)
class CheckpointExtras:
    """What a loaded checkpoint held besides the encoder's parameters, kept to be written back on save.

    key_prefix: "" or the family prefix ("bert.") the parameter keys carried in the file.
    unused_tensors: the tensors named in the family's unused keys (pooler, heads, position-id buffers),
    by their names in the file.
    """

    key_prefix: str = ""
    unused_tensors: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class TensorHeader:
    """What a checkpoint says of one tensor before it is read.

    shape: its shape; dtype: its numpy dtype name ("float32", "bfloat16", "int64", ...); file: the name
    of the file that holds it, in the model folder.
    """

    shape: tuple[int, ...]
    dtype: str
    file: str


class Checkpoint:
    """The tensors of a model folder, described by the file headers and read one at a time.

    A context manager: leaving it (or `close`) releases the open files. Safetensors files are read with
    `pread`, not memory-mapped: a mapping keeps every page read resident in the process until the file
    is closed (the whole file, for an unsharded checkpoint), and arrays viewing a mapping would change
    or fault when the folder is saved over.

    Attributes:
        source: the folder, named in error messages.
        headers: checkpoint key -> TensorHeader, for every tensor of the checkpoint.
    """

    def __init__(
        self,
        source: str,
        headers: Mapping[str, TensorHeader],
        reader: Callable[[str], np.ndarray],
        files: ExitStack,
    ):
        self.source = source
        self.headers = headers
        self._reader = reader
        self._files = files

    def read(self, key: str) -> np.ndarray:
        """The tensor `key` of `headers`, read from its file now into a new host array."""
        return self._reader(key)

    def close(self) -> None:
        """Release the open files."""
        self._files.close()

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_checkpoint(folder: Path) -> Checkpoint:
    """The weights of a model folder: model.safetensors, else a sharded index, else pytorch_model.bin.

    Safetensors files (one, or the shards model.safetensors.index.json lists) are opened and only their
    headers read. pytorch_model.bin is read whole, at once, through torch.load(weights_only=True).

    Raises:
        WeightLoadingError: no weights, or an unreadable file, a missing shard, a tensor the index lists
            that is not in its shard, or a tensor in two shards (the file and key are named).
    """
    if (folder / SAFETENSORS_FILE).is_file():
        return _open_safetensors(folder, [SAFETENSORS_FILE])
    if (folder / SAFETENSORS_INDEX_FILE).is_file():
        return _open_sharded_safetensors(folder / SAFETENSORS_INDEX_FILE)
    if (folder / PYTORCH_FILE).is_file():
        tensors = _read_pytorch_bin(folder / PYTORCH_FILE)
        headers = {
            key: TensorHeader(value.shape, value.dtype.name, PYTORCH_FILE) for key, value in tensors.items()
        }
        return Checkpoint(str(folder), headers, tensors.__getitem__, ExitStack())
    raise WeightLoadingError(
        f"{folder} has no weights: expected {SAFETENSORS_FILE}, {SAFETENSORS_INDEX_FILE} or {PYTORCH_FILE}"
    )


def _open_safetensors(folder: Path, names: Iterable[str]) -> Checkpoint:
    """The checkpoint of the safetensors files `names` in `folder`, each tensor in exactly one of them."""
    handles = {}  # checkpoint key -> the open handle of its file
    headers: dict[str, TensorHeader] = {}
    with ExitStack() as files:
        for name in names:
            try:
                handle = files.enter_context(
                    safe_open(str(folder / name), framework="numpy", backend="pread")
                )
            except (SafetensorError, OSError, ValueError) as error:
                raise WeightLoadingError(
                    f"cannot read {folder / name} (truncated or not a safetensors file?): {error}"
                ) from error
            for key in handle.keys():  # noqa: SIM118 (safe_open is not a dict)
                if key in headers:
                    raise WeightLoadingError(
                        f"{folder}: tensor {key!r} is in both {headers[key].file} and {name}"
                    )
                tensor = handle.get_slice(key)
                dtype = tensor.get_dtype()
                headers[key] = TensorHeader(tuple(tensor.get_shape()), _DTYPE_NAMES.get(dtype, dtype), name)
                handles[key] = handle

        def read(key: str) -> np.ndarray:
            try:
                return handles[key].get_tensor(key)
            except (SafetensorError, OSError, ValueError) as error:
                raise WeightLoadingError(
                    f"cannot read tensor {key!r} from {folder / headers[key].file}: {error}"
                ) from error

        return Checkpoint(str(folder), headers, read, files.pop_all())


def _open_sharded_safetensors(index_file: Path) -> Checkpoint:
    try:
        weight_map = json.loads(index_file.read_text(encoding="utf-8"))["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise WeightLoadingError(
            f"{index_file} is not a safetensors index with a weight_map: {error}"
        ) from error
    shards = sorted(set(weight_map.values()))
    for shard in shards:
        if not (index_file.parent / shard).is_file():
            raise WeightLoadingError(f"shard {shard} listed in {index_file} does not exist")
    checkpoint = _open_safetensors(index_file.parent, shards)
    for key, shard in weight_map.items():
        if key not in checkpoint.headers or checkpoint.headers[key].file != shard:
            checkpoint.close()
            raise WeightLoadingError(f"tensor {key!r} listed in {index_file} is not in its shard {shard}")
    return checkpoint


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


def read_params(
    checkpoint: Checkpoint,
    mapping: KeyMapping,
    param_shapes: Mapping[ParamPath, tuple[int, ...]],
    place: Callable[[np.ndarray], Placed],
) -> tuple[dict[ParamPath, Placed], CheckpointExtras]:
    """Map a checkpoint onto the encoder's parameters, strictly, one tensor at a time.

    Every key, shape and dtype is checked from the headers before a tensor is read. Then each parameter
    tensor is read, converted to float32, transposed if it is a torch Linear weight, and handed to
    `place` (e.g. `jnp.asarray`, a copy on the device) before the next is read: the host holds one
    checkpoint tensor at a time, besides what `place` returns and the small unused tensors kept aside.

    Args:
        checkpoint: the open checkpoint.
        mapping: the encoder family's key mapping.
        param_shapes: the encoder's parameter paths and shapes (they must equal the table's paths).
        place: float32 array [parameter shape] (possibly a transposed view) -> the stored parameter.

    Returns:
        (the placed parameters by path, the extras: the key prefix used and the unused tensors).

    Raises:
        WeightLoadingError: naming the unexpected, missing, duplicated or wrong-shaped keys, a non-float
            parameter, a tied key whose tensor differs from its parameter's, or a tensor that cannot be
            read.
    """
    found, unused, tied, prefix = _match_keys(checkpoint, mapping, param_shapes)
    for copy, key in tied:
        if not np.array_equal(checkpoint.read(copy), checkpoint.read(key)):
            raise WeightLoadingError(
                f"{checkpoint.source}: tensor {copy!r} differs from {key!r}, the parameter it is tied to "
                "(jaxst keeps one tensor for both)"
            )
    extras = CheckpointExtras(key_prefix=prefix, unused_tensors={key: checkpoint.read(key) for key in unused})
    # One expression per tensor: the host array is freed once `place` has returned, before the next read.
    params = {
        path: place(_as_param(checkpoint.read(key), transposed)) for path, (key, transposed) in found.items()
    }
    return params, extras


def _match_keys(
    checkpoint: Checkpoint, mapping: KeyMapping, param_shapes: Mapping[ParamPath, tuple[int, ...]]
) -> tuple[dict[ParamPath, tuple[str, bool]], list[str], list[tuple[str, str]], str]:
    """(parameter path -> (checkpoint key, transposed), the unused keys present, the tied keys present
    with their parameters' checkpoint keys, the key prefix used)."""
    table, prefix, model_type, source = mapping.table, mapping.prefix, mapping.model_type, checkpoint.source
    if set(param_shapes) != {path for path, _ in table.values()}:
        raise AssertionError(f"internal: the {model_type} key table does not cover the encoder's parameters")
    found: dict[str, str] = {}  # table key -> checkpoint key
    tied_to = dict(mapping.tied_keys)
    tied = []  # (checkpoint key, table key)
    unused = []
    unexpected = []
    for key in checkpoint.headers:
        short = key.removeprefix(prefix)
        if short in table:
            if short in found:
                raise WeightLoadingError(f"{source}: {found[short]!r} and {key!r} are the same tensor twice")
            found[short] = key
        elif short in tied_to:
            tied.append((key, tied_to[short]))
        elif short in mapping.unused_keys:
            unused.append(key)
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
    plan = {}
    for short, key in found.items():
        path, transposed = table[short]
        expected = tuple(reversed(param_shapes[path])) if transposed else tuple(param_shapes[path])
        header = checkpoint.headers[key]
        if header.shape != expected:
            raise WeightLoadingError(
                f"{source}: tensor {key!r} has shape {header.shape}, expected {expected}"
            )
        if header.dtype not in _FLOAT_DTYPES:
            raise WeightLoadingError(
                f"{source}: tensor {key!r} has dtype {header.dtype}, "
                "expected float16, bfloat16, float32 or float64"
            )
        plan[path] = (key, transposed)
    for key, short in tied:
        if checkpoint.headers[key].shape != checkpoint.headers[found[short]].shape:
            raise WeightLoadingError(
                f"{source}: tensor {key!r} has shape {checkpoint.headers[key].shape}, expected "
                f"{checkpoint.headers[found[short]].shape} (it is tied to {found[short]!r})"
            )
    return plan, unused, [(key, found[short]) for key, short in tied], prefix if prefixed == {True} else ""


def _as_param(value: np.ndarray, transposed: bool) -> np.ndarray:
    value = np.asarray(value, dtype=np.float32)
    return value.T if transposed else value


def write_checkpoint(
    params: Mapping[ParamPath, Any],
    mapping: KeyMapping,
    extras: CheckpointExtras,
    folder: Path,
    max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE,
) -> None:
    """Write parameters and extras as transformers' `save_pretrained` does, one shard at a time.

    Up to `max_shard_size` bytes (an int, or a string like "5GB"; transformers' default "50GB") the
    tensors go to model.safetensors. Above it they are split in key order, as huggingface_hub splits
    them, into model-0000k-of-0000n.safetensors files of at most that size (a larger tensor alone in
    its own), listed in model.safetensors.index.json ({"metadata": {"total_size": bytes},
    "weight_map": {key: file}}). Weight files of an earlier save that this one does not overwrite are
    removed, so that the folder holds one checkpoint.

    Args:
        params: parameter path -> array (host or device), written in float32 under its checkpoint key
            with the extras' key prefix, transposed back to [out, in] for a torch Linear weight.
        mapping: the encoder family's key mapping.
        extras: the key prefix, and the unused tensors to write back unchanged.
        folder: an existing folder.
        max_shard_size: the shard threshold in bytes.
    """
    layout = {extras.key_prefix + short: entry for short, entry in mapping.table.items()}
    sizes = {key: 4 * math.prod(np.shape(params[path])) for key, (path, _) in layout.items()}
    sizes.update({key: value.nbytes for key, value in extras.unused_tensors.items()})

    def tensor(key: str) -> np.ndarray:
        if key not in layout:
            return np.ascontiguousarray(extras.unused_tensors[key])
        path, transposed = layout[key]
        return np.ascontiguousarray(_as_param(np.asarray(params[path]), transposed))

    split = split_state_dict_into_shards_factory(
        sizes, get_storage_size=int, filename_pattern=_SHARD_FILE_PATTERN, max_shard_size=max_shard_size
    )
    written = set(split.filename_to_tensors) | ({SAFETENSORS_INDEX_FILE} if split.is_sharded else set())
    for stale in [folder / SAFETENSORS_FILE, folder / SAFETENSORS_INDEX_FILE, *folder.glob(_SHARD_FILE_GLOB)]:
        if stale.name not in written:
            stale.unlink(missing_ok=True)
    for name, keys in split.filename_to_tensors.items():
        save_file({key: tensor(key) for key in keys}, str(folder / name), metadata={"format": "pt"})
    if split.is_sharded:
        index = {"metadata": split.metadata, "weight_map": split.tensor_to_filename}
        (folder / SAFETENSORS_INDEX_FILE).write_text(
            json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )


def _names(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(repr(key) for key in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")
