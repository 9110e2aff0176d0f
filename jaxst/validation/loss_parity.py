"""Value and gradient of every jaxst loss against sentence-transformers' own class, on given embeddings.

`compare_losses(embeddings)` cuts a model's embeddings [N, D] into the columns each loss takes (pairs,
triplets, or anchors with candidates), gives each loss deterministic labels of its kind, and reports
for each loss the difference of the values and the largest difference of the gradients with respect to
every input embedding.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxst import losses
from jaxst.validation.torch_reference import torch_loss_and_grads


@dataclass(frozen=True)
class LossCase:
    """One loss to compare: jaxst class, the sentence-transformers class name, columns, label kind."""

    jaxst_class: type
    st_name: str
    columns: int
    labels: str | None = None  # "binary", "score", "class", "teacher_margin", or None
    kwargs: dict[str, Any] = field(default_factory=dict)


CASES = (
    LossCase(losses.ContrastiveLoss, "ContrastiveLoss", 2, "binary"),
    LossCase(losses.OnlineContrastiveLoss, "OnlineContrastiveLoss", 2, "binary"),
    LossCase(losses.CosineSimilarityLoss, "CosineSimilarityLoss", 2, "score"),
    LossCase(losses.CoSENTLoss, "CoSENTLoss", 2, "score"),
    LossCase(losses.AnglELoss, "AnglELoss", 2, "score"),
    LossCase(losses.MultipleNegativesRankingLoss, "MultipleNegativesRankingLoss", 3),
    LossCase(losses.MultipleNegativesSymmetricRankingLoss, "MultipleNegativesSymmetricRankingLoss", 2),
    LossCase(losses.TripletLoss, "TripletLoss", 3),
    LossCase(losses.MarginMSELoss, "MarginMSELoss", 3, "teacher_margin"),
    LossCase(losses.BatchAllTripletLoss, "BatchAllTripletLoss", 1, "class"),
    LossCase(losses.BatchHardTripletLoss, "BatchHardTripletLoss", 1, "class"),
    LossCase(losses.BatchSemiHardTripletLoss, "BatchSemiHardTripletLoss", 1, "class"),
    LossCase(losses.BatchHardSoftMarginTripletLoss, "BatchHardSoftMarginTripletLoss", 1, "class"),
    LossCase(losses.GlobalOrthogonalRegularizationLoss, "GlobalOrthogonalRegularizationLoss", 2),
)


def make_labels(kind: str | None, batch: int) -> np.ndarray | None:
    """Deterministic labels of a kind for `batch` examples."""
    index = np.arange(batch)
    if kind is None:
        return None
    if kind == "binary":
        return (index % 2).astype(np.int64)
    if kind == "score":
        return ((index * 7) % 11 / 10.0).astype(np.float32)
    if kind == "class":
        return (index % 3).astype(np.int64)
    if kind == "teacher_margin":
        return np.linspace(-1.0, 1.0, batch).astype(np.float32)
    raise ValueError(f"unknown label kind {kind!r}")


def split_columns(embeddings: np.ndarray, columns: int) -> list[np.ndarray]:
    """Rows 0, c, 2c, ... form column 0, rows 1, c + 1, ... column 1, and so on (a whole number of rows)."""
    rows = embeddings.shape[0] // columns * columns
    return [np.asarray(embeddings[i:rows:columns], np.float32) for i in range(columns)]


def jaxst_value_and_grads(
    loss: Any, columns: list[np.ndarray], labels: np.ndarray | None
) -> tuple[float, list]:
    jax_labels = None if labels is None else jnp.asarray(labels)

    def value(cols: list[jax.Array]) -> jax.Array:
        return loss.compute(cols, jax_labels)

    val, grads = jax.value_and_grad(value)([jnp.asarray(c) for c in columns])
    return float(val), [np.asarray(g) for g in grads]


def difference_row(name: str, ours: np.ndarray, theirs: np.ndarray) -> dict[str, Any]:
    a, b = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    max_abs = float(np.abs(a - b).max(initial=0.0))
    return {
        "stage": name,
        "max_abs": max_abs,
        "max_rel": max_abs / max(float(np.abs(b).max(initial=0.0)), 1e-30),
    }


def compare_losses(embeddings: np.ndarray, cases: tuple[LossCase, ...] = CASES) -> list[dict[str, Any]]:
    """For each case, rows "loss NAME value" and "loss NAME gradient" with max abs / rel differences."""
    from sentence_transformers.sentence_transformer import losses as st_losses

    rows = []
    for case in cases:
        columns = split_columns(embeddings, case.columns)
        labels = make_labels(case.labels, columns[0].shape[0])
        make_theirs: Callable = functools.partial(getattr(st_losses, case.st_name), **case.kwargs)
        their_value, their_grads = torch_loss_and_grads(make_theirs, columns, labels)
        our_value, our_grads = jaxst_value_and_grads(case.jaxst_class(None, **case.kwargs), columns, labels)
        rows.append(
            difference_row(f"loss {case.st_name} value", np.float64(our_value), np.float64(their_value))
        )
        rows.append(
            difference_row(f"loss {case.st_name} gradient", np.stack(our_grads), np.stack(their_grads))
        )
    return rows
