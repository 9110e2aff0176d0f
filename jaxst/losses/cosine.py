"""Losses on (text, text, score) pairs: CosineSimilarityLoss, CoSENTLoss and AnglELoss."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from jaxst.losses.base import LabeledPairLoss, Loss
from jaxst.losses.checks import check_labels, check_rank, check_same_shape, resolve_similarity
from jaxst.losses.pair_distances import paired_cosine_similarity
from jaxst.similarity import normalize, torch_abs

PairwiseSimilarity = Callable[[jax.Array, jax.Array], jax.Array]


def mean_squared_error(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """mean((predictions - targets)^2), torch's `nn.MSELoss()`."""
    return jnp.mean((predictions - targets) ** 2)


def pairwise_angle_sim(a: jax.Array, b: jax.Array) -> jax.Array:
    """AnglE similarity |cos(a_i, b_i) + sin(a_i, b_i)| after L2 normalisation. a, b [N, D] -> [N].

    The sine pairs dimension k with k + D/2 (an odd D is padded with one zero), as sentence-transformers'
    `util.pairwise_angle_sim`: sin = sum_k(last_a * first_b - first_a * last_b) over the two halves.
    """
    a, b = a.astype(jnp.float32), b.astype(jnp.float32)
    if a.shape[-1] % 2:
        a, b = (jnp.pad(x, ((0, 0), (0, 1))) for x in (a, b))
    a, b = normalize(a), normalize(b)
    first_a, last_a = jnp.split(a, 2, axis=-1)
    first_b, last_b = jnp.split(b, 2, axis=-1)
    cosines = jnp.sum(a * b, axis=-1)
    sines = jnp.sum(last_a * first_b - first_a * last_b, axis=-1)
    return torch_abs(cosines + sines)


def _check_pairs(loss_name: str, embeddings_a: jax.Array, embeddings_b: jax.Array, labels: jax.Array) -> None:
    arrays = {"embeddings_a": embeddings_a, "embeddings_b": embeddings_b}
    check_rank(loss_name, arrays, 2)
    check_same_shape(loss_name, arrays)
    check_labels(loss_name, labels, "embeddings_a", embeddings_a)


def cosine_similarity_loss(
    embeddings_a: jax.Array,
    embeddings_b: jax.Array,
    labels: jax.Array,
    *,
    loss_fct: Callable[[jax.Array, jax.Array], jax.Array] = mean_squared_error,
    cos_score_transformation: Callable[[jax.Array], jax.Array] | None = None,
) -> jax.Array:
    """Regression of the pair's cosine similarity onto a score label.

    Args:
        embeddings_a: [B, D] first text of each pair.
        embeddings_b: [B, D] second text of each pair.
        labels: [B] float scores.
        loss_fct: (predictions [B], labels [B]) -> scalar; default mean squared error (torch `nn.MSELoss`).
        cos_score_transformation: applied to the [B] cosines before `loss_fct`; None for the identity.

    Returns:
        Scalar float32: loss_fct(t(cos(a_i, b_i)), y_i), where cos is torch's `F.cosine_similarity`
        (norms clamped at 1e-8, not the 1e-12 of `jaxst.similarity.pairwise_cos_sim`).
    """
    _check_pairs("cosine_similarity_loss", embeddings_a, embeddings_b, labels)
    scores = paired_cosine_similarity(embeddings_a, embeddings_b)
    if cos_score_transformation is not None:
        scores = cos_score_transformation(scores)
    return loss_fct(scores, jnp.asarray(labels).astype(jnp.float32)).astype(jnp.float32)


def _ranked_pairs_loss(scores: jax.Array, labels: jax.Array) -> jax.Array:
    """log(1 + sum_{i, j: y_i < y_j} exp(s_i - s_j)) for [B] scores and labels."""
    lower_label = labels[:, None] < labels[None, :]
    differences = jnp.where(lower_label, scores[:, None] - scores[None, :], -jnp.inf)
    return jax.nn.logsumexp(jnp.concatenate([jnp.zeros(1, jnp.float32), differences.reshape(-1)]))


