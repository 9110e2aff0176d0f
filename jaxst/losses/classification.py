"""SoftmaxLoss: a linear classifier on a pair's combined embeddings (e.g. NLI), its weights explicit."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxst.losses.base import Loss, check_class_label
from jaxst.losses.checks import check_rank, check_same_shape
from jaxst.losses.linear import LinearParams, apply_linear, check_linear, init_linear
from jaxst.similarity import torch_abs

LOSS_NAME = "softmax_loss"


def num_concatenated(
    concatenation_sent_rep: bool, concatenation_sent_difference: bool, concatenation_sent_multiplication: bool
) -> int:
    """How many D-sized vectors the classifier input holds; ValueError when none is selected."""
    count = 2 * concatenation_sent_rep + concatenation_sent_difference + concatenation_sent_multiplication
    if count == 0:
        raise ValueError(
            f"{LOSS_NAME}: at least one of concatenation_sent_rep, concatenation_sent_difference or "
            "concatenation_sent_multiplication must be True."
        )
    return count


def init_softmax_classifier(
    rng: jax.Array,
    embedding_dimension: int,
    num_labels: int,
    *,
    concatenation_sent_rep: bool = True,
    concatenation_sent_difference: bool = True,
    concatenation_sent_multiplication: bool = False,
) -> LinearParams:
    """Classifier {"kernel": [n * D, num_labels], "bias": [num_labels]}, drawn as torch's nn.Linear draws.

    n is the number of concatenated vectors (see `softmax_loss`).
    """
    n = num_concatenated(
        concatenation_sent_rep, concatenation_sent_difference, concatenation_sent_multiplication
    )
    return init_linear(rng, n * embedding_dimension, num_labels)


def softmax_logits(
    classifier: LinearParams,
    embeddings_a: jax.Array,
    embeddings_b: jax.Array,
    *,
    concatenation_sent_rep: bool = True,
    concatenation_sent_difference: bool = True,
    concatenation_sent_multiplication: bool = False,
) -> jax.Array:
    """[B, C] float32 logits `[a, b, |a - b|, a * b] @ kernel + bias` (the selected parts, in this order).

    embeddings_a, embeddings_b: [B, D]; classifier {"kernel": [n * D, C], "bias": [C]}.
    """
    a, b = embeddings_a.astype(jnp.float32), embeddings_b.astype(jnp.float32)
    parts = [a, b] if concatenation_sent_rep else []
    if concatenation_sent_difference:
        parts.append(torch_abs(a - b))
    if concatenation_sent_multiplication:
        parts.append(a * b)
    return apply_linear(classifier, jnp.concatenate(parts, axis=1))


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """torch's `nn.CrossEntropyLoss()`: logits [B, C]; labels [B] class indices or [B, C] probabilities.

    Returns mean_i CE(softmax(logits_i), y_i), a float32 scalar. Integer labels must lie in [0, C): torch's
    `ignore_index` (-100) is not supported.
    """
    logits = logits.astype(jnp.float32)
    if labels.ndim == 1:
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels.astype(jnp.int32)).mean()
    return optax.softmax_cross_entropy(logits, labels.astype(jnp.float32)).mean()


def softmax_loss(
    classifier: LinearParams,
    embeddings_a: jax.Array,
    embeddings_b: jax.Array,
    labels: jax.Array,
    *,
    concatenation_sent_rep: bool = True,
    concatenation_sent_difference: bool = True,
    concatenation_sent_multiplication: bool = False,
    loss_fct: Callable[[jax.Array, jax.Array], jax.Array] = cross_entropy,
) -> jax.Array:
    """Cross-entropy of a linear classifier on [a, b, |a - b|, a * b] (the selected parts, in this order).

    Args:
        classifier: {"kernel": [n * D, C], "bias": [C]}, e.g. from `init_softmax_classifier`.
        embeddings_a: [B, D] first text of each pair.
        embeddings_b: [B, D] second text of each pair.
        labels: [B] integer classes in [0, C), or [B, C] class probabilities.
        concatenation_sent_rep: include a and b; concatenation_sent_difference: include |a - b|;
        concatenation_sent_multiplication: include a * b.
        loss_fct: (logits [B, C], labels) -> scalar, `cross_entropy` (torch's CrossEntropyLoss) by default.

    Returns:
        Scalar float32: loss_fct(features @ kernel + bias, labels), by default
        mean_i CE(softmax(features_i @ kernel + bias), y_i). sentence-transformers' call without labels,
        which returns the logits, is not part of this loss (`softmax_logits` gives them).
    """
    arrays = {"embeddings_a": embeddings_a, "embeddings_b": embeddings_b}
    check_rank(LOSS_NAME, arrays, 2)
    check_same_shape(LOSS_NAME, arrays)
    batch, dim = embeddings_a.shape
    n = num_concatenated(
        concatenation_sent_rep, concatenation_sent_difference, concatenation_sent_multiplication
    )
    check_linear(LOSS_NAME, classifier, n * dim)
    num_labels = classifier["kernel"].shape[1]
    if labels is None:
        raise ValueError(f"{LOSS_NAME} needs labels, got None.")
    labels = jnp.asarray(labels)
    if labels.shape not in ((batch,), (batch, num_labels)):
        raise ValueError(
            f"{LOSS_NAME}: labels must have shape ({batch},) (classes) or ({batch}, {num_labels}) "
            f"(probabilities) for embeddings of shape {tuple(embeddings_a.shape)}, got {tuple(labels.shape)}."
        )

    logits = softmax_logits(
        classifier,
        embeddings_a,
        embeddings_b,
        concatenation_sent_rep=concatenation_sent_rep,
        concatenation_sent_difference=concatenation_sent_difference,
        concatenation_sent_multiplication=concatenation_sent_multiplication,
    )
    return jnp.asarray(loss_fct(logits, labels), jnp.float32)


class SoftmaxLoss(Loss):
    """sentence-transformers' SoftmaxLoss bound to a model; see `softmax_loss`.

    The classifier is the loss' own parameter pytree: `init_params(rng, embedding_dim)` creates it, and
    `compute(embeddings, labels, params)` takes it, so it trains and checkpoints with the model.
    """

    min_texts = 2
    max_texts = 2
    needs_labels = True

    def __init__(
        self,
        model: Any,
        embedding_dimension: int,
        num_labels: int,
        concatenation_sent_rep: bool = True,
        concatenation_sent_difference: bool = True,
        concatenation_sent_multiplication: bool = False,
        loss_fct: Callable[[jax.Array, jax.Array], jax.Array] = cross_entropy,
    ):
        num_concatenated(
            concatenation_sent_rep, concatenation_sent_difference, concatenation_sent_multiplication
        )
        super().__init__(
            model,
            embedding_dimension=embedding_dimension,
            num_labels=num_labels,
            concatenation_sent_rep=concatenation_sent_rep,
            concatenation_sent_difference=concatenation_sent_difference,
            concatenation_sent_multiplication=concatenation_sent_multiplication,
        )
        self.loss_fct = loss_fct
        self.separable = loss_fct is cross_entropy  # a mean over the pairs; a custom loss_fct may not be

    @property
    def concatenation(self) -> dict[str, bool]:
        return {k: v for k, v in self.hyperparameters.items() if k.startswith("concatenation_")}

    def init_params(self, rng: jax.Array, embedding_dim: int) -> LinearParams:
        expected = self.hyperparameters["embedding_dimension"]
        if embedding_dim != expected:
            raise ValueError(
                f"SoftmaxLoss was built for embedding_dimension={expected}, "
                f"but the model embeds in {embedding_dim} dimensions."
            )
        return init_softmax_classifier(
            rng, expected, self.hyperparameters["num_labels"], **self.concatenation
        )

    def check_label(self, label: Any) -> None:
        """A class index in [0, num_labels) (see `check_class_label`), or num_labels finite, non-negative
        class probabilities.

        The traced loss cannot tell: an index outside the classes or a fraction would train on a wrong
        class (or none) without an error.
        """
        num_labels = self.hyperparameters["num_labels"]
        if np.ndim(label) != 1:
            check_class_label(label, num_labels)
            return
        probabilities = np.asarray(label)
        if probabilities.shape != (num_labels,) or probabilities.dtype.kind not in "iuf":
            raise ValueError(
                f"label {label!r} is neither a class index nor {num_labels} class probabilities."
            )
        if not (np.all(np.isfinite(probabilities)) and np.all(probabilities >= 0)):
            raise ValueError(f"label {label!r}: class probabilities must be finite and non-negative.")

    def compute(
        self, embeddings: Sequence[jax.Array], labels: jax.Array | None, params: Any = None
    ) -> jax.Array:
        if params is None:
            raise ValueError(
                "SoftmaxLoss.compute needs the classifier parameters from init_params, got None."
            )
        embeddings_a, embeddings_b = embeddings
        return softmax_loss(
            params, embeddings_a, embeddings_b, labels, loss_fct=self.loss_fct, **self.concatenation
        )
