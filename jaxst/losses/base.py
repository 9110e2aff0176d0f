"""The class side of the losses: a sentence-transformers name that binds a model to a pure function.

Tutorial code reads `losses.ContrastiveLoss(model=model, margin=0.5)`. Here such a class only stores
the model and the hyperparameters; the arithmetic lives in a pure function of arrays
(`contrastive_loss`) that the class calls. `fit` embeds each text column of a batch with the model
and calls the bound loss on the list of embeddings, inside its jit-compiled, differentiated step.

What a loss needs from that step (a key, the hidden states, GradCache, a guide model) is declared by the
attributes of `Loss`, with their defaults; the step reads them and hands `compute` what they ask for. A
`WrapperLoss` (MatryoshkaLoss, AdaptiveLayerLoss) holds another loss as `.loss` and has the needs of the
whole chain below it (`find_in_chain`).

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

    The attributes below are the whole contract between a loss and the train step
    (`jaxst.training.step.batch_loss`) and `fit`: each says what the step then does, and which keyword
    argument it adds to `compute(embeddings, labels, params, **inputs)`. A loss that sets none of them
    gets only the k columns of embeddings [b, D], the labels and its own parameters.

    Attributes:
        min_texts / max_texts: how many text columns an example must have (max None: no limit).
        needs_labels: whether each example must carry a label.
        needs_rng: `compute` gets `rng=`, a jax.random key of the step, the same on every device:
            fold_in(fold_in(state.rng, LOSS_RNG_STREAM), step) (e.g. MatryoshkaLoss' draw of dimensions).
        needs_hidden_states: the forward pass keeps every layer's hidden states, and `compute` gets
            `model_output=`, the forward's dict for the k * b rows (column after column), which holds
            "all_layer_embeddings" (L + 1 arrays [k * b, T, H]) besides the features and the embeddings,
            and `model_params=`, the model's parameters (e.g. to pool a layer through `model.pipeline`).
        mini_batch_size: None, or GradCache: the step embeds the padded batch through
            `jaxst.training.gradcache.cached_embed` in chunks of this many rows, so that the gradient of
            the whole-batch loss needs the memory of one chunk; `compute` gets nothing more.
        guide: None, or a frozen model: `fit` embeds every (padded) batch with it outside the step, and
            `compute` gets `guide_embeddings=`, one [b, D_guide] float32 array per column, without gradient.
        uses_model_copy: the loss embeds the texts with a second copy of the model as well, as
            sentence-transformers' ContrastiveTension losses do (their model1). The copy is a parameter of
            the loss: `init_params` returns it under "model_copy" (made from `model.params` when training
            starts), so it is trained and checkpointed with the loss, and `model.save` keeps the model
            itself (their model2). The step embeds the k columns with the copy too, through the same
            forward with a dropout key of its own (fold_in(dropout key, COPY_DROPOUT_STREAM)), and `compute`
            gets `copy_embeddings=`, one [b, D] array per column.
        separable: the loss of a batch is the mean over its examples of terms that each depend on one
            example alone (its texts and label), loss(batch) = mean_i l(example_i), so that the mean of
            the losses of m equal-sized micro-batches is the whole batch's loss, and so is its gradient:
            the step may then accumulate gradients over micro-batches (`gradient_accumulation_steps`).
            False (the default) for a loss that compares a batch's examples with each other (in-batch
            negatives, all pairs, batch statistics) or sums instead of averaging.
    """

    min_texts: int = 1
    max_texts: int | None = None
    needs_labels: bool = False
    needs_rng: bool = False
    needs_hidden_states: bool = False
    mini_batch_size: int | None = None
    guide: Any = None
    uses_model_copy: bool = False
    separable: bool = False

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

        Pure and jit-compatible: no Python side effects, no host transfers. `params` is what `init_params`
        returned; the keyword arguments a loss's attributes ask for (see the class docstring) come after.
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


class FromWrappedChain:
    """An attribute of a `WrapperLoss` whose value is the one `find_in_chain` finds below the wrapper."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, wrapper: WrapperLoss | None, owner: type | None = None) -> Any:
        if wrapper is None:
            return self
        return find_in_chain(wrapper.loss, self.name)


class WrapperLoss(Loss):
    """A loss that changes how another loss (`.loss`) is applied, e.g. to truncated embeddings or to layers.

    The wrapped loss's columns, labels, trainable parameters and step needs (`mini_batch_size`, `guide`,
    `needs_hidden_states`, `uses_model_copy`) are the wrapper's too: wrappers may nest, and each of these
    attributes is found anywhere down the chain (`find_in_chain`). A wrapper overrides what it changes
    (AdaptiveLayerLoss needs hidden states itself) and decides `needs_rng` for itself, since it hands the
    wrapped loss its key. It is `separable` when the wrapped loss is and its own arithmetic keeps the
    batch separable (`keeps_separable`: e.g. a weighted sum of the wrapped loss at several dimensions).
    """

    keeps_separable: ClassVar[bool] = False

    min_texts = FromWrappedChain()
    max_texts = FromWrappedChain()
    needs_labels = FromWrappedChain()
    needs_hidden_states = FromWrappedChain()
    mini_batch_size = FromWrappedChain()
    guide = FromWrappedChain()
    uses_model_copy = FromWrappedChain()

    def __init__(self, model: Any, loss: Loss, **hyperparameters: Any):
        super().__init__(model, **hyperparameters)
        self.loss = loss

    @property
    def separable(self) -> bool:
        """Whether the wrapper keeps the batch separable and the wrapped loss is separable."""
        return self.keeps_separable and self.loss.separable

    def init_params(self, rng: jax.Array, embedding_dim: int) -> Any:
        """The wrapped loss's parameters."""
        return self.loss.init_params(rng, embedding_dim)

    def get_config_dict(self) -> dict[str, Any]:
        """As sentence-transformers: the wrapped loss by class name, then the wrapper's hyperparameters."""
        return {"loss": type(self.loss).__name__, **self.hyperparameters}


def loss_chain(loss: Loss) -> Iterator[Loss]:
    """`loss`, then the loss it wraps when it is a `WrapperLoss` (e.g. MatryoshkaLoss around SoftmaxLoss),
    and so on down to a loss that wraps none."""
    yield loss
    while isinstance(loss, WrapperLoss):
        loss = loss.loss
        yield loss


def find_in_chain(loss: Loss, name: str) -> Any:
    """The attribute `name` of the first loss down `loss_chain(loss)` that sets it to other than the `Loss`
    default (e.g. the `mini_batch_size` of a GradCache loss inside MatryoshkaLoss); else that default."""
    default = getattr(Loss, name)
    values = (getattr(link, name) for link in loss_chain(loss))
    return next((value for value in values if value != default), default)


def chain_name(loss: Loss) -> str:
    """The classes down `loss_chain(loss)`, nested: "MatryoshkaLoss(CachedMultipleNegativesRankingLoss)"."""
    names = [type(link).__name__ for link in loss_chain(loss)]
    return "(".join(names) + ")" * (len(names) - 1)


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
