"""Checks shared by the loss tests: inputs with edge cases, parity with sentence-transformers, jit/vmap/bf16.

A JAX loss under test is written as `loss(columns, labels) -> scalar`, `columns` a list of [B, D] arrays
(anchor, positive, ...), the same layout in which `torch_loss_and_grads` runs sentence-transformers' class.
The parity, trace-time error and bfloat16 checks run the loss both jitted and not, as chex's `with_jit`
and `without_jit` variants (`for_each_jit_variant`).
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxst.validation.torch_reference import torch_loss_and_grads

JaxLoss = Callable[[list[jax.Array], jax.Array | None], jax.Array]

PARITY_RTOL = 1e-5
# Errors are max-norm relative errors, max |actual - expected| / max |expected|, against ABSOLUTE_FLOOR
# where the expected values are all zero. A gradient is measured separately on the rows at zero input
# vectors and on the others: L2 normalisation divides by its 1e-12 epsilon at a zero vector, so those rows
# hold gradients ~1e12 times larger, which would otherwise hide any error in the rest.
ABSOLUTE_FLOOR = 1e-6

EDGE_CASES = ("random", "batch_of_one", "duplicate_rows", "zero_vectors")


def make_columns(
    case: str, num_columns: int, *, batch: int = 6, dim: int = 8, seed: int = 0
) -> list[np.ndarray]:
    """float32 [B, D] columns for one of EDGE_CASES.

    duplicate_rows: row 1 repeats row 0 in every column, and row 2 is the same vector in every column.
    zero_vectors: row 0 is zero in every column, row 1 in the first column only, row 2 in the last only.
    """
    rng = np.random.default_rng(seed)
    rows = 1 if case == "batch_of_one" else batch
    columns = [rng.standard_normal((rows, dim)).astype(np.float32) for _ in range(num_columns)]
    if case == "duplicate_rows":
        for column in columns:
            column[1] = column[0]
            column[2] = columns[0][2]
    elif case == "zero_vectors":
        for column in columns:
            column[0] = 0.0
        columns[0][1] = 0.0
        columns[-1][2] = 0.0
    elif case not in ("random", "batch_of_one"):
        raise ValueError(f"unknown case {case!r}")
    return columns


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |actual - expected| / max |expected| (see PARITY_RTOL); NaN anywhere makes it NaN."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    return float(np.abs(actual - expected).max() / max(np.abs(expected).max(), ABSOLUTE_FLOOR))


def gradient_error(actual: np.ndarray, expected: np.ndarray, column: np.ndarray) -> float:
    """relative_error of a [B, D] gradient, taken apart on the rows where `column` is a zero vector."""
    at_zero = np.all(np.asarray(column) == 0, axis=1)
    return max(relative_error(actual[rows], expected[rows]) for rows in (at_zero, ~at_zero) if rows.any())


Case = tuple[Sequence[np.ndarray], np.ndarray | None]


def edge_cases(
    num_columns: int, make_labels: Callable[[int], np.ndarray | None], *, seed: int = 0, **sizes: int
) -> dict[str, Case]:
    """Every one of EDGE_CASES as (columns, make_labels(batch size)); `sizes` as for make_columns."""
    cases = {}
    for case in EDGE_CASES:
        columns = make_columns(case, num_columns, seed=seed, **sizes)
        cases[case] = (columns, make_labels(len(columns[0])))
    return cases


def for_each_jit_variant(check: Callable[[Callable[[Callable], Callable]], None]) -> None:
    """Runs `check(variant)` once per chex variant, `with_jit` (variant(fn) is jax.jit(fn)) and
    `without_jit` (variant(fn) calls fn as it is), through `chex.variants`; a failure names its variant.

    chex.variants makes one test per variant out of a test method; here each is called at once, with a
    stand-in for the test case on which chex sets `variant`.
    """

    @chex.variants(with_jit=True, without_jit=True)
    def loss(case):
        check(case.variant)

    for variant_test in loss:
        try:
            variant_test(types.SimpleNamespace())
        except AssertionError as error:
            raise AssertionError(f"{variant_test.__name__}: {error}") from error


def as_arrays(columns: Sequence, labels) -> tuple[list[jax.Array], jax.Array | None]:
    return [jnp.asarray(c) for c in columns], None if labels is None else jnp.asarray(labels)


def assert_matches_torch(loss: JaxLoss, make_torch_loss: Callable, cases: Mapping[str, Case]) -> None:
    """On every named case, value and per-column gradients equal sentence-transformers' at PARITY_RTOL,
    with the loss jitted and not (`for_each_jit_variant`).

    Values and gradients must also be finite. The jitted loss is traced once for all the cases (one
    compile per distinct shape), which keeps the tests fast.
    """
    expected = {
        name: torch_loss_and_grads(make_torch_loss, columns, labels)
        for name, (columns, labels) in cases.items()
    }

    def check(variant: Callable[[Callable], Callable]) -> None:
        value_and_grad = variant(jax.value_and_grad(loss))
        for name, (columns, labels) in cases.items():
            value, grads = value_and_grad(*as_arrays(columns, labels))
            grads = [np.asarray(g) for g in grads]
            expected_value, expected_grads = expected[name]
            assert np.isfinite(value) and all(np.isfinite(g).all() for g in grads), f"{name}: not finite"
            value_error = relative_error(value, expected_value)
            assert value_error <= PARITY_RTOL, f"{name}: value {float(value)} != {expected_value}"
            for index, (grad, expected_grad) in enumerate(zip(grads, expected_grads, strict=True)):
                error = gradient_error(grad, expected_grad, columns[index])
                assert error <= PARITY_RTOL, f"{name}: gradient of column {index}, relative error {error:.3g}"

    for_each_jit_variant(check)


def assert_traces_once(loss: JaxLoss, columns: Sequence[np.ndarray], labels: np.ndarray | None) -> None:
    """jit(loss) traces once for two calls with new values of the same shapes."""
    traces = []

    def counted(cols, labs):
        traces.append(1)
        return loss(cols, labs)

    jitted = jax.jit(jax.value_and_grad(counted))
    for shift in (0.0, 0.5):
        cols = [jnp.asarray(c + shift) for c in columns]
        jax.block_until_ready(jitted(cols, None if labels is None else jnp.asarray(labels)))
    assert len(traces) == 1, f"traced {len(traces)} times"


def assert_vmap_matches_loop(
    loss: JaxLoss, groups: Sequence[tuple[list[np.ndarray], np.ndarray | None]]
) -> None:
    """vmap of the loss and of its gradient over stacked groups equals computing each group alone."""
    stacked_columns = [jnp.stack([cols[i] for cols, _ in groups]) for i in range(len(groups[0][0]))]
    has_labels = groups[0][1] is not None
    stacked_labels = jnp.stack([labs for _, labs in groups]) if has_labels else None
    value_and_grad = jax.jit(jax.value_and_grad(loss))
    batched = jax.jit(jax.vmap(jax.value_and_grad(loss), in_axes=(0, 0 if has_labels else None)))
    values, grads = batched(stacked_columns, stacked_labels)
    for g, (cols, labs) in enumerate(groups):
        value, grad = value_and_grad(
            [jnp.asarray(c) for c in cols], None if labs is None else jnp.asarray(labs)
        )
        np.testing.assert_allclose(values[g], value, rtol=1e-6, atol=1e-7)
        for stacked_grad, single_grad in zip(grads, grad, strict=True):
            np.testing.assert_allclose(stacked_grad[g], single_grad, rtol=1e-5, atol=1e-6)


def assert_bfloat16_close(
    loss: JaxLoss, columns: Sequence[np.ndarray], labels: np.ndarray | None, *, rtol: float = 2e-2
) -> None:
    """bfloat16 inputs give float32: equal to float32 on the rounded inputs, close to the float32 loss;
    jitted and not (`for_each_jit_variant`)."""
    columns, labels = as_arrays(columns, labels)
    rounded = [c.astype(jnp.bfloat16) for c in columns]

    def check(variant: Callable[[Callable], Callable]) -> None:
        run = variant(loss)
        value = run(rounded, labels)
        assert value.dtype == jnp.float32, value.dtype
        np.testing.assert_allclose(value, run([r.astype(jnp.float32) for r in rounded], labels), rtol=1e-6)
        np.testing.assert_allclose(value, run(columns, labels), rtol=rtol, atol=1e-4)

    for_each_jit_variant(check)


def assert_trace_time_error(loss: JaxLoss, columns: Sequence, labels, *fragments: str) -> None:
    """Calling the loss on these shapes raises ValueError whose message contains every fragment: jitted,
    when it is traced, and not jitted (`for_each_jit_variant`)."""
    columns, labels = as_arrays(columns, labels)

    def check(variant: Callable[[Callable], Callable]) -> None:
        try:
            variant(loss)(columns, labels)
        except ValueError as error:
            message = str(error)
            missing = [f for f in fragments if f not in message]
            assert not missing, f"{missing} not in {message!r}"
            return
        raise AssertionError("no error")

    for_each_jit_variant(check)
