"""Training with parameters sharded over a `jax.sharding.Mesh` (FSDP, tensor parallel), by GSPMD.

`fit(..., mesh=mesh)` runs the train step as one program over the global batch: `jax.jit` with
`NamedSharding`s places the parameters, the optimizer state and the batch, and XLA's partitioner (GSPMD)
inserts the collectives (gathering an FSDP-sharded weight before its matmul, reducing its gradient
after). The step is the same function the data-parallel drivers run (`jaxst.training.step`), called
under `jax.vmap` with the axis name "data" of size one: its averages over devices are the identity, and
the loss sees every text of the batch, so in-batch negatives span the global batch.

The mesh's axes are named among `MESH_AXES` (a missing one has size 1):

- "data" and "fsdp" split the batch along each array's split axis (`jaxst.batch_layouts`);
- "fsdp" also shards every large tensor (parameters, Adam moments, a frozen LoRA base) along one
  dimension (ZeRO-3: a layer's weight is gathered when the layer runs);
- "model" splits attention heads and MLP units (tensor parallelism: column-parallel in,
  row-parallel out), and the vocabulary of the embedding table.

Which dimension of a parameter plays which part comes from the encoder family's `partition_rules`
(`jaxst.models.encoder.TransformerEncoder`): a regular expression over the parameter's path within the
encoder, and the logical axis of each dimension ("vocab", "embed", "heads", "mlp" or None).
`LOGICAL_TO_MESH` maps those to mesh axes. A dimension stays unsharded where the mesh axis does not
divide it. A tensor no rule names (a Dense module, a LoRA adapter, a loss's classifier) with two or more
dimensions is sharded over "fsdp" along its largest divisible dimension; vectors (norms, biases) and
scalars are replicated.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxst.batch_layouts import PackedBatch, TrainingBatch
from jaxst.models.activation_sharding import split_batch
from jaxst.models.encoder import PartitionRules
from jaxst.training.parallel import HostBatch, agree_max_over_processes, put_process_share, to_host
from jaxst.training.step import AXIS_NAME

MESH_AXES = ("data", "fsdp", "model")
BATCH_AXES = ("data", "fsdp")
LOGICAL_TO_MESH = {"vocab": "model", "embed": "fsdp", "heads": "model", "mlp": "model"}


def check_mesh(mesh: Any) -> Mesh:
    """`mesh` itself when it is a `jax.sharding.Mesh` whose axis names are among MESH_AXES.

    Raises:
        TypeError / ValueError: naming what is wrong.
    """
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}.")
    unknown = [name for name in mesh.axis_names if name not in MESH_AXES]
    if unknown:
        raise ValueError(
            f"Unknown mesh axis names {unknown}; a training mesh names its axes among {MESH_AXES}."
        )
    return mesh


def key_path_names(path: tuple[Any, ...]) -> list[str]:
    """A pytree key path -> its keys as strings: dict keys, sequence indices, attribute names but the
    `.value` of an nnx variable."""
    names = []
    for key in path:
        if isinstance(key, jax.tree_util.GetAttrKey):
            if key.name != "value":
                names.append(key.name)
        else:
            names.append(str(key.key if hasattr(key, "key") else key.idx))
    return names


def encoder_path(path: tuple[Any, ...]) -> str | None:
    """The path of a train-state leaf within its encoder ("layers/3/query/kernel"), None outside one.

    The state holds encoder parameters under "encoder" keys: the model's, a frozen LoRA base, a loss's
    model copy, and the optimizer moments of each, which repeat the parameters' paths.
    """
    names = key_path_names(path)
    if "encoder" not in names:
        return None
    return "/".join(names[len(names) - names[::-1].index("encoder") :])


def partition_spec(
    path: tuple[Any, ...], shape: tuple[int, ...], rules: PartitionRules, mesh_shape: dict[str, int]
) -> PartitionSpec:
    """The PartitionSpec of a train-state leaf at `path` with `shape` (see the module docstring)."""
    within = encoder_path(path)
    logical = next(
        (axes for pattern, axes in rules if within is not None and re.fullmatch(pattern, within)), None
    )
    if logical is None:
        if len(shape) < 2:
            return PartitionSpec()
        fsdp = mesh_shape.get("fsdp", 1)
        divisible = [d for d in range(len(shape)) if shape[d] % fsdp == 0]
        if fsdp == 1 or not divisible:
            return PartitionSpec()
        largest = max(divisible, key=lambda d: shape[d])
        logical = tuple("embed" if d == largest else None for d in range(len(shape)))
    if len(logical) != len(shape):
        raise ValueError(
            f"The partition rule for {within} names {len(logical)} axes {logical}; the parameter has shape "
            f"{shape}."
        )
    spec, used = [], set()
    for size, name in zip(shape, logical, strict=True):
        axis = LOGICAL_TO_MESH.get(name) if name is not None else None
        if axis is None or axis in used or mesh_shape.get(axis, 1) == 1 or size % mesh_shape[axis]:
            spec.append(None)
        else:
            spec.append(axis)
            used.add(axis)
    return PartitionSpec(*spec)


def state_shardings(state: Any, mesh: Mesh, rules: PartitionRules) -> Any:
    """The NamedSharding of every leaf of a train state (any pytree of arrays) on `mesh`."""
    mesh_shape = dict(mesh.shape)
    return jax.tree_util.tree_map_with_path(
        lambda path, x: NamedSharding(mesh, partition_spec(path, np.shape(x), rules, mesh_shape)), state
    )


class ShardedParallel:
    """Runs the train step on `mesh` with parameters and optimizer state sharded by `rules` (see the module
    docstring); the same interface as `jaxst.training.parallel.PmapParallel`.

    Attributes:
        num_devices: the number of slices a global batch splits into (the "data" x "fsdp" size).
        num_local_devices: the slices of this process's share of a batch.
    """

    def __init__(self, mesh: Mesh, rules: PartitionRules):
        self.mesh = check_mesh(mesh)
        self.rules = rules
        # In the mesh's order: a process's devices then hold one block of the batch when the batch axes
        # that span processes come first.
        self.batch_axes = tuple(axis for axis in mesh.axis_names if axis in BATCH_AXES)
        self.num_devices = math.prod(mesh.shape[axis] for axis in self.batch_axes)
        if self.num_devices % jax.process_count():
            raise ValueError(
                f"The mesh splits a batch {self.num_devices} ways ({dict(mesh.shape)}), which "
                f"{jax.process_count()} processes cannot share evenly."
            )
        self.num_local_devices = self.num_devices // jax.process_count()
        self.shardings: Any = None  # the state's, set by put_state
        self._replicated = NamedSharding(mesh, PartitionSpec())

    def place_texts(self, texts: Any) -> Any:
        """The k * B texts of a batch (`TrainingBatch.texts()`: padded arrays [N, T], or a PackedBatch's
        token_index and attention_mask [N, P] beside its rows [R, P]) split over the batch axes along N.

        A batch array [k, B, T] is split along B; flattened column after column, each device's texts
        would not be one block of N, which the partitioner cannot express: it would replicate the
        texts, and every activation after them, on every device.
        """
        if isinstance(texts, PackedBatch):
            return texts.replace(
                token_index=split_batch(texts.token_index), attention_mask=split_batch(texts.attention_mask)
            )
        return {name: split_batch(x) for name, x in texts.items()}

    def step_options(self) -> dict[str, Any]:
        """What `make_train_step` needs to know of this driver: its step sees the global batch, whose texts
        `place_texts` splits."""
        return {"global_batch": True, "place_texts": self.place_texts}

    def split_sharding(self, axis: int) -> NamedSharding:
        """The sharding of a batch array split along `axis` over the batch axes."""
        return NamedSharding(self.mesh, PartitionSpec(*([None] * axis), self.batch_axes or None))

    def put_state(self, state: Any) -> Any:
        """Places each leaf of a host state in its shards (each device gets only its own slices); a leaf
        already in its shards (restored from a checkpoint by `restore_target`) stays as it is."""
        self.shardings = state_shardings(state, self.mesh, self.rules)

        def put(x: Any, sharding: NamedSharding) -> jax.Array:
            if isinstance(x, jax.Array) and x.sharding.is_equivalent_to(sharding, x.ndim):
                return x
            x = np.asarray(x)
            return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

        return jax.tree.map(put, state, self.shardings)

    def get_state(self, state: Any) -> Any:
        """One host copy of the state (numpy leaves), gathered from the shards."""
        return jax.tree.map(to_host, state)

    def state_to_save(self, state: Any) -> Any:
        """What a checkpoint of the state holds: the sharded arrays themselves, each process writing the
        shards it holds (orbax)."""
        return state

    def restore_target(self, host_state: Any) -> Any:
        """Abstract arrays with the shardings of `host_state`'s leaves: a checkpoint restores each
        process's shards straight onto its devices, with no full copy anywhere."""
        shardings = state_shardings(host_state, self.mesh, self.rules)
        return jax.tree.map(
            lambda x, sharding: jax.ShapeDtypeStruct(np.shape(x), jnp.result_type(x), sharding=sharding),
            host_state,
            shardings,
        )

    def put_batch(self, batch: HostBatch) -> TrainingBatch:
        """`batch` is this process's share; the global batch is the concatenation over processes along
        each array's split axis, split over the batch axes."""
        return put_process_share(batch, self.split_sharding, self.num_local_devices)

    def agree_max(self, values: list[int]) -> list[int]:
        """The element-wise maxima of `values` over all processes."""
        return agree_max_over_processes(values)

    def compile(self, step: Callable) -> Callable:
        """The step over the global batch (`over_global_batch`), jit-compiled with the state's shardings
        in and out."""
        jitted: list[Callable] = []  # built at the first call: the state's shardings come from put_state

        def run(state: Any, batch: TrainingBatch) -> Any:
            if not jitted:
                jitted.append(self.jit(step, self.shardings))
            return jitted[0](state, batch)

        return run

    def jit(self, step: Callable, shardings: Any) -> Callable:
        """`over_global_batch(step)` under `jax.jit`: the state comes out with `shardings` (it comes in
        with its own, as the batch does, and is donated), the metrics replicated."""
        global_step = over_global_batch(step, self.num_devices)

        def traced_on_mesh(state: Any, batch: TrainingBatch) -> Any:
            with jax.sharding.use_abstract_mesh(self.mesh.abstract_mesh):  # for `split_batch`
                return global_step(state, batch)

        return jax.jit(
            traced_on_mesh,
            out_shardings=(shardings, self._replicated),
            donate_argnums=0,
        )

    def get_metrics(self, metrics: dict[str, jax.Array]) -> dict[str, float]:
        return {k: float(to_host(v)) for k, v in metrics.items()}


