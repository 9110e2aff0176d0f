"""Runs sentence-transformers' own loss classes on given embeddings, for value-and-gradient parity.

`FixedEmbeddingModel` stands in for a SentenceTransformer: each feature dict names a column, and the
model returns that column's embedding tensor (a leaf with requires_grad) as `sentence_embedding`.
The loss classes then run unchanged, and the gradients land on the leaves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch


class FixedEmbeddingModel(torch.nn.Module):
    """A torch module whose forward returns fixed embeddings: features {"column": i} -> columns[i]."""

    def __init__(self, columns: Sequence[torch.Tensor]):
        super().__init__()
        self.columns = list(columns)
        # Some losses read the model's device or parameters; one dummy parameter satisfies them.
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, features: dict) -> dict:
        return {"sentence_embedding": self.columns[features["column"]]}

    @property
    def device(self) -> torch.device:
        return self.columns[0].device

    def get_sentence_embedding_dimension(self) -> int:
        return int(self.columns[0].shape[-1])

    get_embedding_dimension = get_sentence_embedding_dimension


def torch_loss_and_grads(
    make_loss: Callable[[FixedEmbeddingModel], torch.nn.Module],
    columns: Sequence[np.ndarray],
    labels: np.ndarray | None = None,
) -> tuple[float, list[np.ndarray]]:
    """Value of a sentence-transformers loss on fixed embeddings, and its gradient per column.

    Args:
        make_loss: builds the loss from the stand-in model, e.g. `lambda m: losses.ContrastiveLoss(m)`.
        columns: one float32 array [B, D] per input column (anchor, positive, ...).
        labels: [B] labels, or None for losses without labels.
    Returns:
        (loss value, [d loss / d column_i for each column]) as float and float32 numpy arrays.
    """
    leaves = [torch.tensor(np.asarray(c, dtype=np.float32), requires_grad=True) for c in columns]
    model = FixedEmbeddingModel(leaves)
    loss_module = make_loss(model)
    features = [{"column": i} for i in range(len(leaves))]
    torch_labels = None if labels is None else torch.as_tensor(np.asarray(labels))
    value = loss_module(features, torch_labels)
    if isinstance(value, dict):  # losses with several terms; sentence-transformers' trainer sums them
        value = sum(value.values())
    value.backward()
    grads = [
        np.zeros_like(c, dtype=np.float32) if t.grad is None else t.grad.numpy()
        for c, t in zip(columns, leaves, strict=True)
    ]
    return float(value.detach()), grads
