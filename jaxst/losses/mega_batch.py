"""MegaBatchMarginLoss: a margin loss with the hardest in-batch negative of a large ("mega") batch.

Wieting and Gimpel (2018), ParaNMT-50M. For each anchor, the positive must score above
positive_margin and the most similar other positive of the batch below negative_margin.

sentence-transformers' default (`use_mini_batched_version=True`) embeds the mega batch in mini-batches
with gradient caching (GradCache): it embeds every mini-batch without gradients, computes this loss on
the embeddings of the whole mega batch, keeps d loss / d embeddings, then re-embeds each mini-batch with
gradients and back-propagates the kept gradients. Loss and gradients equal the plain version; only the
peak memory differs. In jaxst the loss is this pure function of the mega batch's embeddings, and the
memory saving belongs to how the embeddings are produced: the fit loop embeds `mini_batch_size` rows at a
time with rematerialisation (`jax.checkpoint` around each mini-batch's forward pass), which gives the same
loss and gradients with one mini-batch of activations alive at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from jaxst.losses.base import Loss
from jaxst.losses.batch_triplet import first_index_max
from jaxst.losses.checks import check_rank, check_same_shape
from jaxst.similarity import cos_sim


def mega_batch_margin_loss(
    anchors: jax.Array,
    positives: jax.Array,
    *,
    positive_margin: float = 0.8,
    negative_margin: float = 0.3,
) -> jax.Array:
    """Margin loss with the hardest in-batch negative.

    Args:
        anchors: [B, D], the whole mega batch, any float dtype (computed in float32).
        positives: [B, D]; positives[i] is the positive of anchors[i], and the others its negatives.
        positive_margin: the cosine similarity a positive should exceed.
        negative_margin: the cosine similarity the hardest negative should stay under.
    Returns:
        with s = cos_sim(anchors, positives) [B, B],
        loss = sum_i( relu(positive_margin - s_ii) + relu(max_{j != i} s_ij - negative_margin) ) / B.
        The max's gradient goes to the first maximal j among ties, as torch's `max(dim)`. A batch of
        one has no negative: its negative term is relu(-inf) = 0.
    """
    check_rank("mega_batch_margin_loss", {"anchors": anchors, "positives": positives}, 2)
    check_same_shape("mega_batch_margin_loss", {"anchors": anchors, "positives": positives})
    scores = cos_sim(anchors, positives)
    diagonal = jnp.eye(scores.shape[0], dtype=bool)
    positive_scores = jnp.diagonal(scores)
    hardest_negative_scores = first_index_max(jnp.where(diagonal, -jnp.inf, scores))
    per_anchor = jax.nn.relu(positive_margin - positive_scores) + jax.nn.relu(
        hardest_negative_scores - negative_margin
    )
    return jnp.sum(per_anchor) / scores.shape[0]


class MegaBatchMarginLoss(Loss):
    """sentence-transformers' MegaBatchMarginLoss on (anchor, positive) pairs; see `mega_batch_margin_loss`.

    `use_mini_batched_version`, `mini_batch_size` and `mini_batch_num_tokens` say how the mega batch is
    embedded, not what the loss is (see the module docstring): `embedding_mini_batch_size` exposes them
    to the fit loop. `show_progress_bar` is accepted for signature compatibility and does nothing here.
    """

    min_texts = 2
    max_texts = 2

    def __init__(
        self,
        model: Any,
        positive_margin: float = 0.8,
        negative_margin: float = 0.3,
        use_mini_batched_version: bool = True,
        mini_batch_size: int = 50,
        mini_batch_num_tokens: int | None = None,
        show_progress_bar: bool = False,
    ):
        if mini_batch_num_tokens is not None and mini_batch_num_tokens <= 0:
            raise ValueError(
                f"mini_batch_num_tokens must be a positive integer or None, got {mini_batch_num_tokens}."
            )
        super().__init__(
            model,
            positive_margin=positive_margin,
            negative_margin=negative_margin,
            mini_batch_size=mini_batch_size,
            mini_batch_num_tokens=mini_batch_num_tokens,
        )
        self.use_mini_batched_version = use_mini_batched_version
        self.show_progress_bar = show_progress_bar

    @property
    def embedding_mini_batch_size(self) -> int | None:
        """Rows per embedding forward pass the fit loop should use for this loss (None: the whole batch)."""
        return self.hyperparameters["mini_batch_size"] if self.use_mini_batched_version else None

    def compute(
        self, embeddings: Sequence[jax.Array], labels: jax.Array | None, params: Any = None
    ) -> jax.Array:
        del labels, params
        anchors, positives = embeddings
        return mega_batch_margin_loss(
            anchors,
            positives,
            positive_margin=self.hyperparameters["positive_margin"],
            negative_margin=self.hyperparameters["negative_margin"],
        )
