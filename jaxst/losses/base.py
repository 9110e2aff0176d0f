"""The class side of the losses: a sentence-transformers name that binds a model to a pure function.

Tutorial code reads `losses.ContrastiveLoss(model=model, margin=0.5)`. Here such a class only stores
the model and the hyperparameters; the arithmetic lives in a pure function of arrays
(`contrastive_loss`) that the class calls. `fit` embeds each text column of a batch with the model
and calls the bound loss on the list of embeddings, inside its jit-compiled, differentiated step.

Before training, `fit` hands every example's label to `Loss.check_label` of the loss and of every loss
it wraps (`loss_chain`), so that a label the loss cannot use is an error naming the example, not a step
that trains on wrong numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

import jax
import numpy as np


class Loss:
    """Base of every loss class. Subclasses set the class attributes and implement `compute`.

    Attributes:
        min_texts / max_texts: how many text columns an example must have (max None: no limit).
        needs_labels: whether each example must carry a label.
    """

    min_texts: ClassVar[int] = 1
    max_texts: ClassVar[int | None] = None
    needs_labels: ClassVar[bool] = False

    def __init__(self, model: Any, **hyperparameters: Any):
        self.model = model
        self.hyperparameters = hyperparameters

    def init_params(self, rng: jax.Array, embedding_dim: int) -> Any:
        """Trainable parameters the loss owns beyond the encoder (e.g. SoftmaxLoss' classifier).

        Returns a pytree, trained and checkpointed with the model's parameters; `{}` when there are none.
        """
        del rng, embedding_dim
        return {}

    def compute(
        self, embeddings: Sequence[jax.Array], labels: jax.Array | None, params: Any = None
    ) -> jax.Array:
        """Scalar loss from one [B, D] array per text column (and [B] or [B, ...] labels).

        Pure and jit-compatible: no Python side effects, no host transfers.
        `params` is what `init_params` returned.
        """
        raise NotImplementedError

    def check_example_shape(self, num_texts: int, has_label: bool) -> None:
        """Raises ValueError naming the loss and what it needs when an example does not fit it."""
        name = type(self).__name__
        if num_texts < self.min_texts or (self.max_texts is not None and num_texts > self.max_texts):
            if self.max_texts == self.min_texts:
                need = f"exactly {self.min_texts}"
            elif self.max_texts is None:
                need = f"at least {self.min_texts}"
            else:
                need = f"{self.min_texts} to {self.max_texts}"
            raise ValueError(f"{name} needs {need} texts per example, got {num_texts}.")
        if self.needs_labels and not has_label:
            raise ValueError(f"{name} needs a label on every example, but an example has none.")

    def check_label(self, label: Any) -> None:
        """Raises ValueError saying what is wrong with one example's label; the base accepts any label.

        Losses whose labels must be of a kind (e.g. class indices) override it; `fit` calls it for every
        example before the first step and names the example in the error.
        """
        del label

    def get_config_dict(self) -> dict[str, Any]:
        """The hyperparameters, as sentence-transformers reports them in model cards."""
        return dict(self.hyperparameters)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters.items())
        return f"{type(self).__name__}({args})"


def loss_chain(loss: Loss) -> Iterator[Loss]:
    """`loss`, then the loss it wraps (`.loss`, e.g. MatryoshkaLoss around SoftmaxLoss), and so on."""
    while loss is not None:
        yield loss
        loss = getattr(loss, "loss", None)


def check_class_label(label: Any, num_classes: int | None = None) -> None:
    """Raises ValueError unless `label` is a class index: an integer in [0, num_classes) (any integer when
    `num_classes` is None).

    A float with an integral value (2.0) counts as that integer, since datasets often store classes as
    floats; a bool, a string, NaN or a fraction is an error, as torch's cross-entropy refuses them.
    """
    array = np.asarray(label) if not isinstance(label, str) else None
    if array is None or array.ndim != 0 or array.dtype.kind not in "iuf":
        raise ValueError(f"label {label!r} is not a class index (an integer).")
    value = array.item()
    if not math.isfinite(value) or value != int(value):
        raise ValueError(f"label {label!r} is not a class index (an integer).")
    if num_classes is not None and not 0 <= value < num_classes:
        raise ValueError(f"label {label!r} is outside the classes [0, {num_classes}).")


class LabeledPairLoss(Loss):
    """A loss of (text a, text b, label) examples, computed by one pure function of the two columns:
    `function(embeddings_a, embeddings_b, labels, **hyperparameters)`.

    Subclasses set `function` (a staticmethod) and write sentence-transformers' constructor signature.
    """

    min_texts = 2
    max_texts = 2
    needs_labels = True
    function: ClassVar[Callable[..., jax.Array]]

    def compute(
        self, embeddings: Sequence[jax.Array], labels: jax.Array | None, params: Any = None
    ) -> jax.Array:
        embeddings_a, embeddings_b = embeddings
        return self.function(embeddings_a, embeddings_b, labels, **self.hyperparameters)
