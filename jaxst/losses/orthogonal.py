"""GlobalOrthogonalRegularizationLoss: spread the embeddings of each column out (Zhang et al., 2017).

A regulariser, usually added to a main loss such as MultipleNegativesRankingLoss. It works on any
number of columns and needs no labels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import jax
import jax.numpy as jnp

from jaxst.losses.base import Loss
from jaxst.losses.checks import check_rank
from jaxst.similarity import cos_sim

Similarity = Callable[[jax.Array, jax.Array], jax.Array]

_AGGREGATIONS = ("mean", "sum")


def _moments(embeddings: jax.Array, similarity_fct: Similarity) -> tuple[jax.Array, jax.Array]:
    """(M1^2, relu(M2 - 1/D)) of one column [B, D], over its B (B - 1) off-diagonal similarities."""
    batch_size, hidden_dim = embeddings.shape
    similarities = similarity_fct(embeddings, embeddings).astype(jnp.float32)
    similarities = jnp.where(jnp.eye(batch_size, dtype=bool), 0.0, similarities)
    num_off_diagonal = max(batch_size * (batch_size - 1), 1)
    mean_term = (jnp.sum(similarities) / num_off_diagonal) ** 2
    second_moment = jnp.sum(similarities**2) / num_off_diagonal
    return mean_term, jax.nn.relu(second_moment - 1.0 / hidden_dim)


def _check_options(mean_weight: float | None, second_moment_weight: float | None, aggregation: str) -> None:
    if not mean_weight and not second_moment_weight:
        raise ValueError("At least one of mean_weight or second_moment_weight must be non-zero")
    if aggregation not in _AGGREGATIONS:
        raise ValueError(f"aggregation must be 'mean' or 'sum', got {aggregation!r}")


def global_orthogonal_regularization_loss(
    embeddings: Sequence[jax.Array],
    *,
    similarity_fct: Similarity = cos_sim,
    mean_weight: float | None = 1.0,
    second_moment_weight: float | None = 1.0,
    aggregation: Literal["mean", "sum"] = "mean",
) -> jax.Array:
    """Global orthogonal regularisation, per column then aggregated over the columns.

    Args:
        embeddings: one [B, D] array per column (any float dtype, computed in float32); columns may
            differ in B.
        similarity_fct: [N, D], [M, D] -> [N, M], cosine by default.
        mean_weight, second_moment_weight: weights of the two terms; None or 0 leaves a term out.
        aggregation: "mean" or "sum" of each term over the columns.
    Returns:
        with s_ij the similarities of a column off its diagonal and n = max(B (B - 1), 1):
        M1 = sum s_ij / n, M2 = sum s_ij^2 / n, and per column the terms M1^2 and relu(M2 - 1 / D);
        loss = mean_weight * agg(M1^2) + second_moment_weight * agg(relu(M2 - 1 / D)).

    sentence-transformers returns the two weighted terms as a dict {"gor_mean", "gor_second_moment"},
    which its trainer sums; this returns that sum.
    """
    _check_options(mean_weight, second_moment_weight, aggregation)
    check_rank(
        "global_orthogonal_regularization_loss", {f"embeddings[{i}]": e for i, e in enumerate(embeddings)}, 2
    )
    mean_terms, second_moment_terms = (
        jnp.stack(terms) for terms in zip(*[_moments(e, similarity_fct) for e in embeddings], strict=True)
    )
    aggregate = jnp.sum if aggregation == "sum" else jnp.mean
    loss = jnp.zeros((), jnp.float32)
    if mean_weight:
        loss = loss + mean_weight * aggregate(mean_terms)
    if second_moment_weight:
        loss = loss + second_moment_weight * aggregate(second_moment_terms)
    return loss


class GlobalOrthogonalRegularizationLoss(Loss):
    """sentence-transformers' GlobalOrthogonalRegularizationLoss, any number of columns, no labels.

    See `global_orthogonal_regularization_loss`.
    """

    def __init__(
        self,
        model: Any,
        similarity_fct: Similarity = cos_sim,
        mean_weight: float | None = 1.0,
        second_moment_weight: float | None = 1.0,
        aggregation: Literal["mean", "sum"] = "mean",
    ):
        _check_options(mean_weight, second_moment_weight, aggregation)
        super().__init__(
            model,
            similarity_fct=similarity_fct,
            mean_weight=mean_weight,
            second_moment_weight=second_moment_weight,
            aggregation=aggregation,
        )

    def compute(
        self, embeddings: Sequence[jax.Array], labels: jax.Array | None, params: Any = None
    ) -> jax.Array:
        del labels, params
        return global_orthogonal_regularization_loss(embeddings, **self.hyperparameters)

    def get_config_dict(self) -> dict[str, Any]:
        """As sentence-transformers: the similarity function by its name."""
        return {**self.hyperparameters, "similarity_fct": self.hyperparameters["similarity_fct"].__name__}
