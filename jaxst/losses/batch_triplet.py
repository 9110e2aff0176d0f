"""Batch triplet losses on (text, class label) examples: every valid triplet is mined inside the batch.

BatchAllTripletLoss, BatchHardTripletLoss, BatchSemiHardTripletLoss and BatchHardSoftMarginTripletLoss
of sentence-transformers, as pure functions of embeddings [B, D] and integer labels [B]. A triplet
(a, p, n) is valid when a != p, label(a) == label(p) and label(a) != label(n).

Mining with torch's `max(dim)` / `min(dim)` sends the whole gradient of a row to one index, the first
one among ties; `jnp.max` would split it evenly among ties. Here every such reduction is an argmax /
argmin (first index among ties, like torch on CPU and CUDA) followed by a gather, so that gradients at
ties, e.g. duplicate rows or masked rows, equal sentence-transformers' own.

Labels must have shape [B]; sentence-transformers also takes any shape of B elements and flattens it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from jaxst.losses.base import Loss, check_class_label
from jaxst.losses.checks import check_labels, check_rank
from jaxst.similarity import cos_sim, torch_abs

DistanceMatrix = Callable[[jax.Array], jax.Array]


class BatchHardTripletLossDistanceFunction:
    """Distances [B, D] -> [B, B] for the batch triplet losses, in sentence-transformers' arithmetic."""

    @staticmethod
    def cosine_distance(embeddings: jax.Array) -> jax.Array:
        """1 - cos_sim(e_i, e_j), L2 normalisation with torch's 1e-12 epsilon (`jaxst.similarity.cos_sim`)."""
        return 1.0 - cos_sim(embeddings, embeddings)

    @staticmethod
    def euclidean_distance(embeddings: jax.Array, squared: bool = False) -> jax.Array:
        """||e_i - e_j|| from the Gram matrix G = E E^T, with sentence-transformers' arithmetic.

        d2_ij = (G_jj - 2 G_ij) + G_ii, negative values set to 0 (rounding). squared=False returns
        (1 - [d2 == 0]) * sqrt(d2 + [d2 == 0] * 1e-16): exactly 0, with gradient 0, where d2 == 0
        (the diagonal, duplicate rows).
        """
        embeddings = embeddings.astype(jnp.float32)
        gram = embeddings @ embeddings.T
        square_norm = jnp.diagonal(gram)
        distances = square_norm[None, :] - 2.0 * gram + square_norm[:, None]
        distances = jnp.where(distances < 0, 0.0, distances)
        if squared:
            return distances
        zero = (distances == 0).astype(jnp.float32)
        return (1.0 - zero) * jnp.sqrt(distances + zero * 1e-16)

    # sentence-transformers' original spelling, kept there as an alias.
    eucledian_distance = euclidean_distance

    @staticmethod
    def manhattan_distance(embeddings: jax.Array) -> jax.Array:
        """sum_k |e_ik - e_jk|, with torch's gradient of |x| at x = 0 (`torch_abs`). Holds a [B, B, D] tensor.

        Not in sentence-transformers' BatchHardTripletLossDistanceFunction (which has cosine and
        euclidean only); it equals passing `lambda e: (e[:, None] - e[None]).abs().sum(-1)` there.
        """
        embeddings = embeddings.astype(jnp.float32)
        return jnp.sum(torch_abs(embeddings[:, None, :] - embeddings[None, :, :]), axis=-1)


_DEFAULT_DISTANCE = BatchHardTripletLossDistanceFunction.euclidean_distance


def first_index_max(x: jax.Array) -> jax.Array:
    """Row maximum [N, M] -> [N] whose gradient goes to the first maximal index, as torch's `max(dim)`.

    A helper of the losses that mine with torch's `max(dim)` (batch triplet, mega batch margin).
    """
    return jnp.take_along_axis(x, jnp.argmax(x, axis=1)[:, None], axis=1)[:, 0]


def first_index_min(x: jax.Array) -> jax.Array:
    """Row minimum [N, M] -> [N] whose gradient goes to the first minimal index, as torch's `min(dim)`."""
    return jnp.take_along_axis(x, jnp.argmin(x, axis=1)[:, None], axis=1)[:, 0]


