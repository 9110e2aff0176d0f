"""Trace-time argument checks shared by the loss functions, made with chex.

Shapes are static under `jax.jit`, so these run once per trace in plain Python. Each is a chex assertion
(`chex.assert_rank`, `assert_equal_shape`, `assert_equal_shape_prefix` / `_suffix`, `assert_shape`) whose
AssertionError becomes a `ValueError` that names the loss, the arguments and their shapes, instead of
letting a mismatch surface as an XLA broadcasting error deep inside the computation. (chex's own message
stays attached as the cause. `chex.disable_asserts()` turns these checks off with chex's others.) They
also resolve the similarity / distance options that sentence-transformers accepts as names or functions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import chex
import jax
import jax.numpy as jnp

from jaxst.similarity import PAIRWISE_SIMILARITY_FUNCTIONS, SIMILARITY_FUNCTIONS


@contextlib.contextmanager
def _refused_with(message: str) -> Iterator[None]:
    """Raises ValueError(message) for a chex AssertionError in the block, with chex's error as its cause."""
    try:
        yield
    except AssertionError as error:
        raise ValueError(message) from error


def _listed(arrays: Mapping[str, jax.Array]) -> str:
    return ", ".join(f"{name} {tuple(array.shape)}" for name, array in arrays.items())


def check_rank(loss_name: str, arrays: Mapping[str, jax.Array], rank: int) -> None:
    """Raises ValueError unless every named array has `rank` dimensions."""
    for name, array in arrays.items():
        shape = tuple(array.shape)
        with _refused_with(
            f"{loss_name}: {name} must have rank {rank}, got shape {shape} (rank {len(shape)})."
        ):
            chex.assert_rank(array, rank)


def check_same_shape(loss_name: str, arrays: Mapping[str, jax.Array]) -> None:
    """Raises ValueError naming every array and its shape unless all the shapes are equal."""
    with _refused_with(f"{loss_name}: these arrays must have the same shape, got {_listed(arrays)}."):
        chex.assert_equal_shape(list(arrays.values()))


def check_batch_size(loss_name: str, arrays: Mapping[str, jax.Array]) -> int:
    """Raises ValueError unless all the arrays share the leading (batch) dimension; returns it."""
    listed = _listed(arrays)
    with _refused_with(
        f"{loss_name}: these arrays must have the same batch size (first dimension), got {listed}."
    ):
        chex.assert_equal_shape_prefix(list(arrays.values()), 1)
    return next(iter(arrays.values())).shape[0]


def check_trailing_dim(loss_name: str, arrays: Mapping[str, jax.Array]) -> None:
    """Raises ValueError unless all the arrays share the last (embedding) dimension."""
    listed = _listed(arrays)
    with _refused_with(
        f"{loss_name}: these arrays must have the same embedding dimension (last axis), got {listed}."
    ):
        chex.assert_equal_shape_suffix(list(arrays.values()), 1)


def check_labels(loss_name: str, labels: jax.Array | None, reference_name: str, reference: jax.Array) -> None:
    """Raises ValueError unless `labels` has shape [B], one per row of the [B, ...] array `reference`."""
    if labels is None:
        raise ValueError(f"{loss_name} needs labels, got None.")
    batch_size = reference.shape[0]
    with _refused_with(
        f"{loss_name}: labels must have shape ({batch_size},), one per row of {reference_name} "
        f"{tuple(reference.shape)}, got labels of shape {jnp.shape(labels)}."
    ):
        chex.assert_shape(jnp.asarray(labels), (batch_size,))


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
