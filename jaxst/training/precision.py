"""Mixed precision for training: the encoder computes in bfloat16, parameters stay float32.

The compute dtype is a static attribute of the encoder's modules (it lives in the NNX graphdef), so
bfloat16 training uses the same parameters with a graphdef whose modules say bfloat16.
"""

from __future__ import annotations

import copy
from typing import Any

import jax.numpy as jnp
from flax import nnx


def with_compute_dtype(graphdef: nnx.GraphDef, params: Any, dtype: Any) -> nnx.GraphDef:
    """The graphdef of the same encoder computing in `dtype` (every module with a `dtype` attribute)."""
    encoder = nnx.merge(graphdef, params)
    for _, module in nnx.iter_modules(encoder):
        if hasattr(module, "dtype"):
            module.dtype = jnp.dtype(dtype)
    return nnx.split(encoder)[0]


def forward_in_dtype(model: Any, dtype: Any | None) -> Any:
    """`model.forward`, with the encoder computing in `dtype` (None: the model's own dtype)."""
    if dtype is None or jnp.dtype(dtype) == jnp.dtype(model.dtype):
        return model.forward
    twin = copy.copy(model)
    twin.graphdef = with_compute_dtype(model.graphdef, model.params["encoder"], dtype)
    return twin.forward
