"""Runs the per-device train step data-parallel: `jax.shard_map` on a Mesh, or `jax.pmap` on one host.

Both drivers run the very same step function (`jaxst.training.step`) with the axis name `"data"`;
they differ only in how the state and the batch reach the devices:

- `PmapParallel` (`fit(data_parallel="pmap")`): the state is replicated with a leading device axis, the
  batch is split along its example axis into [n_devices, ...] slices.
- `MeshParallel` (fit's default): a 1-D Mesh over all devices of all processes
  (`jax.distributed.initialize` first, when several processes train together), or over some of this
  process's devices. The state is a replicated global array; each process feeds
  only its own share of the global batch, which becomes one global array sharded over "data".

Each array of a batch splits along the axis its layout names (`jaxst.batch_layouts`, `split_axes`).
Packed batches have shapes that depend on the texts; `agree_max` makes every process pick the same ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxst.batch_layouts import TrainingBatch, as_batch
from jaxst.training.step import AXIS_NAME

HostBatch = Mapping[str, np.ndarray] | TrainingBatch


def split_spec(axis: int) -> PartitionSpec:
    """The PartitionSpec of an array split over the "data" axis along `axis`."""
    return PartitionSpec(*([None] * axis), AXIS_NAME)


def first_device_slice(stacked: jax.Array) -> np.ndarray:
    """Device 0's slice of a pmap array [num_devices, ...], copied from its shard.

    Indexing (`stacked[0]`) would instead compile and run a program over every device, with a
    collective, per leaf: slow, and on a busy CPU with many fake devices it can stall.
    """
    return np.asarray(stacked.addressable_data(0))[0]


def to_host(x: jax.Array) -> np.ndarray:
    """The whole value of an array as a numpy array, in every process (gathered from the processes that
    hold its shards when this one does not hold all of it)."""
    if not isinstance(x, jax.Array) or x.is_fully_addressable:
        return np.asarray(x)
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def check_divisible(global_batch_size: int, num_devices: int) -> None:
    """Data parallelism splits a batch evenly: anything else is an error (jaxst does not pad batches)."""
    if global_batch_size % num_devices:
        raise ValueError(
            f"The batch size {global_batch_size} is not divisible by the number of devices "
            f"({num_devices}); choose a batch size that is a multiple of {num_devices}."
        )


def put_process_share(
    batch: HostBatch, sharding_along: Callable[[int], NamedSharding], num_local_slices: int
) -> TrainingBatch:
    """This process's share of a global batch as global arrays: each array of `batch` (its layout, or
    named arrays) placed with `sharding_along(its split axis)`; the global batch is the concatenation of
    the processes' shares along each array's split axis, which `num_local_slices` must divide."""

    def put(value: np.ndarray, axis: int) -> jax.Array:
        check_divisible(value.shape[axis], num_local_slices)
        return jax.make_array_from_process_local_data(sharding_along(axis), value)

    batch = as_batch(batch)
    return jax.tree.map(put, batch, batch.split_axes())


def agree_max_over_processes(values: list[int]) -> list[int]:
    """The element-wise maxima of `values` over all processes (each process calls this in step)."""
    if jax.process_count() == 1:
        return values
    gathered = multihost_utils.process_allgather(np.asarray(values, np.int64))
    return [int(v) for v in np.max(gathered, axis=0)]


class PmapParallel:
    """Data parallelism over this process's devices with `jax.pmap`."""

    def __init__(self, devices: Sequence[jax.Device] | None = None):
        self.devices = list(devices or jax.local_devices())
        self.num_devices = len(self.devices)
        self.num_local_devices = self.num_devices
        # pmap's inputs: a leading axis of size num_devices, one slice per device.
        self._stacked = NamedSharding(Mesh(np.array(self.devices), (AXIS_NAME,)), PartitionSpec(AXIS_NAME))

    def _put_stacked(self, slices: np.ndarray) -> jax.Array:
        return jax.device_put(slices, self._stacked)

    def put_state(self, state: Any) -> Any:
        return jax.tree.map(
            lambda x: self._put_stacked(np.broadcast_to(np.asarray(x), (self.num_devices, *np.shape(x)))),
            state,
        )

    def get_state(self, state: Any) -> Any:
        """One host copy of the replicated state (numpy leaves)."""
        return jax.tree.map(first_device_slice, state)

    def state_to_save(self, state: Any) -> Any:
        """What a checkpoint of the device state holds: one host copy."""
        return self.get_state(state)

    def restore_target(self, host_state: Any) -> Any:
        """What a checkpoint restores into (`Checkpointer.restore`'s `like`): host arrays."""
        return host_state

    def put_batch(self, batch: HostBatch) -> TrainingBatch:
        """Splits each array of `batch` (a layout of host arrays, or its named arrays) along its split axis
        into one slice per device, stacked on a leading device axis."""

        def put(value: np.ndarray, axis: int) -> jax.Array:
            check_divisible(value.shape[axis], self.num_devices)
            return self._put_stacked(np.stack(np.split(value, self.num_devices, axis=axis)))

        batch = as_batch(batch)
        return jax.tree.map(put, batch, batch.split_axes())

    def agree_max(self, values: list[int]) -> list[int]:
        """One process feeds every device, so its own values are the maxima (see `MeshParallel`)."""
        return values

    def step_options(self) -> dict[str, Any]:
        """What `make_train_step` needs to know of this driver: nothing, its step runs per device."""
        return {}

    def compile(self, step: Callable) -> Callable:
        return jax.pmap(step, axis_name=AXIS_NAME, devices=self.devices, donate_argnums=0)

    def get_metrics(self, metrics: dict[str, jax.Array]) -> dict[str, float]:
        return {k: float(first_device_slice(v)) for k, v in metrics.items()}


