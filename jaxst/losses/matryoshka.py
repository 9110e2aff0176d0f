"""MatryoshkaLoss: any loss, on the embeddings truncated to several leading dimensions (Kusupati et al.).

Training on the first d dimensions for several d makes the leading dimensions a usable embedding by
themselves, so that embeddings can be truncated at inference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from jaxst.losses.base import Loss, WrapperLoss, chain_name
from jaxst.losses.checks import check_trailing_dim
from jaxst.similarity import normalize

LossFunction = Callable[[list[jax.Array], jax.Array | None], jax.Array]


def sorted_dims_and_weights(
    matryoshka_dims: Sequence[int], matryoshka_weights: Sequence[float] | None
) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Validates the dimensions and weights (default 1 each); returns both sorted by dimension, largest first.

    The sort is stable, as sentence-transformers': equal dimensions keep their order.
    """
    if not matryoshka_dims:
        raise ValueError("You must provide at least one dimension in matryoshka_dims.")
    if any(dim <= 0 for dim in matryoshka_dims):
        raise ValueError(
            f"All dimensions passed to a matryoshka loss must be > 0, got {tuple(matryoshka_dims)}."
        )
    if matryoshka_weights is None:
        matryoshka_weights = [1] * len(matryoshka_dims)
    elif len(matryoshka_weights) != len(matryoshka_dims):
        raise ValueError(
            f"matryoshka_weights must be the same length as matryoshka_dims, got {len(matryoshka_weights)} "
            f"weights for {len(matryoshka_dims)} dims."
        )
    pairs = sorted(
        zip(matryoshka_dims, matryoshka_weights, strict=True), key=lambda pair: pair[0], reverse=True
    )
    dims, weights = zip(*pairs, strict=True)
    return tuple(dims), tuple(weights)


def samples_dims(n_dims_per_step: int, num_dims: int) -> bool:
    """Whether n_dims_per_step selects a random subset of the dimensions at each step."""
    return 0 < n_dims_per_step < num_dims


def matryoshka_loss(
    loss_fn: LossFunction,
    embeddings: Sequence[jax.Array],
    labels: jax.Array | None = None,
    *,
    matryoshka_dims: Sequence[int],
    matryoshka_weights: Sequence[float] | None = None,
    n_dims_per_step: int = -1,
    rng: jax.Array | None = None,
) -> jax.Array:
    """Weighted sum of `loss_fn` over truncated, re-normalised embeddings.

    Args:
        loss_fn: (list of [B, d] columns, labels) -> scalar, e.g. `lambda cols, labs: mnrl(*cols)` or
            `bound_loss.compute`; it is called once per dimension d (its shapes differ per d).
        embeddings: the full columns, each [B, D] (or [..., D]).
        labels: passed to `loss_fn`; labels of rank 2 or 3 whose last axis is D (e.g. MSELoss' teacher
            embeddings) are truncated to [..., :d] (not normalised), as sentence-transformers does.
        matryoshka_dims: the dimensions d, each <= D; sorted largest first with their weights.
        matryoshka_weights: one weight per dimension, default 1 each.
        n_dims_per_step: if 0 < n < len(dims), each call uses n distinct dimensions drawn uniformly at
            random, and needs `rng`; otherwise every dimension.
        rng: a `jax.random` key, for n_dims_per_step only. sentence-transformers draws with Python's
            `random.sample`; here the draw is a pure function of `rng` (`jax.random.choice` without
            replacement), so a step is reproducible from its key and works under jit, with one compiled
            program: each of the n draws selects its dimension's loss through `lax.switch`, and only
            that branch runs.
    Returns:
        loss = sum_d w_d * loss_fn([normalize(e[..., :d]) for e in embeddings], labels_d), a float32
        scalar; normalize divides by max(||x||, 1e-12), as torch's F.normalize.

    Truncation is normalize(x[..., :d]) for each d, from the full embeddings: sentence-transformers'
    semantics around a gradient-cached loss (its CachedLossDecorator). Around other losses it re-truncates
    the previous (larger) dimension's normalised output instead (its ForwardDecorator), which gives the
    same values and gradients (normalisation is scale-invariant) except at zero vectors (norm < 1e-12):
    there each re-normalisation multiplies the gradient by another 1 / 1e-12, to 1e24, 1e36, then inf.
    Here such gradients stay at one normalisation's scale, and finite.
    """
    dims, weights = sorted_dims_and_weights(matryoshka_dims, matryoshka_weights)
    check_trailing_dim("matryoshka_loss", {f"column {i}": e for i, e in enumerate(embeddings)})
    full_dim = embeddings[0].shape[-1]
    if dims[0] > full_dim:
        raise ValueError(
            f"matryoshka_loss: dimension {dims[0]} in matryoshka_dims cannot be greater than the embedding "
            f"dimension {full_dim} (embeddings of shape {tuple(embeddings[0].shape)})."
        )
    truncate_labels = labels is not None and jnp.ndim(labels) in (2, 3) and jnp.shape(labels)[-1] == full_dim

    def weighted_loss(index: int, columns: Sequence[jax.Array], labels: jax.Array | None) -> jax.Array:
        dim = dims[index]
        truncated = [normalize(column[..., :dim]) for column in columns]
        dim_labels = labels[..., :dim] if truncate_labels else labels
        return (weights[index] * loss_fn(truncated, dim_labels)).astype(jnp.float32)

    if not samples_dims(n_dims_per_step, len(dims)):
        return sum(weighted_loss(i, embeddings, labels) for i in range(len(dims)))
    if rng is None:
        raise ValueError(
            f"matryoshka_loss: n_dims_per_step={n_dims_per_step} samples {n_dims_per_step} of {len(dims)} "
            "dimensions per call and needs a jax.random key: pass rng=..."
        )
    chosen = jax.random.choice(rng, len(dims), (n_dims_per_step,), replace=False)
    branches = [lambda operands, i=i: weighted_loss(i, *operands) for i in range(len(dims))]
    return sum(
        jax.lax.switch(chosen[k], branches, (list(embeddings), labels)) for k in range(n_dims_per_step)
    )


