"""The class side of the losses: a sentence-transformers name that binds a model to a pure function.

Tutorial code reads `losses.ContrastiveLoss(model=model, margin=0.5)`. Here such a class only stores
the model and the hyperparameters; the arithmetic lives in a pure function of arrays
(`contrastive_loss`) that the class calls. `fit` embeds each text column of a batch with the model
and calls the bound loss on the list of embeddings, inside its jit-compiled, differentiated step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import jax


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

    def get_config_dict(self) -> dict[str, Any]:
        """The hyperparameters, as sentence-transformers reports them in model cards."""
        return dict(self.hyperparameters)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters.items())
        return f"{type(self).__name__}({args})"


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
