"""Whole-pytree sums a train step takes over every parameter: the global norm and the finiteness flag.

Both are written as one dot product per leaf (`jnp.dot(ravel(x), ravel(y))`, float32 accumulation,
`Precision.HIGHEST` so that accelerators do not round the products to bfloat16). XLA's CPU backend hands
such a dot to its kernel library, where an `jnp.sum` / `jnp.all` per leaf becomes two or three
LLVM-compiled kernels (a reduce-window and a reduce, after the elementwise part): over MiniLM's 101
parameter arrays the train step then compiles about 400 fewer kernels, some 0.5-0.9 s of its compile
(`benchmarks/README.md`). The sums are the same; only their order of addition may differ.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import lax


def _dot(x: jax.Array, y: jax.Array) -> jax.Array:
    """sum_i x_i * y_i over all elements of two arrays of one shape, in float32."""
    return jnp.dot(
        jnp.ravel(x), jnp.ravel(y), precision=lax.Precision.HIGHEST, preferred_element_type=jnp.float32
    )


def global_norm(tree: Any) -> jax.Array:
    """float32 scalar: sqrt(sum over the leaves of sum(x^2)), the norm of all leaves as one vector (as
    `optax.tree.norm`); the leaves are floating-point arrays (gradients, updates)."""
    total = jnp.zeros((), jnp.float32)
    for leaf in jax.tree.leaves(tree):
        total = total + _dot(leaf, leaf)
    return jnp.sqrt(total)


def all_finite(tree: Any) -> jax.Array:
    """bool scalar: True when no element of any leaf of `tree` is NaN or infinite (all(isfinite(x))).

    Exact: 0 * x is 0 for every finite x and NaN for an infinite or NaN one, so sum(0 * x) over all
    leaves is 0 or NaN and never overflows. Leaves that are not floating-point are finite.
    """
    total = jnp.zeros((), jnp.float32)
    for leaf in jax.tree.leaves(tree):
        if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact):
            total = total + _dot(leaf, jnp.zeros_like(leaf))
    return total == 0