def _distances_and_label_masks(
    loss_name: str, embeddings: jax.Array, labels: jax.Array, distance_metric: DistanceMatrix
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Checks shapes; returns (distances [B, B] float32, same_label [B, B] bool, off_diagonal [B, B] bool)."""
    check_rank(loss_name, {"embeddings": embeddings}, 2)
    check_labels(loss_name, labels, "embeddings", embeddings)
    distances = distance_metric(embeddings.astype(jnp.float32)).astype(jnp.float32)
    same_label = labels[:, None] == labels[None, :]
    off_diagonal = ~jnp.eye(labels.shape[0], dtype=bool)
    return distances, same_label, off_diagonal


def _hardest_positive_and_negative(
    distances: jax.Array, same_label: jax.Array, off_diagonal: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Per anchor, the largest positive distance (0 if none) and the smallest negative distance.

    As sentence-transformers: max_p(mask_ap * d), and min_n(d + max_j(d_aj) * (1 - mask_an)), where an
    anchor with no negative gets its smallest distance after shifting every entry by the row maximum.
    """
    positive_mask = (same_label & off_diagonal).astype(jnp.float32)
    hardest_positive = first_index_max(positive_mask * distances)
    negative_mask = (~same_label).astype(jnp.float32)
    row_max = first_index_max(distances)
    hardest_negative = first_index_min(distances + row_max[:, None] * (1.0 - negative_mask))
    return hardest_positive, hardest_negative


def batch_hard_triplet_loss(
    embeddings: jax.Array,
    labels: jax.Array,
    *,
    distance_metric: DistanceMatrix = _DEFAULT_DISTANCE,
    margin: float = 5.0,
) -> jax.Array:
    """Hardest positive and hardest negative per anchor (Hermans et al., 2017).

    Args:
        embeddings: [B, D], any float dtype (computed in float32).
        labels: [B] class ids.
        distance_metric: [B, D] -> [B, B], e.g. BatchHardTripletLossDistanceFunction.cosine_distance.
        margin: the triplet margin.
    Returns:
        loss = mean_a max(0, max_p d(a, p) - min_n d(a, n) + margin), a scalar.
    """
    distances, same_label, off_diagonal = _distances_and_label_masks(
        "batch_hard_triplet_loss", embeddings, labels, distance_metric
    )
    hardest_positive, hardest_negative = _hardest_positive_and_negative(distances, same_label, off_diagonal)
    triplet = hardest_positive - hardest_negative + margin
    return jnp.mean(jnp.where(triplet < 0, 0.0, triplet))


def batch_hard_soft_margin_triplet_loss(
    embeddings: jax.Array, labels: jax.Array, *, distance_metric: DistanceMatrix = _DEFAULT_DISTANCE
) -> jax.Array:
    """Batch-hard mining with a soft margin: loss = mean_a softplus(max_p d(a, p) - min_n d(a, n)).

    Shapes as `batch_hard_triplet_loss`. softplus as torch's (beta 1, threshold 20: x itself above 20).
    """
    distances, same_label, off_diagonal = _distances_and_label_masks(
        "batch_hard_soft_margin_triplet_loss", embeddings, labels, distance_metric
    )
    hardest_positive, hardest_negative = _hardest_positive_and_negative(distances, same_label, off_diagonal)
    gap = hardest_positive - hardest_negative
    softplus = jnp.where(gap > 20.0, gap, jnp.log1p(jnp.exp(jnp.minimum(gap, 20.0))))
    return jnp.mean(softplus)


def _prefix_lengths(
    sorted_rows: jax.Array, values: jax.Array, holds: Callable[[jax.Array, jax.Array], jax.Array]
) -> jax.Array:
    """For each (a, j): how many leading entries s of the ascending row a of `sorted_rows` satisfy
    holds(values[a, j], s), for a predicate that holds on a prefix of the row. [B, M], [B, K] -> [B, K] int.

    A binary search that evaluates the predicate itself at each probe, so the count is exact for the
    predicate's float arithmetic (no rearranged threshold).
    """
    width = sorted_rows.shape[1]

    def halve(_: int, bounds: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        low, high = bounds
        searching = low < high
        middle = (low + high) // 2
        satisfied = holds(values, jnp.take_along_axis(sorted_rows, jnp.minimum(middle, width - 1), axis=1))
        return jnp.where(searching & satisfied, middle + 1, low), jnp.where(
            searching & ~satisfied, middle, high
        )

    bounds = (jnp.zeros(values.shape, jnp.int32), jnp.full(values.shape, width, jnp.int32))
    return jax.lax.fori_loop(0, width.bit_length(), halve, bounds)[0]


def batch_all_triplet_loss(
    embeddings: jax.Array,
    labels: jax.Array,
    *,
    distance_metric: DistanceMatrix = _DEFAULT_DISTANCE,
    margin: float = 5.0,
) -> jax.Array:
    """Mean over the valid triplets of positive loss (Hermans et al., 2017, "batch all").

    Args and shapes as `batch_hard_triplet_loss`.
    Returns:
        with t_apn = max(0, (d(a, p) - d(a, n)) + margin) over the valid triplets,
        loss = sum t_apn / (#{t_apn > 1e-16} + 1e-16), a scalar (0 when no triplet is valid).

    sentence-transformers materialises t for every (a, p) pair and every n: O(B^3) time and memory
    (over the pairs present). Here, per anchor, the negatives' distances are sorted once; for a pair
    (a, p), t_apn is decreasing in d(a, n), so the active triplets (t >= 0, which carry gradient) and
    the counted ones (t > 1e-16) are prefixes of that order, found by binary search on the same float
    expression as sentence-transformers': the counts, and hence the gradient, are exact. Their sum is
    k (d(a, p) - s_0 + margin) - sum_{i < k} (s_i - s_0), with s the sorted negative distances and k
    the prefix length: a reordering of sentence-transformers' sum, equal to float32 rounding.
    O(B^2 log B) time, O(B^2) memory.
    """
    distances, same_label, off_diagonal = _distances_and_label_masks(
        "batch_all_triplet_loss", embeddings, labels, distance_metric
    )
    negatives = jnp.sort(jnp.where(same_label, jnp.inf, distances), axis=1)  # non-negatives last, as +inf
    fixed = jax.lax.stop_gradient
    active = _prefix_lengths(fixed(negatives), fixed(distances), lambda d, s: (d - s) + margin >= 0)
    counted = _prefix_lengths(fixed(negatives), fixed(distances), lambda d, s: (d - s) + margin > 1e-16)
    # The sum does not depend on the centre `nearest` (s_0); it only keeps the prefix sums small. As a
    # constant it also keeps the gradient from cancelling two large terms through it.
    nearest = fixed(jnp.where(jnp.isfinite(negatives[:, :1]), negatives[:, :1], 0.0))
    # prefix_sums[a, k] = sum of the k nearest negatives of a, each less `nearest`; finite for k up to the
    # number of negatives, which bounds `active`.
    offsets = jnp.where(jnp.isfinite(negatives), negatives - nearest, 0.0)
    prefix_sums = jnp.concatenate([jnp.zeros_like(nearest), jnp.cumsum(offsets, axis=1)], axis=1)
    pair_sums = active * ((distances - nearest) + margin) - jnp.take_along_axis(prefix_sums, active, axis=1)
    positive_pairs = same_label & off_diagonal
    total = jnp.sum(jnp.where(positive_pairs, pair_sums, 0.0))
    count = jnp.sum(jnp.where(positive_pairs, counted, 0))
    return total / (count.astype(jnp.float32) + 1e-16)


def _masked_maximum(distances: jax.Array, mask: jax.Array) -> jax.Array:
    """Masked row maximum [B, B] -> [B] as sentence-transformers: max_j((d_aj - min d_a) * m_aj) + min d_a."""
    row_min = first_index_min(distances)
    return first_index_max((distances - row_min[:, None]) * mask.astype(jnp.float32)) + row_min


def batch_semi_hard_triplet_loss(
    embeddings: jax.Array,
    labels: jax.Array,
    *,
    distance_metric: DistanceMatrix = _DEFAULT_DISTANCE,
    margin: float = 5.0,
) -> jax.Array:
    """Semi-hard negative per (anchor, positive) pair (Schroff et al., 2015, FaceNet).

    Args and shapes as `batch_hard_triplet_loss`. For each pair (a, p) with the same label, a != p:
    n*(a, p) = the smallest negative distance d(a, n) > d(a, p) if there is one, else the largest negative
    distance of a (sentence-transformers' masked maximum, which falls back to min_j d(a, j) for an anchor
    without negatives). loss = sum_(a,p) max(0, d(a, p) - n*(a, p) + margin) / max(#pairs, 1e-16).
    The search is torch's: a stable sort of each row's negatives and `searchsorted(side="right")`.
    """
    distances, same_label, off_diagonal = _distances_and_label_masks(
        "batch_semi_hard_triplet_loss", embeddings, labels, distance_metric
    )
    batch_size = distances.shape[0]
    sorted_negatives = jnp.sort(jnp.where(same_label, jnp.inf, distances), axis=1, stable=True)
    positions = jax.vmap(lambda row, values: jnp.searchsorted(row, values, side="right"))(
        jax.lax.stop_gradient(sorted_negatives), jax.lax.stop_gradient(distances)
    )
    negatives_outside = jnp.take_along_axis(sorted_negatives, jnp.minimum(positions, batch_size - 1), axis=1)
    negatives_inside = _masked_maximum(distances, ~same_label)[:, None]
    semi_hard_negatives = jnp.where(jnp.isfinite(negatives_outside), negatives_outside, negatives_inside)
    loss_matrix = distances - semi_hard_negatives + margin
    positive_mask = same_label.astype(jnp.float32) - jnp.eye(batch_size, dtype=jnp.float32)
    num_positives = jnp.sum(positive_mask)
    return jnp.sum(jnp.maximum(loss_matrix * positive_mask, 0.0)) / jnp.maximum(num_positives, 1e-16)


class _BatchTripletLossBase(Loss):
    """One text column and a class label per example; `_loss` is the pure function, called with the
    hyperparameters. The constructor is that of the soft-margin loss, which has no margin."""

    min_texts = 1
    max_texts = 1
    needs_labels = True
    _loss: ClassVar[Callable[..., jax.Array]]

    def __init__(self, model: Any, distance_metric: DistanceMatrix = _DEFAULT_DISTANCE):
        super().__init__(model, distance_metric=distance_metric)

    def check_label(self, label: Any) -> None:
        """Raises ValueError unless the label is a class id, an integer of any sign: labels are compared for
        equality, so a NaN or fractional label would silently lose its positives."""
        check_class_label(label)

    def compute(self, embeddings: Any, labels: jax.Array | None, params: Any = None) -> jax.Array:
        del params
        (column,) = embeddings
        return self._loss(column, labels, **self.hyperparameters)

    def get_config_dict(self) -> dict[str, Any]:
        """As sentence-transformers: the distance metric by its function name."""
        config = dict(self.hyperparameters)
        config["distance_metric"] = getattr(
            config["distance_metric"], "__name__", str(config["distance_metric"])
        )
        return config


class _MarginBatchTripletLoss(_BatchTripletLossBase):
    """A batch triplet loss with a margin (5, as sentence-transformers)."""

    def __init__(self, model: Any, distance_metric: DistanceMatrix = _DEFAULT_DISTANCE, margin: float = 5):
        super().__init__(model, distance_metric=distance_metric)
        self.hyperparameters["margin"] = margin


class BatchAllTripletLoss(_MarginBatchTripletLoss):
    """sentence-transformers' BatchAllTripletLoss; see `batch_all_triplet_loss`."""

    _loss = staticmethod(batch_all_triplet_loss)


class BatchHardTripletLoss(_MarginBatchTripletLoss):
    """sentence-transformers' BatchHardTripletLoss; see `batch_hard_triplet_loss`."""

    _loss = staticmethod(batch_hard_triplet_loss)


class BatchSemiHardTripletLoss(_MarginBatchTripletLoss):
    """sentence-transformers' BatchSemiHardTripletLoss; see `batch_semi_hard_triplet_loss`."""

    _loss = staticmethod(batch_semi_hard_triplet_loss)


class BatchHardSoftMarginTripletLoss(_BatchTripletLossBase):
    """sentence-transformers' BatchHardSoftMarginTripletLoss; see `batch_hard_soft_margin_triplet_loss`."""

    _loss = staticmethod(batch_hard_soft_margin_triplet_loss)