def cosent_loss(
    embeddings_a: jax.Array,
    embeddings_b: jax.Array,
    labels: jax.Array,
    *,
    scale: float = 20.0,
    similarity_fct: str | PairwiseSimilarity = "cosine",
) -> jax.Array:
    """CoSENT (Su, 2022): every pair with a higher label should score higher than every pair with a lower one.

    Args:
        embeddings_a: [B, D] first text of each pair.
        embeddings_b: [B, D] second text of each pair.
        labels: [B] scores (only their order matters; bool labels count as 0/1).
        scale: inverse temperature applied to the similarities.
        similarity_fct: a row-wise similarity, by name ("cosine", "dot", "euclidean", "manhattan") or as a
            function [B, D], [B, D] -> [B]; default `jaxst.similarity.pairwise_cos_sim`.

    Returns:
        Scalar float32: log(1 + sum_{i, j: y_i < y_j} exp(scale * (s_i - s_j))), s_i = similarity(a_i, b_i).
        The sum runs over a [B, B] mask (O(B^2) memory; sentence-transformers sorts instead, same value).
    """
    _check_pairs("cosent_loss", embeddings_a, embeddings_b, labels)
    similarity = resolve_similarity("cosent_loss", similarity_fct, pairwise=True)
    scores = scale * similarity(embeddings_a, embeddings_b).astype(jnp.float32)
    labels = jnp.asarray(labels)
    return _ranked_pairs_loss(scores, labels.astype(jnp.int32) if labels.dtype == jnp.bool_ else labels)


def angle_loss(
    embeddings_a: jax.Array, embeddings_b: jax.Array, labels: jax.Array, *, scale: float = 20.0
) -> jax.Array:
    """AnglE (Li and Li, 2024): `cosent_loss` with `pairwise_angle_sim` as the similarity.

    Args:
        embeddings_a: [B, D] first text of each pair.
        embeddings_b: [B, D] second text of each pair.
        labels: [B] scores.
        scale: inverse temperature.

    Returns:
        Scalar float32: log(1 + sum_{i, j: y_i < y_j} exp(scale * (s_i - s_j))), s_i = angle_sim(a_i, b_i).
    """
    return cosent_loss(embeddings_a, embeddings_b, labels, scale=scale, similarity_fct=pairwise_angle_sim)


def tuples_to_scored_pairs(
    embeddings: Sequence[jax.Array], labels: jax.Array | None
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(anchor, positive, negative_1, ...) columns -> (anchors, others, labels) pairs, as AnglELoss does.

    Each anchor is paired with every other column of its row: [(n - 1) * B, D] twice. The positive pairs
    get the labels (ones when None), the negative pairs 1 - labels.
    """
    anchors, others = embeddings[0], embeddings[1:]
    check_rank("AnglELoss", {f"column {i}": column for i, column in enumerate(embeddings)}, 2)
    labels = jnp.ones(anchors.shape[0], jnp.float32) if labels is None else jnp.asarray(labels)
    check_labels("AnglELoss", labels, "column 0", anchors)
    pair_labels = jnp.concatenate([labels] + [1 - labels] * (len(others) - 1))
    return jnp.tile(anchors, (len(others), 1)), jnp.concatenate(others), pair_labels


class CosineSimilarityLoss(LabeledPairLoss):
    """sentence-transformers' CosineSimilarityLoss bound to a model; see `cosine_similarity_loss`."""

    function = staticmethod(cosine_similarity_loss)

    def __init__(
        self,
        model: Any,
        loss_fct: Callable[[jax.Array, jax.Array], jax.Array] = mean_squared_error,
        cos_score_transformation: Callable[[jax.Array], jax.Array] | None = None,
    ):
        super().__init__(model, loss_fct=loss_fct, cos_score_transformation=cos_score_transformation)
        self.separable = (
            loss_fct is mean_squared_error
        )  # the mean over the pairs; a custom loss_fct may not be


class CoSENTLoss(LabeledPairLoss):
    """sentence-transformers' CoSENTLoss bound to a model; see `cosent_loss`."""

    function = staticmethod(cosent_loss)

    def __init__(self, model: Any, scale: float = 20.0, similarity_fct: str | PairwiseSimilarity = "cosine"):
        resolve_similarity("CoSENTLoss", similarity_fct, pairwise=True)
        super().__init__(model, scale=scale, similarity_fct=similarity_fct)


class AnglELoss(Loss):
    """sentence-transformers' AnglELoss bound to a model; see `angle_loss`.

    Pairs need score labels. With three or more columns (anchor, positive, negatives...), each anchor is
    scored against every other column of its row (`tuples_to_scored_pairs`); labels are then optional.
    """

    min_texts = 2
    max_texts = None
    needs_labels = False

    def __init__(self, model: Any, scale: float = 20.0):
        super().__init__(model, scale=scale)

    def compute(
        self, embeddings: Sequence[jax.Array], labels: jax.Array | None, params: Any = None
    ) -> jax.Array:
        if len(embeddings) > 2:
            return angle_loss(*tuples_to_scored_pairs(embeddings, labels), **self.hyperparameters)
        if labels is None:
            raise ValueError("AnglELoss needs score labels for pairs of texts, got None.")
        embeddings_a, embeddings_b = embeddings
        return angle_loss(embeddings_a, embeddings_b, labels, **self.hyperparameters)