def over_global_batch(step: Callable, slices: int) -> Callable:
    """The per-device `step` (`jaxst.training.step.make_train_step(..., global_batch=True)`) as a function
    of the global state and batch: run under `jax.vmap` with the axis "data" of size one, after
    `global_token_index`."""

    def global_step(state: Any, batch: TrainingBatch) -> Any:
        batch = global_token_index(batch, slices)
        state, batch = jax.tree.map(lambda x: jnp.expand_dims(x, 0), (state, batch))
        return jax.tree.map(lambda x: x[0], jax.vmap(step, axis_name=AXIS_NAME)(state, batch))

    return global_step


def global_token_index(batch: TrainingBatch, slices: int) -> TrainingBatch:
    """A packed batch of `slices` slices, each indexing its own rows (`jaxst.packing`), as one batch whose
    token_index points into all rows: slice s's indices move by s * (rows per slice) * P. A padded batch
    is returned as it is.

    token_index [k, B, P] + (i // (B / slices)) * (R / slices) * P for example i, R the rows [R, P].
    """
    if not isinstance(batch, PackedBatch):
        return batch
    rows, length = batch.packed_input_ids.shape
    examples = batch.token_index.shape[1]
    offsets = (jnp.arange(examples) // (examples // slices)) * (rows // slices) * length
    offsets = offsets.astype(batch.token_index.dtype)[None, :, None]
    return batch.replace(token_index=batch.token_index + offsets)
