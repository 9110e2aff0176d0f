"""Contrastive losses on (text, text, 0/1 label) pairs: ContrastiveLoss and OnlineContrastiveLoss."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

import jax
import jax.numpy as jnp

from jaxst.losses.base import LabeledPairLoss
from jaxst.losses.checks import check_labels, check_rank, check_same_shape, resolve_function
from jaxst.losses.pair_distances import (
    paired_cosine_distance,
    paired_euclidean_distance,
    paired_manhattan_distance,
)

DistanceFunction = Callable[[jax.Array, jax.Array], jax.Array]


class SiameseDistanceMetric(StrEnum):
    """Row-wise distances of sentence-transformers' `SiameseDistanceMetric`, with torch's epsilons.

    EUCLIDEAN = ||a - b + 1e-6||_2, MANHATTAN = sum |a - b + 1e-6| (`F.pairwise_distance`),
    COSINE_DISTANCE = 1 - `F.cosine_similarity(a, b)` (see `jaxst.losses.pair_distances`).
    """

    EUCLIDEAN = "euclidean"
    MANHATTAN = "manhattan"
    COSINE_DISTANCE = "cosine_distance"


SIAMESE_DISTANCES: dict[SiameseDistanceMetric, DistanceFunction] = {
    SiameseDistanceMetric.EUCLIDEAN: paired_euclidean_distance,
    SiameseDistanceMetric.MANHATTAN: paired_manhattan_distance,
    SiameseDistanceMetric.COSINE_DISTANCE: paired_cosine_distance,
}
SiameseDistance = SiameseDistanceMetric | str | DistanceFunction


def _pair_distances(
    loss_name: str,
    embeddings_a: jax.Array,
    embeddings_b: jax.Array,
    labels: jax.Array,
    distance_metric: SiameseDistance,
) -> tuple[jax.Array, jax.Array]:
    """Checks the shapes; returns (distances [B], labels [B]) in float32."""
    arrays = {"embeddings_a": embeddings_a, "embeddings_b": embeddings_b}
    check_rank(loss_name, arrays, 2)
    check_same_shape(loss_name, arrays)
    check_labels(loss_name, labels, "embeddings_a", embeddings_a)
    distance = resolve_function(loss_name, "distance_metric", distance_metric, SIAMESE_DISTANCES)
    distances = distance(embeddings_a, embeddings_b).astype(jnp.float32)
    return distances, jnp.asarray(labels).astype(jnp.float32)


def contrastive_loss(
    embeddings_a: jax.Array,
    embeddings_b: jax.Array,
    labels: jax.Array,
    *,
    distance_metric: SiameseDistance = SiameseDistanceMetric.COSINE_DISTANCE,
    margin: float = 0.5,
    size_average: bool = True,
) -> jax.Array:
    """Contrastive loss (Hadsell et al., 2006): pull label-1 pairs together, push label-0 pairs past a margin.

    Args:
        embeddings_a: [B, D] first text of each pair.
        embeddings_b: [B, D] second text of each pair.
        labels: [B], 1 for similar pairs and 0 for dissimilar ones (other values weight the two terms, as in
            sentence-transformers).
        distance_metric: a `SiameseDistanceMetric`, its value, or a function [B, D], [B, D] -> [B].
        margin: dissimilar pairs closer than this are penalised.
        size_average: mean over the batch if True, else the sum.

    Returns:
        Scalar float32: reduce_i 0.5 * (y_i * d_i^2 + (1 - y_i) * relu(margin - d_i)^2),
        with d_i = distance(a_i, b_i) and reduce = mean (size_average) or sum.
    """
    distances, labels = _pair_distances(
        "contrastive_loss", embeddings_a, embeddings_b, labels, distance_metric
    )
    losses = 0.5 * (labels * distances**2 + (1.0 - labels) * jax.nn.relu(margin - distances) ** 2)
    return losses.mean() if size_average else losses.sum()


def online_contrastive_loss(
    embeddings_a: jax.Array,
    embeddings_b: jax.Array,
    labels: jax.Array,
    *,
    distance_metric: SiameseDistance = SiameseDistanceMetric.COSINE_DISTANCE,
    margin: float = 0.5,
) -> jax.Array:
    """Contrastive loss on the hard pairs of the batch only, selected with masks so that shapes stay static.

    Hard positives are label-1 pairs farther apart than the closest label-0 pair; hard negatives are
    label-0 pairs closer than the farthest label-1 pair. When the batch has no pair of the other label,
    the threshold is the mean distance of the pair's own label, as in sentence-transformers. Pairs with
    a label other than 0 or 1 are ignored.

    Args:
        embeddings_a: [B, D] first text of each pair.
        embeddings_b: [B, D] second text of each pair.
        labels: [B] 0/1 labels.
        distance_metric: a `SiameseDistanceMetric`, its value, or a function [B, D], [B, D] -> [B].
        margin: hard negatives closer than this are penalised.

    Returns:
        Scalar float32, a sum (not a mean):
        sum_{hard positives} d_i^2 + sum_{hard negatives} relu(margin - d_i)^2.
    """
    distances, labels = _pair_distances(
        "online_contrastive_loss", embeddings_a, embeddings_b, labels, distance_metric
    )
    is_positive, is_negative = labels == 1, labels == 0
    num_positive, num_negative = is_positive.sum(), is_negative.sum()
    selection_distances = jax.lax.stop_gradient(distances)
    masked_mean = lambda mask, count: jnp.where(mask, selection_distances, 0.0).sum() / jnp.maximum(count, 1)
    farthest_positive = jnp.where(is_positive, selection_distances, -jnp.inf).max()
    closest_negative = jnp.where(is_negative, selection_distances, jnp.inf).min()
    negative_threshold = jnp.where(
        num_positive > 0, farthest_positive, masked_mean(is_negative, num_negative)
    )
    positive_threshold = jnp.where(num_negative > 0, closest_negative, masked_mean(is_positive, num_positive))
    hard_negative = is_negative & (selection_distances < negative_threshold)
    hard_positive = is_positive & (selection_distances > positive_threshold)
    positive_loss = jnp.where(hard_positive, distances**2, 0.0).sum()
    negative_loss = jnp.where(hard_negative, jax.nn.relu(margin - distances) ** 2, 0.0).sum()
    return positive_loss + negative_loss


class ContrastiveLoss(LabeledPairLoss):
    """sentence-transformers' ContrastiveLoss bound to a model; see `contrastive_loss`."""

    function = staticmethod(contrastive_loss)

    def __init__(
        self,
        model: Any,
        distance_metric: SiameseDistance = SiameseDistanceMetric.COSINE_DISTANCE,
        margin: float = 0.5,
        size_average: bool = True,
    ):
        resolve_function(type(self).__name__, "distance_metric", distance_metric, SIAMESE_DISTANCES)
        super().__init__(model, distance_metric=distance_metric, margin=margin, size_average=size_average)
        self.separable = size_average  # a mean over the pairs; a sum is not


class OnlineContrastiveLoss(LabeledPairLoss):
    """sentence-transformers' OnlineContrastiveLoss bound to a model; see `online_contrastive_loss`."""

    function = staticmethod(online_contrastive_loss)

    def __init__(
        self,
        model: Any,
        distance_metric: SiameseDistance = SiameseDistanceMetric.COSINE_DISTANCE,
        margin: float = 0.5,
    ):
        resolve_function(type(self).__name__, "distance_metric", distance_metric, SIAMESE_DISTANCES)
        super().__init__(model, distance_metric=distance_metric, margin=margin)
