"""Gradient accumulation inside the compiled train step: m micro-batches per optimizer update.

A step with `gradient_accumulation_steps=m` takes m times the examples of a micro-batch, splits each
device's share into m micro-batches of one padded shape (`micro_batches`), and sums their losses and
gradients in a `lax.scan` (`accumulated_value_and_grad`): one optimizer update per step, so the step
count, the learning-rate schedule, checkpoints and resumption all count optimizer updates, and the
forward and backward passes hold the activations of one micro-batch. `optax.MultiSteps` would instead
make every micro-batch a step of its own and keep the running gradient sum in the optimizer state, so
that fit's step count, schedule, logging and checkpoints would have to tell micro-steps from updates, and
a checkpoint could fall between the micro-batches of an update.

Only a `separable` loss accumulates (`jaxst.losses.base.Loss`): loss(batch) = mean_i l(example_i), so
the mean of m equal-sized micro-batch losses is the whole batch's loss, and so is its gradient.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from jaxst.batch_layouts import PackedBatch, PaddedBatch, TrainingBatch, as_batch
from jaxst.losses.base import Loss, chain_name


def micro_batches(batch: TrainingBatch | Mapping[str, jax.Array], count: int) -> PaddedBatch:
    """One device's padded batch of b examples -> `count` micro-batches of b / count examples, stacked on a
    new leading axis: each array's split axis (`PaddedBatch.split_axes`) of size b becomes [count, b / count]
    with the count moved to the front, so that micro-batch j holds examples j * b / count ... (j + 1) * b /
    count - 1 of every column, with their labels and guide embeddings.

    Raises:
        ValueError: a packed batch (its rows mix the texts of several micro-batches), or a b that `count`
            does not divide.
    """
    batch = as_batch(batch)
    if isinstance(batch, PackedBatch):
        raise ValueError("Gradient accumulation splits padded batches; this batch is packed.")
    size = batch.input_ids.shape[1]
    if size % count:
        raise ValueError(f"A batch of {size} examples does not split into {count} equal micro-batches.")

    def split(array: jax.Array, axis: int) -> jax.Array:
        shape = (*array.shape[:axis], count, size // count, *array.shape[axis + 1 :])
        return jnp.moveaxis(array.reshape(shape), axis, 0)

    return jax.tree.map(split, batch, batch.split_axes())


def check_accumulation_steps(steps: int) -> None:
    """Raises ValueError unless `steps` (gradient_accumulation_steps) is a positive integer."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"gradient_accumulation_steps must be a positive integer, got {steps!r}.")


def check_accumulation(loss: Loss, gradient_accumulation_steps: int) -> None:
    """Raises ValueError unless `gradient_accumulation_steps` is a positive integer, and 1 for a loss that is
    not `separable` (the error names the loss and the GradCache losses that give a large batch exactly)."""
    steps = gradient_accumulation_steps
    check_accumulation_steps(steps)
    if steps > 1 and not loss.separable:
        raise ValueError(
            f"gradient_accumulation_steps={steps}: {chain_name(loss)} is not separable (its loss of a batch "
            "compares the batch's examples with each other, e.g. in-batch negatives or all pairs), so "
            "micro-batches would train a different loss. For a large batch in little memory use a cached "
            "(GradCache) loss, e.g. CachedMultipleNegativesRankingLoss(model, mini_batch_size=...), which "
            "gives the large batch's loss and gradient exactly."
        )


def accumulated_value_and_grad(
    loss_fn: Callable[[Any, PaddedBatch, jax.Array | None], jax.Array],
    params: Any,
    batches: PaddedBatch,
    dropout_rng: jax.Array | None,
    axis_name: str | None,
) -> tuple[jax.Array, Any]:
    """(mean_j loss_j, mean_j grad loss_j) over the m micro-batches stacked in `batches` (`micro_batches`),
    loss_j = loss_fn(params, micro-batch j, fold_in(dropout_rng, j)), one micro-batch at a time in a scan.

    Runs inside the step's named axis `axis_name`, where `params` are per-device ("varying") values: the
    sums start from zeros cast to the same; None for a step over the global batch (no cast)."""
    count = batches.input_ids.shape[0]

    def add_micro_batch(totals: tuple[jax.Array, Any], inputs: tuple[jax.Array, PaddedBatch]) -> Any:
        index, micro_batch = inputs
        rng = None if dropout_rng is None else jax.random.fold_in(dropout_rng, index)
        value_and_grads = jax.value_and_grad(loss_fn)(params, micro_batch, rng)
        return jax.tree.map(jnp.add, totals, value_and_grads), None

    zeros = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), (jnp.zeros((), jnp.float32), params))
    if axis_name is not None:
        zeros = lax.pcast(zeros, axis_name, to="varying")
    totals, _ = lax.scan(add_micro_batch, zeros, (jnp.arange(count), batches))
    return jax.tree.map(lambda total: total / count, totals)
