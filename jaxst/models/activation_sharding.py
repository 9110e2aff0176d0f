"""Activations split over a training mesh's batch axes, where a mesh is set.

`jaxst.training.sharding.ShardedParallel` traces its step under `jax.sharding.use_abstract_mesh`. Its
parameters are sharded over "fsdp" along their hidden dimension while the batch is split over "data" x
"fsdp": left alone, the partitioner may contract a matmul over the sharded hidden dimension and replicate
the [N, T, F] activations on every device instead of gathering the layer's weight (ZeRO-3). Constraining
the activations between layers to stay split along N makes it gather the weights. Without a mesh (one
device, pmap, shard_map) `split_batch` is the identity.
"""

from __future__ import annotations

import jax
from jax.sharding import AxisType, PartitionSpec

BATCH_MESH_AXES = ("data", "fsdp")


def split_batch(x: jax.Array) -> jax.Array:
    """`x` [N, ...] constrained to be split along N over the set mesh's "data" and "fsdp" axes; `x` itself
    when no mesh is set or it has neither axis (as an automatic axis)."""
    mesh = jax.sharding.get_abstract_mesh()
    automatic = {  # under shard_map its axes are manual: the code sees one device's block
        name for name, kind in zip(mesh.axis_names, mesh.axis_types, strict=True) if kind != AxisType.Manual
    }
    axes = tuple(  # in the mesh's order, as the batch is split (`ShardedParallel.batch_axes`)
        axis
        for axis in mesh.axis_names
        if axis in BATCH_MESH_AXES and axis in automatic and mesh.shape[axis] > 1
    )
    if not axes:
        return x
    return jax.lax.with_sharding_constraint(x, PartitionSpec(axes))
