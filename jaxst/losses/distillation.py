"""Distillation from a teacher's outputs: MSELoss (embeddings), MarginMSELoss and DistillKLDivLoss (scores).

Teacher outputs arrive as labels and never receive a gradient (`stop_gradient`, torch's `detach`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from jaxst.losses.base import Loss
from jaxst.losses.checks import check_batch_size, check_rank, check_trailing_dim, resolve_similarity
from jaxst.losses.linear import LinearParams, apply_linear, check_linear, init_linear

PairwiseSimilarity = Callable[[jax.Array, jax.Array], jax.Array]


def mse_loss(
    student_embeddings: jax.Array, teacher_embeddings: jax.Array, *, projection: LinearParams | None = None
) -> jax.Array:
    """Mean squared error between student embeddings (optionally projected) and teacher embeddings.

    Args:
        student_embeddings: [B, D] or [B, C, D] (C text columns, e.g. a sentence and its translation).
        teacher_embeddings: [B, T], the same target for every column, or [B, C, T], one per column.
        projection: {"kernel": [D, T], "bias": [T]} applied to the student first (MSELoss' projection_dim),
            or None, when D must equal T.

    Returns:
        Scalar float32: mean over rows, columns and dimensions of (proj(s) - t)^2, which equals
        sentence-transformers' mean over columns of each column's `F.mse_loss`.
    """
    name = "mse_loss"
    if student_embeddings.ndim not in (2, 3):
        raise ValueError(
            f"{name}: student_embeddings must be [B, D] or [B, C, D], "
            f"got shape {tuple(student_embeddings.shape)}."
        )
    student, teacher = student_embeddings.astype(jnp.float32), teacher_embeddings.astype(jnp.float32)
    expected_teacher_ranks = (2, 3) if student.ndim == 3 else (2,)
    if teacher.ndim not in expected_teacher_ranks or teacher.shape[:-1] not in (
        student.shape[:-1],
        student.shape[:1],
    ):
        raise ValueError(
            f"{name}: teacher_embeddings must be [B, T] or, for student embeddings [B, C, D], [B, C, T]; "
            f"got student {tuple(student.shape)} and teacher {tuple(teacher.shape)}."
        )
    if projection is not None:
        check_linear(name, projection, student.shape[-1])
        student = apply_linear(projection, student)
    if student.ndim == 3 and teacher.ndim == 2:
        teacher = teacher[:, None, :]
    if student.shape[-1] != teacher.shape[-1]:
        raise ValueError(
            f"{name}: student dimension {student.shape[-1]} (after any projection) differs from the "
            f"teacher's {teacher.shape[-1]}; student {tuple(student_embeddings.shape)}, "
            f"teacher {tuple(teacher_embeddings.shape)}."
        )
    return jnp.mean((student - jax.lax.stop_gradient(teacher)) ** 2)


def _scores_per_candidate(
    similarity: PairwiseSimilarity, queries: jax.Array, candidates: jax.Array
) -> jax.Array:
    """similarity(queries, candidates[:, k]) for every k. queries [B, D], candidates [B, K, D] -> [B, K]."""
    return jax.vmap(lambda column: similarity(queries, column), in_axes=1, out_axes=1)(candidates).astype(
        jnp.float32
    )


def margin_mse_loss(
    queries: jax.Array,
    positives: jax.Array,
    negatives: jax.Array,
    labels: jax.Array,
    *,
    similarity_fct: str | PairwiseSimilarity = "dot",
) -> jax.Array:
    """Margin-MSE (Hofstätter et al., 2020): the student's score margins regress onto the teacher's.

    Args:
        queries: [B, D].
        positives: [B, D].
        negatives: [B, K, D].
        labels: teacher margins [B, K] (or [B] when K = 1), or teacher scores [B, K + 1] (positive first),
            turned into margins label[:, 0] - label[:, 1:].
        similarity_fct: a row-wise similarity by name ("dot", "cosine", "euclidean", "manhattan") or function.

    Returns:
        Scalar float32: mean_{i,k} ((s(q_i, p_i) - s(q_i, n_ik)) - m_ik)^2.
    """
    name = "margin_mse_loss"
    check_rank(name, {"queries": queries, "positives": positives}, 2)
    check_rank(name, {"negatives": negatives}, 3)
    arrays = {"queries": queries, "positives": positives, "negatives": negatives}
    batch = check_batch_size(name, arrays)
    check_trailing_dim(name, arrays)
    num_negatives = negatives.shape[1]
    margins = jax.lax.stop_gradient(jnp.asarray(labels).astype(jnp.float32))
    if margins.shape == (batch, num_negatives + 1):
        margins = margins[:, :1] - margins[:, 1:]
    elif margins.shape == (batch,):
        margins = margins[:, None]
    if margins.shape != (batch, num_negatives):
        raise ValueError(
            f"{name}: labels must be margins [B, K] = ({batch}, {num_negatives}) (or [B] for one negative) "
            f"or scores [B, K + 1] for negatives of shape {tuple(negatives.shape)}, got {jnp.shape(labels)}."
        )
    similarity = resolve_similarity(name, similarity_fct, pairwise=True)
    positive_scores = similarity(queries, positives).astype(jnp.float32)
    predicted = positive_scores[:, None] - _scores_per_candidate(similarity, queries, negatives)
    return jnp.mean((predicted - margins) ** 2)


def resolve_temperatures(
    temperature: float, student_temperature: float | None, teacher_temperature: float | None
) -> tuple[float, float]:
    """(student, teacher) temperatures, defaulting to `temperature`; ValueError unless positive, finite."""
    student_temperature = temperature if student_temperature is None else student_temperature
    teacher_temperature = temperature if teacher_temperature is None else teacher_temperature
    for label, value in (
        ("temperature", temperature),
        ("student_temperature", student_temperature),
        ("teacher_temperature", teacher_temperature),
    ):
        if not 0 < value < math.inf:
            raise ValueError(f"distill_kl_div_loss: {label} must be a positive finite number, got {value}.")
    return student_temperature, teacher_temperature


def distill_kl_div_loss(
    queries: jax.Array,
    candidates: jax.Array,
    teacher_scores: jax.Array,
    *,
    similarity_fct: str | PairwiseSimilarity = "dot",
    temperature: float = 1.0,
    student_temperature: float | None = None,
    teacher_temperature: float | None = None,
) -> jax.Array:
    """KL divergence from the teacher's to the student's softmax over each query's candidates.

    Args:
        queries: [B, D].
        candidates: [B, N, D], N >= 2 (e.g. the positive, then hard negatives).
        teacher_scores: [B, N] teacher logits; -inf excludes a candidate.
        similarity_fct: a row-wise similarity by name ("dot", "cosine", ...) or function.
        temperature: default of both temperatures; student_temperature / teacher_temperature override it.

    Returns:
        Scalar float32: T_s^2 / B * sum_{i,n} t_in (log t_in - log p_in), with t = softmax(teacher / T_t)
        and p = softmax(s(q_i, c_in) / T_s) (torch's `KLDivLoss(reduction="batchmean")`).
        sentence-transformers also inspects the teacher scores once for NaN on the host; here that check
        is left to the caller (it cannot run inside jit).
    """
    name = "distill_kl_div_loss"
    student_temperature, teacher_temperature = resolve_temperatures(
        temperature, student_temperature, teacher_temperature
    )
    check_rank(name, {"queries": queries}, 2)
    check_rank(name, {"candidates": candidates}, 3)
    batch = check_batch_size(name, {"queries": queries, "candidates": candidates})
    check_trailing_dim(name, {"queries": queries, "candidates": candidates})
    num_candidates = candidates.shape[1]
    if num_candidates < 2:
        raise ValueError(
            f"{name}: needs at least 2 candidates per query (a softmax over one is constant), "
            f"got candidates of shape {tuple(candidates.shape)}."
        )
    if jnp.shape(teacher_scores) != (batch, num_candidates):
        raise ValueError(
            f"{name}: teacher_scores must have shape ({batch}, {num_candidates}) for candidates "
            f"{tuple(candidates.shape)}, got {jnp.shape(teacher_scores)}."
        )
    similarity = resolve_similarity(name, similarity_fct, pairwise=True)
    student_log_probs = jax.nn.log_softmax(
        _scores_per_candidate(similarity, queries, candidates) / student_temperature, axis=1
    )
    teacher = jax.lax.stop_gradient(jnp.asarray(teacher_scores).astype(jnp.float32))
    teacher_probs = jax.nn.softmax(teacher / teacher_temperature, axis=1)
    kl = jax.scipy.special.xlogy(teacher_probs, teacher_probs) - teacher_probs * student_log_probs
    return jnp.sum(kl) / batch * student_temperature**2


class MSELoss(Loss):
    """sentence-transformers' MSELoss bound to a model; see `mse_loss`.

    Every column is a student text; labels are the teacher embeddings, [B, T] for all columns or
    [B, C, T]. With projection_dim, `init_params(rng, embedding_dim)` creates the projection (as torch's
    nn.Linear); `compute` takes it as `params`.
    """

    min_texts = 1
    max_texts = None
    needs_labels = True
    separable = True

    def __init__(self, model: Any, projection_dim: int | None = None):
        super().__init__(model, projection_dim=projection_dim)

    def init_params(self, rng: jax.Array, embedding_dim: int) -> LinearParams | dict:
        projection_dim = self.hyperparameters["projection_dim"]
        return {} if projection_dim is None else init_linear(rng, embedding_dim, projection_dim)

    def compute(
        self, embeddings: Sequence[jax.Array], labels: jax.Array | None, params: Any = None
    ) -> jax.Array:
        if labels is None:
            raise ValueError("MSELoss needs the teacher embeddings as labels, got None.")
        if self.hyperparameters["projection_dim"] is not None and not params:
            raise ValueError("MSELoss with projection_dim needs the projection from init_params as params.")
        return mse_loss(jnp.stack(list(embeddings), axis=1), labels, projection=params or None)


class MarginMSELoss(Loss):
    """sentence-transformers' MarginMSELoss bound to a model; see `margin_mse_loss`.

    Columns: (query, positive, negative_1, ..., negative_K); labels: teacher margins or scores.
    """

    min_texts = 3
    max_texts = None
    needs_labels = True
    separable = True

    def __init__(self, model: Any, similarity_fct: str | PairwiseSimilarity = "dot"):
        resolve_similarity("MarginMSELoss", similarity_fct, pairwise=True)
        super().__init__(model, similarity_fct=similarity_fct)

    def compute(
        self, embeddings: Sequence[jax.Array], labels: jax.Array | None, params: Any = None
    ) -> jax.Array:
        queries, positives, *negatives = embeddings
        return margin_mse_loss(
            queries, positives, jnp.stack(negatives, axis=1), labels, **self.hyperparameters
        )


class DistillKLDivLoss(Loss):
    """sentence-transformers' DistillKLDivLoss bound to a model; see `distill_kl_div_loss`.

    Columns: (query, candidate_1, ..., candidate_N), N >= 2; labels: teacher scores [B, N].
    """

    min_texts = 3
    max_texts = None
    needs_labels = True
    separable = True

    def __init__(
        self,
        model: Any,
        similarity_fct: str | PairwiseSimilarity = "dot",
        temperature: float = 1.0,
        student_temperature: float | None = None,
        teacher_temperature: float | None = None,
    ):
        resolve_similarity("DistillKLDivLoss", similarity_fct, pairwise=True)
        resolve_temperatures(temperature, student_temperature, teacher_temperature)
        super().__init__(
            model,
            similarity_fct=similarity_fct,
            temperature=temperature,
            student_temperature=student_temperature,
            teacher_temperature=teacher_temperature,
        )

    def compute(
        self, embeddings: Sequence[jax.Array], labels: jax.Array | None, params: Any = None
    ) -> jax.Array:
        queries, *candidates = embeddings
        return distill_kl_div_loss(queries, jnp.stack(candidates, axis=1), labels, **self.hyperparameters)
