"""TripletLoss on (anchor, positive, negative) triplets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any

import jax
import jax.numpy as jnp

from jaxst.losses.base import Loss
from jaxst.losses.checks import check_rank, check_same_shape, resolve_function
from jaxst.similarity import pairwise_cos_sim, pairwise_euclidean_sim, pairwise_manhattan_sim

DistanceFunction = Callable[[jax.Array, jax.Array], jax.Array]


class TripletDistanceMetric(StrEnum):
    """Row-wise distances of sentence-transformers' `TripletDistanceMetric` (its `util` functions).

    COSINE = 1 - pairwise_cos_sim, EUCLIDEAN = ||a - b||_2, MANHATTAN = sum |a - b| (`jaxst.similarity`).
    """

    COSINE = "cosine"
    EUCLIDEAN = "euclidean"
    MANHATTAN = "manhattan"


TRIPLET_DISTANCES: dict[TripletDistanceMetric, DistanceFunction] = {
    TripletDistanceMetric.COSINE: lambda a, b: 1.0 - pairwise_cos_sim(a, b),
    TripletDistanceMetric.EUCLIDEAN: lambda a, b: -pairwise_euclidean_sim(a, b),
    TripletDistanceMetric.MANHATTAN: lambda a, b: -pairwise_manhattan_sim(a, b),
}
TripletDistance = TripletDistanceMetric | str | DistanceFunction


def triplet_loss(
    anchors: jax.Array,
    positives: jax.Array,
    negatives: jax.Array,
    *,
    distance_metric: TripletDistance = TripletDistanceMetric.EUCLIDEAN,
    triplet_margin: float = 5.0,
) -> jax.Array:
    """Triplet loss: each negative should be `triplet_margin` farther from its anchor than the positive is.

    Args:
        anchors: [B, D].
        positives: [B, D].
        negatives: [B, D], one negative per anchor.
        distance_metric: a `TripletDistanceMetric`, its value, or a function [B, D], [B, D] -> [B].
        triplet_margin: the margin.

    Returns:
        Scalar float32: mean_i relu(d(a_i, p_i) - d(a_i, n_i) + triplet_margin).
        Known difference: with MANHATTAN, where a coordinate of a_i equals that of p_i or n_i (duplicate
        or zero rows), `jaxst.similarity.pairwise_manhattan_sim` differentiates |0| as 1, torch as 0.
    """
    arrays = {"anchors": anchors, "positives": positives, "negatives": negatives}
    check_rank("triplet_loss", arrays, 2)
    check_same_shape("triplet_loss", arrays)
    distance = resolve_function("triplet_loss", "distance_metric", distance_metric, TRIPLET_DISTANCES)
    distance_positive = distance(anchors, positives).astype(jnp.float32)
    distance_negative = distance(anchors, negatives).astype(jnp.float32)
    return jnp.mean(jax.nn.relu(distance_positive - distance_negative + triplet_margin))


class TripletLoss(Loss):
    """sentence-transformers' TripletLoss bound to a model; see `triplet_loss`."""

    min_texts = 3
    max_texts = 3
    needs_labels = False
    separable = True

    def __init__(
        self,
        model: Any,
        distance_metric: TripletDistance = TripletDistanceMetric.EUCLIDEAN,
        triplet_margin: float = 5.0,
    ):
        resolve_function(type(self).__name__, "distance_metric", distance_metric, TRIPLET_DISTANCES)
        super().__init__(model, distance_metric=distance_metric, triplet_margin=triplet_margin)

    def compute(
        self, embeddings: Sequence[jax.Array], labels: jax.Array | None, params: Any = None
    ) -> jax.Array:
        anchors, positives, negatives = embeddings
        return triplet_loss(anchors, positives, negatives, **self.hyperparameters)