class MeshParallel:
    """Data parallelism over all devices of all processes with `jax.shard_map` on a 1-D Mesh."""

    def __init__(self, devices: Sequence[jax.Device] | None = None):
        devices = list(devices or jax.devices())
        self.mesh = Mesh(np.array(devices), (AXIS_NAME,))
        self.num_devices = len(devices)
        self.num_local_devices = sum(d.process_index == jax.process_index() for d in devices)
        self._replicated = NamedSharding(self.mesh, PartitionSpec())

    def put_state(self, state: Any) -> Any:
        def put(x: Any) -> jax.Array:
            x = np.asarray(x)
            return jax.make_array_from_callback(x.shape, self._replicated, lambda index: x[index])

        return jax.tree.map(put, state)

    def get_state(self, state: Any) -> Any:
        return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), state)

    def state_to_save(self, state: Any) -> Any:
        return self.get_state(state)

    def restore_target(self, host_state: Any) -> Any:
        return host_state

    def put_batch(self, batch: HostBatch) -> TrainingBatch:
        """`batch` is this process's share; the global batch is the concatenation over processes along
        each array's split axis."""
        return put_process_share(
            batch, lambda axis: NamedSharding(self.mesh, split_spec(axis)), self.num_local_devices
        )

    def agree_max(self, values: list[int]) -> list[int]:
        """The element-wise maxima of `values` over all processes (each process calls this in step)."""
        return agree_max_over_processes(values)

    def step_options(self) -> dict[str, Any]:
        """What `make_train_step` needs to know of this driver: nothing, its step runs per device."""
        return {}

    def compile(self, step: Callable) -> Callable:
        compiled: dict[Any, Callable] = {}  # by the batch's pytree structure: its layout and arrays

        def run(state: Any, batch: TrainingBatch) -> Any:
            layout = jax.tree.structure(batch)
            if layout not in compiled:
                mapped = jax.shard_map(
                    step,
                    mesh=self.mesh,
                    in_specs=(PartitionSpec(), jax.tree.map(split_spec, batch.split_axes())),
                    out_specs=(PartitionSpec(), PartitionSpec()),
                )
                compiled[layout] = jax.jit(mapped, donate_argnums=0)
            return compiled[layout](state, batch)

        return run

    def get_metrics(self, metrics: dict[str, jax.Array]) -> dict[str, float]:
        return {k: float(np.asarray(v.addressable_data(0))) for k, v in metrics.items()}
