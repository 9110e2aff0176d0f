"""ContrastiveTensionLossInBatchNegatives: two encoders, one sentence, in-batch negatives (Carlsson et al.).

sentence-transformers embeds the one text column twice: with `model1`, an independent copy of the model
made when the loss is built (trained too, as a parameter of the loss), and with `model2`, the model
itself. The similarity matrix between the two, scaled by exp(logit_scale), is scored by a symmetric
cross-entropy whose targets are the diagonal. logit_scale starts at log(scale) and is trained.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxst.losses.base import Loss
from jaxst.losses.checks import check_rank, check_same_shape
from jaxst.similarity import cos_sim

Similarity = Callable[[jax.Array, jax.Array], jax.Array]


def contrastive_tension_loss_in_batch_negatives(
    embeddings_a: jax.Array,
    embeddings_b: jax.Array,
    *,
    scale: float | jax.Array = 20.0,
    similarity_fct: Similarity = cos_sim,
) -> jax.Array:
    """Symmetric in-batch cross-entropy between two embeddings of the same sentences.

    Args:
        embeddings_a: [B, D] from the copy of the encoder (sentence-transformers' model1).
        embeddings_b: [B, D] from the encoder being trained (model2). Any float dtype; float32 inside.
        scale: the multiplier of the similarities, a float or a traced scalar (e.g. exp of a trained
            log-scale, as the class does).
        similarity_fct: [B, D], [B, D] -> [B, B], cosine by default.
    Returns:
        with S = scale * similarity_fct(a, b),
        loss = (CE(S, arange(B)) + CE(S^T, arange(B))) / 2, CE the mean softmax cross-entropy over rows.
    """
    arrays = {"embeddings_a": embeddings_a, "embeddings_b": embeddings_b}
    check_rank("contrastive_tension_loss_in_batch_negatives", arrays, 2)
    check_same_shape("contrastive_tension_loss_in_batch_negatives", arrays)
    scores = similarity_fct(embeddings_a, embeddings_b).astype(jnp.float32) * jnp.asarray(scale, jnp.float32)
    targets = jnp.arange(scores.shape[0])
    rows = optax.softmax_cross_entropy_with_integer_labels(scores, targets).mean()
    columns = optax.softmax_cross_entropy_with_integer_labels(scores.T, targets).mean()
    return (rows + columns) / 2


class ContrastiveTensionLossInBatchNegatives(Loss):
    """sentence-transformers' ContrastiveTensionLossInBatchNegatives on a single text column.

    The fit loop embeds the one text column twice, as sentence-transformers does: with a copy of the
    encoder's parameters made when training starts (trained as well; `uses_model_copy` says so), and
    with the encoder itself. `compute` takes `[embeddings_from_the_copy, embeddings_from_the_model]`.

    The logit scale is a trainable parameter, as in sentence-transformers: `init_params` returns
    {"logit_scale": float32(log(scale))} and `compute` multiplies by exp(params["logit_scale"]). With
    `params=None` (or {}), the scale stays fixed at `scale`.
    """

    min_texts = 1
    max_texts = 1
    uses_model_copy = True

    def __init__(self, model: Any, scale: float = 20.0, similarity_fct: Similarity = cos_sim):
        super().__init__(model, scale=scale, similarity_fct=similarity_fct)

    def init_params(self, rng: jax.Array, embedding_dim: int) -> dict[str, jax.Array]:
        """{"logit_scale": log(scale)} in float32, the trainable log of the similarity scale."""
        del rng, embedding_dim
        return {"logit_scale": jnp.asarray(np.log(self.hyperparameters["scale"]), jnp.float32)}

    def compute(
        self, embeddings: Sequence[jax.Array], labels: jax.Array | None, params: Any = None
    ) -> jax.Array:
        del labels
        if len(embeddings) != 2:
            raise ValueError(
                "ContrastiveTensionLossInBatchNegatives.compute takes the text column embedded twice, "
                f"[embeddings from the model copy, embeddings from the model], got {len(embeddings)} arrays."
            )
        scale = jnp.exp(params["logit_scale"]) if params else self.hyperparameters["scale"]
        return contrastive_tension_loss_in_batch_negatives(
            *embeddings, scale=scale, similarity_fct=self.hyperparameters["similarity_fct"]
        )

    def get_config_dict(self) -> dict[str, Any]:
        """As sentence-transformers: the (initial) scale and the similarity function's name."""
        return {
            "scale": self.hyperparameters["scale"],
            "similarity_fct": self.hyperparameters["similarity_fct"].__name__,
        }
