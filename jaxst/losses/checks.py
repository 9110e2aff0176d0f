"""Trace-time argument checks shared by the loss functions.

Shapes are static under `jax.jit`, so these run once per trace in plain Python and raise a `ValueError`
that names the loss, the arguments and their shapes, instead of letting a mismatch surface as an XLA
broadcasting error deep inside the computation. They also resolve the similarity / distance options
that sentence-transformers accepts as names or functions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from jaxst.similarity import PAIRWISE_SIMILARITY_FUNCTIONS, SIMILARITY_FUNCTIONS


def check_rank(loss_name: str, arrays: Mapping[str, jax.Array], rank: int) -> None:
    """Raises ValueError unless every named array has `rank` dimensions."""
    for name, array in arrays.items():
        if array.ndim != rank:
            raise ValueError(
                f"{loss_name}: {name} must have rank {rank}, "
                f"got shape {tuple(array.shape)} (rank {array.ndim})."
            )


def check_same_shape(loss_name: str, arrays: Mapping[str, jax.Array]) -> None:
    """Raises ValueError naming every array and its shape unless all the shapes are equal."""
    shapes = {name: tuple(array.shape) for name, array in arrays.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ValueError(f"{loss_name}: these arrays must have the same shape, got {listed}.")


def check_batch_size(loss_name: str, arrays: Mapping[str, jax.Array]) -> int:
    """Raises ValueError unless all the arrays share the leading (batch) dimension; returns it."""
    sizes = {name: array.shape[0] for name, array in arrays.items()}
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{name} {tuple(array.shape)}" for name, array in arrays.items())
        raise ValueError(
            f"{loss_name}: these arrays must have the same batch size (first dimension), got {listed}."
        )
    return next(iter(sizes.values()))


def check_trailing_dim(loss_name: str, arrays: Mapping[str, jax.Array]) -> None:
    """Raises ValueError unless all the arrays share the last (embedding) dimension."""
    if len({array.shape[-1] for array in arrays.values()}) > 1:
        listed = ", ".join(f"{name} {tuple(array.shape)}" for name, array in arrays.items())
        raise ValueError(
            f"{loss_name}: these arrays must have the same embedding dimension (last axis), got {listed}."
        )


def check_labels(loss_name: str, labels: jax.Array | None, reference_name: str, reference: jax.Array) -> None:
    """Raises ValueError unless `labels` has shape [B], one per row of the [B, ...] array `reference`."""
    if labels is None:
        raise ValueError(f"{loss_name} needs labels, got None.")
    batch_size = reference.shape[0]
    if jnp.shape(labels) != (batch_size,):
        raise ValueError(
            f"{loss_name}: labels must have shape ({batch_size},), one per row of {reference_name} "
            f"{tuple(reference.shape)}, got labels of shape {jnp.shape(labels)}."
        )


def resolve_function(
    owner: str,
    option: str,
    value: str | Callable[..., jax.Array],
    table: Mapping[str, Callable[..., jax.Array]],
) -> Callable[..., jax.Array]:
    """`value` when it is callable, else the function `table` has under that name.

    A `StrEnum` member is its value, so tables keyed by enum members (the distance metrics) take either.
    Raises ValueError naming `owner`, the option, the value and the known names otherwise.
    """
    if callable(value):
        return value
    if value not in table:
        names = [str(name) for name in table]
        raise ValueError(f"{owner}: unknown {option} {value!r}; expected one of {names}.")
    return table[value]


def resolve_similarity(
    loss_name: str, similarity_fct: str | Callable[..., jax.Array], *, pairwise: bool
) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """A similarity function from a name ("cosine", "dot", "euclidean", "manhattan") or a callable.

    `pairwise=True` looks names up among the row-wise functions ([N, D], [N, D] -> [N]), otherwise among
    the matrix ones ([N, D], [M, D] -> [N, M]). A callable is returned as given.
    """
    table: Mapping[str, Any] = PAIRWISE_SIMILARITY_FUNCTIONS if pairwise else SIMILARITY_FUNCTIONS
    return resolve_function(loss_name, "similarity_fct", similarity_fct, table)
