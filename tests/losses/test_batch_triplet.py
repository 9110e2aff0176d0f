"""Batch triplet losses against sentence-transformers' own classes: value and gradient, edge cases, ties."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from sentence_transformers.sentence_transformer import losses as st_losses

from jaxst.losses.batch_triplet import (
    BatchAllTripletLoss,
    BatchHardSoftMarginTripletLoss,
    BatchHardTripletLoss,
    BatchHardTripletLossDistanceFunction,
    BatchSemiHardTripletLoss,
    batch_all_triplet_loss,
    batch_hard_soft_margin_triplet_loss,
    batch_hard_triplet_loss,
    batch_semi_hard_triplet_loss,
)
from jaxst.validation.torch_reference import torch_loss_and_grads
from tests.losses.parity_checks import (
    PARITY_RTOL,
    assert_bfloat16_close,
    assert_matches_torch,
    assert_trace_time_error,
    assert_traces_once,
    assert_vmap_matches_loop,
)

ST_DISTANCES = st_losses.BatchHardTripletLossDistanceFunction


def torch_manhattan(embeddings: torch.Tensor) -> torch.Tensor:
    return (embeddings[:, None, :] - embeddings[None, :, :]).abs().sum(-1)


# name -> (jaxst distance, the same distance handed to sentence-transformers)
DISTANCES = {
    "euclidean": (BatchHardTripletLossDistanceFunction.euclidean_distance, ST_DISTANCES.euclidean_distance),
    "squared_euclidean": (
        functools.partial(BatchHardTripletLossDistanceFunction.euclidean_distance, squared=True),
        functools.partial(ST_DISTANCES.euclidean_distance, squared=True),
    ),
    "cosine": (BatchHardTripletLossDistanceFunction.cosine_distance, ST_DISTANCES.cosine_distance),
    "manhattan": (BatchHardTripletLossDistanceFunction.manhattan_distance, torch_manhattan),
}

# name -> (pure function, sentence-transformers class, takes a margin)
LOSSES = {
    "batch_all": (batch_all_triplet_loss, st_losses.BatchAllTripletLoss, True),
    "batch_hard": (batch_hard_triplet_loss, st_losses.BatchHardTripletLoss, True),
    "batch_semi_hard": (batch_semi_hard_triplet_loss, st_losses.BatchSemiHardTripletLoss, True),
    "batch_hard_soft_margin": (
        batch_hard_soft_margin_triplet_loss,
        st_losses.BatchHardSoftMarginTripletLoss,
        False,
    ),
}

CASES = (
    "random",
    "batch_of_one",
    "all_labels_equal",
    "all_labels_distinct",
    "duplicate_rows",
    "zero_vectors",
    "ties",
)


def make_batch(case: str, *, batch: int = 8, dim: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """float32 embeddings [B, D] and int labels [B] for one of CASES.

    duplicate_rows: row 1 repeats row 0 (same label), row 3 repeats row 2 under another label.
    zero_vectors: rows 0 and 4 are zero. ties: entries in {-1, 0, 1}, so many distances are exactly equal
    and batch-hard mining picks among tied maxima / minima.
    """
    rng = np.random.default_rng(seed)
    rows = 1 if case == "batch_of_one" else batch
    embeddings = rng.standard_normal((rows, dim)).astype(np.float32)
    labels = np.resize([0, 0, 1, 2, 1, 2, 0, 1], rows)
    if case == "all_labels_equal":
        labels = np.zeros(rows, dtype=np.int64)
    elif case == "all_labels_distinct":
        labels = np.arange(rows)
    elif case == "duplicate_rows":
        embeddings[1] = embeddings[0]
        embeddings[3] = embeddings[2]
    elif case == "zero_vectors":
        embeddings[[0, 4]] = 0.0
    elif case == "ties":
        embeddings = rng.integers(-1, 2, size=(rows, dim)).astype(np.float32)
    return embeddings, labels


def jax_loss(name: str, distance: str, margin: float = 5.0):
    function, _, has_margin = LOSSES[name]
    kwargs = {"distance_metric": DISTANCES[distance][0], **({"margin": margin} if has_margin else {})}
    return lambda columns, labels: function(columns[0], labels, **kwargs)


def torch_loss(name: str, distance: str, margin: float = 5.0):
    _, st_class, has_margin = LOSSES[name]
    kwargs = {"distance_metric": DISTANCES[distance][1], **({"margin": margin} if has_margin else {})}
    return lambda model: st_class(model, **kwargs)


@pytest.mark.parametrize("distance", DISTANCES)
def test_distance_matrices_match_sentence_transformers(distance):
    """Value and vector-Jacobian product of each [B, D] -> [B, B] distance, on every case.

    Inputs, distances and cotangents are O(1), so each row is compared at PARITY_RTOL relative to
    max(1, its largest entry): 1 - cos(x, x) and its gradient are rounding-level 1e-7 in one framework
    and 0 in the other, while rows at zero vectors carry 1e12-sized gradients.
    """

    def assert_close(actual, expected):
        actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
        scale = np.maximum(np.abs(expected).max(axis=1, keepdims=True), 1.0)
        assert (np.abs(actual - expected) / scale).max() <= PARITY_RTOL, case

    jax_distance, torch_distance = DISTANCES[distance]
    for case in CASES:
        embeddings, _ = make_batch(case)
        cotangent = np.random.default_rng(1).standard_normal((len(embeddings),) * 2).astype(np.float32)
        leaf = torch.tensor(embeddings, requires_grad=True)
        expected = torch_distance(leaf)
        expected.backward(torch.tensor(cotangent))
        value, vjp = jax.vjp(jax_distance, jnp.asarray(embeddings))
        assert_close(value, expected.detach().numpy())
        assert_close(vjp(jnp.asarray(cotangent))[0], leaf.grad.numpy())


def zero_gradient_under_cosine(name: str, case: str) -> bool:
    """Cases where, under cosine distance, the loss depends on the embeddings through 1 - cos(x, x) only.

    One row: every distance is the diagonal one. All labels equal, batch-hard mining: the hardest positive
    is the row maximum, which the hardest-negative term subtracts again, leaving margin - (1 - cos(x_a, x_a)).
    The exact gradient is zero there, and each framework returns its own rounding noise of order 1e-7.
    """
    return case == "batch_of_one" or (case == "all_labels_equal" and name.startswith("batch_hard"))


@pytest.mark.parametrize("distance", ("euclidean", "cosine"))
@pytest.mark.parametrize("name", LOSSES)
def test_matches_sentence_transformers_on_edge_cases(name, distance):
    # Margins at which some triplets are active and some are not (the max(0, .) branch).
    margin = 0.5 if distance == "cosine" else 2.0
    cases = {
        case: ([embeddings], labels)
        for case in CASES
        if not (distance == "cosine" and zero_gradient_under_cosine(name, case))
        for embeddings, labels in [make_batch(case)]
    }
    assert_matches_torch(jax_loss(name, distance, margin), torch_loss(name, distance, margin), cases)


@pytest.mark.parametrize("name", LOSSES)
def test_cosine_cases_with_zero_exact_gradient(name):
    """Equal values, and both frameworks' gradients within PARITY_RTOL of zero (the loss's gradients are
    O(1) on the other cases), where `zero_gradient_under_cosine` holds."""
    for case in ("batch_of_one", "all_labels_equal"):
        if not zero_gradient_under_cosine(name, case):
            continue
        embeddings, labels = make_batch(case)
        value, (grad,) = jax.value_and_grad(jax_loss(name, "cosine", 0.5))([jnp.asarray(embeddings)], labels)
        expected_value, (expected_grad,) = torch_loss_and_grads(
            torch_loss(name, "cosine", 0.5), [embeddings], labels
        )
        np.testing.assert_allclose(value, expected_value, rtol=PARITY_RTOL)
        assert np.abs(grad).max() <= PARITY_RTOL and np.abs(expected_grad).max() <= PARITY_RTOL, case


@pytest.mark.parametrize("distance", ("squared_euclidean", "manhattan"))
def test_other_distances_match_sentence_transformers(distance):
    cases = {
        case: ([embeddings], labels)
        for case in ("random", "ties")
        for embeddings, labels in [make_batch(case)]
    }
    for name in LOSSES:
        assert_matches_torch(jax_loss(name, distance, 8.0), torch_loss(name, distance, 8.0), cases)


def test_tied_hardest_positive_gets_the_whole_gradient_at_the_first_index():
    """Anchor 0 has positives 1 and 2 at distance 1: torch's max(dim) routes the gradient to row 1 only.

    An even split among ties (jnp.max's gradient) would give row 2 half of it; the gradients differ.
    The tie is exact whatever the matmul kernel: small integers, so every Gram entry and squared distance
    is an exact float32 integer. No row is a zero vector: a zero row's gradient is exactly zero in theory
    and compared on its own scale (`gradient_error`), where the rounding of terms that cancel, which
    differs between CPU kernels, would be all there is to compare.
    """
    embeddings = np.array([[1, 1], [2, 1], [0, 1], [6, 1]], dtype=np.float32)
    labels = np.array([0, 0, 0, 1])
    assert_matches_torch(
        jax_loss("batch_hard", "euclidean"),
        torch_loss("batch_hard", "euclidean"),
        {"tie": ([embeddings], labels)},
    )


def test_batch_all_with_many_negatives_per_anchor():
    """A larger batch (96 rows, 4 classes): long sorted rows of negatives, prefix lengths from the binary
    search of every size; scaled so that all, most or about half of the triplets are active at margin 2."""
    embeddings = np.random.default_rng(2).standard_normal((96, 6)).astype(np.float32)
    labels = np.arange(96) % 4
    cases = {f"scale {scale}": ([embeddings * scale], labels) for scale in (0.05, 1.0, 20.0)}
    assert_matches_torch(
        jax_loss("batch_all", "euclidean", 2.0), torch_loss("batch_all", "euclidean", 2.0), cases
    )


@pytest.mark.parametrize("name", LOSSES)
def test_jit_vmap_bfloat16(name):
    loss = jax_loss(name, "euclidean")
    embeddings, labels = make_batch("random")
    assert_traces_once(loss, [embeddings], labels)
    groups = [([make_batch("random", seed=seed)[0]], np.roll(labels, seed)) for seed in range(3)]
    groups.append(([make_batch("ties")[0]], labels))
    assert_vmap_matches_loop(loss, groups)
    assert_bfloat16_close(loss, [embeddings], labels)


@pytest.mark.parametrize("name", LOSSES)
def test_wrong_shapes_fail_at_trace_time(name):
    loss = jax_loss(name, "euclidean")
    assert_trace_time_error(loss, [jnp.zeros((8, 4))], jnp.zeros(7, jnp.int32), "(8, 4)", "(7,)")
    assert_trace_time_error(loss, [jnp.zeros(8)], jnp.zeros(8, jnp.int32), "(8,)", "rank 2")


@pytest.mark.parametrize(
    ("loss_class", "name"),
    [
        (BatchAllTripletLoss, "batch_all"),
        (BatchHardTripletLoss, "batch_hard"),
        (BatchSemiHardTripletLoss, "batch_semi_hard"),
        (BatchHardSoftMarginTripletLoss, "batch_hard_soft_margin"),
    ],
)
def test_classes_bind_the_pure_functions(loss_class, name):
    embeddings, labels = make_batch("random")
    cosine = BatchHardTripletLossDistanceFunction.cosine_distance
    loss = loss_class(None, distance_metric=cosine)
    expected = jax_loss(name, "cosine")([jnp.asarray(embeddings)], jnp.asarray(labels))
    np.testing.assert_allclose(
        loss.compute([jnp.asarray(embeddings)], jnp.asarray(labels)), expected, rtol=1e-6
    )
    assert loss.get_config_dict()["distance_metric"] == "cosine_distance"
    assert (loss.min_texts, loss.max_texts, loss.needs_labels) == (1, 1, True)
    with pytest.raises(ValueError, match="exactly 1"):
        loss.check_example_shape(2, True)


@pytest.mark.parametrize(
    "loss_class",
    [BatchAllTripletLoss, BatchHardTripletLoss, BatchSemiHardTripletLoss, BatchHardSoftMarginTripletLoss],
)
def test_labels_must_be_class_ids(loss_class):
    """Labels are compared for equality: any integer is a class (2.0 counts as 2), but a NaN or a fraction
    would silently lose its positives, and is refused before training."""
    loss = loss_class(None)
    for label in (0, -3, 7, 2.0, np.int64(5)):
        loss.check_label(label)
    for label in (float("nan"), 0.5, "1", True, [0, 1]):
        with pytest.raises(ValueError, match="is not a class index"):
            loss.check_label(label)
