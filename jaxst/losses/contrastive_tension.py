"""ContrastiveTensionLoss, ContrastiveTensionLossInBatchNegatives: two copies of one encoder (Carlsson).

sentence-transformers embeds with two copies of the model: `model1`, an independent copy made when the
loss is built, and `model2`, the model itself; both are trained (the optimizer takes every parameter of
the loss), and the model saved is `model2`. Here the copy is the loss's parameter "model_copy" and the
train step embeds with it (`jaxst.losses.base.Loss.uses_model_copy`).

ContrastiveTensionLoss scores (text a, text b) pairs, a embedded by the copy and b by the model, with a
binary cross-entropy on their dot product: label 1 when the two texts are the same sentence, 0 otherwise.
ContrastiveTensionLossInBatchNegatives embeds one text column with both, and scores the similarity matrix
between the two, scaled by exp(logit_scale), by a symmetric cross-entropy whose targets are the diagonal;
logit_scale starts at log(scale) and is trained.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxst.losses.base import Loss
from jaxst.losses.checks import check_labels, check_rank, check_same_shape
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


def contrastive_tension_loss(
    embeddings_a: jax.Array, embeddings_b: jax.Array, labels: jax.Array
) -> jax.Array:
    """Binary cross-entropy with logits, summed, of the dot products of paired rows.

    Args:
        embeddings_a: [B, D] first texts, from the copy of the encoder (sentence-transformers' model1).
        embeddings_b: [B, D] second texts, from the encoder being trained (model2). Any float dtype.
        labels: [B], 1 where the two texts are the same sentence, 0 where not (targets in [0, 1]).
    Returns:
        with s_i = <a_i, b_i>, loss = sum_i -(y_i log sigmoid(s_i) + (1 - y_i) log sigmoid(-s_i)), float32:
        torch's BCEWithLogitsLoss(reduction="sum").
    """
    arrays = {"embeddings_a": embeddings_a, "embeddings_b": embeddings_b}
    check_rank("contrastive_tension_loss", arrays, 2)
    check_same_shape("contrastive_tension_loss", arrays)
    check_labels("contrastive_tension_loss", labels, "embeddings_a", embeddings_a)
    a, b = embeddings_a.astype(jnp.float32), embeddings_b.astype(jnp.float32)
    scores = jnp.sum(a * b, axis=-1)
    return optax.sigmoid_binary_cross_entropy(scores, jnp.asarray(labels, jnp.float32)).sum()


def copy_of_model_params(model: Any) -> Any:
    """A copy of `model.params` (new arrays): the initial parameters of a loss's model copy."""
    return jax.tree.map(jnp.array, model.params)


class ContrastiveTensionLoss(Loss):
    """sentence-transformers' ContrastiveTensionLoss on (text a, text b, label) examples; see
    `contrastive_tension_loss`.

    Text a is embedded by the model copy and text b by the model (`uses_model_copy`): `compute` takes
    the model's columns and `copy_embeddings=` the copy's, and uses the copy's first and the model's
    second column. `init_params` returns {"model_copy": a copy of model.params}.

    Difference from sentence-transformers: every example needs its label (1: the two texts are the same
    sentence, 0: not), as `ContrastiveTensionDataLoader` makes them; sentence-transformers derives a
    missing label by comparing the two texts' token ids.
    """

    min_texts = 2
    max_texts = 2
    needs_labels = True
    uses_model_copy = True

    def __init__(self, model: Any):
        super().__init__(model)

    def init_params(self, rng: jax.Array, embedding_dim: int) -> dict[str, Any]:
        """{"model_copy": a copy of the model's parameters}, trained with the loss."""
        del rng, embedding_dim
        return {"model_copy": copy_of_model_params(self.model)}

    def check_label(self, label: Any) -> None:
        """A number in [0, 1]: 1 for a pair of the same sentence, 0 for two different ones."""
        value = np.asarray(label) if not isinstance(label, str) else None
        if value is None or value.ndim != 0 or value.dtype.kind not in "biuf" or not 0 <= value <= 1:
            raise ValueError(
                f"label {label!r} is not a pair label: 1 (the same sentence twice) or 0 (two sentences)."
            )

    def compute(
        self,
        embeddings: Sequence[jax.Array],
        labels: jax.Array | None,
        params: Any = None,
        *,
        copy_embeddings: Sequence[jax.Array],
    ) -> jax.Array:
        del params
        return contrastive_tension_loss(copy_embeddings[0], embeddings[1], labels)

    def get_config_dict(self) -> dict[str, Any]:
        """As sentence-transformers: no hyperparameters."""
        return {}


class ContrastiveTensionLossInBatchNegatives(Loss):
    """sentence-transformers' ContrastiveTensionLossInBatchNegatives on a single text column.

    The column is embedded twice, as sentence-transformers does: by the model copy and by the model
    (`uses_model_copy`); `compute` takes the model's column and `copy_embeddings=` the copy's.

    The logit scale is a trainable parameter, as in sentence-transformers: `init_params` returns
    {"model_copy": a copy of model.params, "logit_scale": float32(log(scale))} and `compute` multiplies by
    exp(params["logit_scale"]). With `params=None` (or {}), the scale stays fixed at `scale`.
    """

    min_texts = 1
    max_texts = 1
    uses_model_copy = True

    def __init__(self, model: Any, scale: float = 20.0, similarity_fct: Similarity = cos_sim):
        super().__init__(model, scale=scale, similarity_fct=similarity_fct)

    def init_params(self, rng: jax.Array, embedding_dim: int) -> dict[str, Any]:
        """{"model_copy": a copy of the model's parameters, "logit_scale": log(scale) in float32}."""
        del rng, embedding_dim
        return {
            "model_copy": copy_of_model_params(self.model),
            "logit_scale": jnp.asarray(np.log(self.hyperparameters["scale"]), jnp.float32),
        }

    def compute(
        self,
        embeddings: Sequence[jax.Array],
        labels: jax.Array | None,
        params: Any = None,
        *,
        copy_embeddings: Sequence[jax.Array],
    ) -> jax.Array:
        del labels
        scale = jnp.exp(params["logit_scale"]) if params else self.hyperparameters["scale"]
        return contrastive_tension_loss_in_batch_negatives(
            copy_embeddings[0],
            embeddings[0],
            scale=scale,
            similarity_fct=self.hyperparameters["similarity_fct"],
        )

    def get_config_dict(self) -> dict[str, Any]:
        """As sentence-transformers: the (initial) scale and the similarity function's name."""
        return {
            "scale": self.hyperparameters["scale"],
            "similarity_fct": self.hyperparameters["similarity_fct"].__name__,
        }