class MatryoshkaLoss(WrapperLoss):
    """sentence-transformers' MatryoshkaLoss around another jaxst loss class; see `matryoshka_loss`.

    Columns, labels, trainable parameters and step needs are the wrapped loss's (`WrapperLoss`).
    `compute(embeddings, labels, params, rng=key, **inputs)`: `rng` is required when n_dims_per_step
    samples dimensions (`needs_rng`), and `inputs` (e.g. GISTEmbedLoss' `guide_embeddings`) go to the
    wrapped loss untruncated, as sentence-transformers truncates only the trained model's output.

    A loss that needs the encoder's hidden states (AdaptiveLayerLoss) cannot be wrapped: it would pool
    every layer at the full dimension next to the truncated embeddings. Wrap the other way round,
    AdaptiveLayerLoss(MatryoshkaLoss(...)), as sentence-transformers' Matryoshka2dLoss does.
    """

    keeps_separable = True  # a weighted sum of the wrapped loss at truncated dimensions

    def __init__(
        self,
        model: Any,
        loss: Loss,
        matryoshka_dims: Sequence[int],
        matryoshka_weights: Sequence[float] | None = None,
        n_dims_per_step: int = -1,
    ):
        if loss.needs_hidden_states:
            raise ValueError(
                f"MatryoshkaLoss cannot wrap {chain_name(loss)}, which needs the encoder's hidden states: "
                "wrap it the other way round, AdaptiveLayerLoss(MatryoshkaLoss(...))."
            )
        dims, weights = sorted_dims_and_weights(matryoshka_dims, matryoshka_weights)
        super().__init__(
            model, loss, matryoshka_dims=dims, matryoshka_weights=weights, n_dims_per_step=n_dims_per_step
        )

    @property
    def needs_rng(self) -> bool:
        """Whether `compute` needs an rng key (n_dims_per_step draws a subset of the dimensions)."""
        return samples_dims(
            self.hyperparameters["n_dims_per_step"], len(self.hyperparameters["matryoshka_dims"])
        )

    def compute(
        self,
        embeddings: Sequence[jax.Array],
        labels: jax.Array | None,
        params: Any = None,
        *,
        rng: jax.Array | None = None,
        **inputs: Any,
    ) -> jax.Array:
        return matryoshka_loss(
            lambda columns, dim_labels: self.loss.compute(columns, dim_labels, params, **inputs),
            embeddings,
            labels,
            rng=rng,
            **self.hyperparameters,
        )
