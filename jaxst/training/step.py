"""The per-device training step: one function, run by `jaxst.training.parallel` under pmap or shard_map.

A step embeds every text column of a batch in one forward pass, evaluates the bound loss, averages loss
and gradients over the `"data"` axis with `pmean`, and applies the optax update. It never leaves JAX,
so the whole step is one compiled program per (objective, batch shape). The batch is one device's slice
of a `PaddedBatch` or `PackedBatch` (`jaxst.batch_layouts`: k text columns of b examples, labels and
guide embeddings).

What a loss asks of the step (a key, the hidden states, GradCache, guide embeddings) and what `compute`
then gets is declared, with the defaults, on `jaxst.losses.base.Loss`; `batch_loss` reads those attributes.

With `gradient_accumulation_steps` > 1 a step averages the gradients of micro-batches of its batch before
its one update (`jaxst.training.accumulation`).

The step's metrics: "loss" (the pmean of the per-device losses), "grad_norm" (the global norm of the
averaged gradients) and "params_finite" (whether every element of the updated parameters, loss
parameters included, is finite, the same on every device), all computed on the devices, so that the
host reads them together, once per step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax import lax

from jaxst.batch_layouts import Forward, PackedBatch, TrainingBatch, as_batch
from jaxst.lora.trainable import join_trainable
from jaxst.losses.base import Loss, chain_name
from jaxst.training.accumulation import accumulated_value_and_grad, check_accumulation, micro_batches
from jaxst.training.gradcache import cached_embed

AXIS_NAME = "data"
# Folded into the state's key to derive the per-step loss keys; no step count reaches it.
LOSS_RNG_STREAM = 2**31 - 1
# Folded into a step's dropout key for the forward pass of a loss's model copy (`Loss.uses_model_copy`).
COPY_DROPOUT_STREAM = 2**31 - 2


@struct.dataclass
class TrainState:
    """Everything that changes during training, as one pytree (checkpointed whole).

    Attributes:
        params: the trained parameters, {"model": encoder + module parameters, "losses": one pytree per
            objective (often {})}; with a LoRA adapter, "model" holds the adapter and the modules only
            (`jaxst.lora.trainable.split_trainable`).
        opt_state: the optax state of `params` (so with LoRA it exists for the adapter alone).
        step: int32 scalar, optimizer steps taken so far (all objectives together).
        rng: uint32 [2] PRNG key; the dropout key of a step is fold_in(fold_in(rng, step), device), its
            loss key (e.g. AdaptiveLayerLoss' layer draw) fold_in(fold_in(rng, LOSS_RNG_STREAM), step).
        frozen: the model parameters the forward pass reads and no step updates (a LoRA adapter's base
            encoder weights, any float dtype), or None when every model parameter trains.
    """

    params: Any
    opt_state: Any
    step: jax.Array
    rng: jax.Array
    frozen: Any = None

    def model_params(self) -> Any:
        """All the model's parameters, trained and frozen, as `model.params`."""
        return join_trainable(self.params["model"], self.frozen)


def init_train_state(
    params: Any, tx: optax.GradientTransformation, seed: int, *, frozen: Any = None
) -> TrainState:
    """A fresh state at step 0 for the trained `params` ({"model": ..., "losses": ...}) and the `frozen`
    model parameters (see `TrainState`); the optimizer state covers `params` only."""
    return TrainState(
        params=params,
        opt_state=tx.init(params),
        step=jnp.zeros((), jnp.int32),
        rng=jax.random.PRNGKey(seed),
        frozen=frozen,
    )


def all_finite(tree: Any) -> jax.Array:
    """bool scalar: True when no element of any leaf of `tree` is NaN or infinite (all(isfinite(x)))."""
    finite = jnp.bool_(True)
    for leaf in jax.tree.leaves(tree):
        finite = finite & jnp.all(jnp.isfinite(leaf))
    return finite


def takes_packed_batches(loss: Loss) -> bool:
    """Whether `loss` trains on packed batches: not a GradCache loss (it cuts a batch into texts) nor one
    with a guide model (the guide embeds the padded texts), which train on padded batches."""
    return loss.mini_batch_size is None and loss.guide is None


def batch_loss(
    forward: Forward,
    loss: Loss,
    params: Any,
    batch: TrainingBatch | Mapping[str, jax.Array],
    *,
    objective_index: int = 0,
    dropout_rng: jax.Array | None = None,
    loss_rng: jax.Array | None = None,
    place_texts: Callable[[Any], Any] | None = None,
) -> jax.Array:
    """The loss of one device's batch as a function of all parameters: what the step differentiates.

    Embeds the k columns' texts (`batch.texts()`) in one forward pass, or through GradCache when the loss
    has a `mini_batch_size`, then calls `loss.compute(columns, labels, params["losses"][objective_index],
    **inputs)` with the inputs the loss asks for (see `jaxst.losses.base.Loss`).

    Args:
        batch: a `PaddedBatch` or `PackedBatch`, or its named arrays (`jaxst.batch_layouts.as_batch`).
        place_texts: applied to the texts before the forward pass (`ShardedParallel.place_texts` splits the
            k * B texts over the devices), or None.

    Raises:
        ValueError: a packed batch for a loss that trains on padded ones (`takes_packed_batches`).
    """
    batch = as_batch(batch)
    if isinstance(batch, PackedBatch) and not takes_packed_batches(loss):
        raise ValueError(
            f"{chain_name(loss)} trains on padded batches (GradCache cuts a batch into texts, a guide model "
            "embeds the padded texts); this batch is packed."
        )
    k, b = batch.attention_mask.shape[:2]
    texts = batch.texts()
    if place_texts is not None:
        texts = place_texts(texts)
    inputs: dict[str, Any] = {}
    if loss.mini_batch_size is not None:
        embeddings = cached_embed(forward, loss.mini_batch_size)(params["model"], texts, dropout_rng)
    elif loss.needs_hidden_states:
        out = forward(params["model"], texts, dropout_rng=dropout_rng, output_hidden_states=True)
        embeddings = out["sentence_embedding"]
        inputs.update(model_output=out, model_params=params["model"])
    else:
        embeddings = forward(params["model"], texts, dropout_rng=dropout_rng)["sentence_embedding"]
    if loss.guide is not None:
        inputs["guide_embeddings"] = list(batch.guide_embeddings)
    if loss.uses_model_copy:
        copy_rng = None if dropout_rng is None else jax.random.fold_in(dropout_rng, COPY_DROPOUT_STREAM)
        copy_params = params["losses"][objective_index]["model_copy"]
        copy_embeddings = forward(copy_params, texts, dropout_rng=copy_rng)["sentence_embedding"]
        inputs["copy_embeddings"] = list(copy_embeddings.reshape(k, b, -1))
    if loss.needs_rng:
        inputs["rng"] = loss_rng
    columns = list(embeddings.reshape(k, b, -1))
    return loss.compute(columns, batch.labels, params["losses"][objective_index], **inputs)


def make_train_step(
    forward: Forward,
    loss: Loss,
    tx: optax.GradientTransformation,
    *,
    objective_index: int = 0,
    use_dropout: bool = True,
    gradient_accumulation_steps: int = 1,
    global_batch: bool = False,
    place_texts: Callable[[Any], Any] | None = None,
) -> Callable[[TrainState, TrainingBatch], tuple[TrainState, dict[str, jax.Array]]]:
    """Builds the per-device step for one training objective.

    The returned function must run inside a named axis `"data"` (pmap or shard_map; one device is an
    axis of size one). Loss and gradients are `pmean`-ed over it: the update is the gradient of the mean
    of the per-device losses. With cross-device negatives (`gather_across_devices`), that mean is the
    loss of the global batch, and so is the gradient, because the transpose of `all_gather` returns each
    device the cotangents of its own rows from every device.

    Args:
        forward: the model's pure forward pass.
        loss: the bound loss; `batch_loss` calls its `compute` with what it asks for.
        tx: the optax transformation (clipping, AdamW, schedule).
        objective_index: which entry of params["losses"] belongs to this loss.
        use_dropout: pass a dropout key to `forward` (training mode) or not (deterministic).
        gradient_accumulation_steps: m > 1 splits each device's padded batch into m micro-batches
            (`micro_batches`) whose gradients are averaged before the one update; micro-batch j's dropout
            key is fold_in(the step's key, j). The loss must be `separable`.
        global_batch: the step sees the whole batch (`jaxst.training.sharding.ShardedParallel` runs it
            under `jax.vmap` with the axis "data" of size one, and GSPMD shards it); else one device's
            slice, under pmap or shard_map.
        place_texts: see `batch_loss`.

    Raises:
        ValueError: see `check_accumulation`.
    """
    check_accumulation(loss, gradient_accumulation_steps)

    def step(state: TrainState, batch: TrainingBatch) -> tuple[TrainState, dict[str, jax.Array]]:
        dropout_rng = None
        if use_dropout:
            dropout_rng = jax.random.fold_in(
                jax.random.fold_in(state.rng, state.step), lax.axis_index(AXIS_NAME)
            )
        loss_rng = jax.random.fold_in(jax.random.fold_in(state.rng, LOSS_RNG_STREAM), state.step)

        def loss_fn(params: Any, batch: TrainingBatch, dropout_rng: jax.Array | None) -> jax.Array:
            if state.frozen is not None:  # the frozen base joins the trained adapter, outside the gradient
                params = {**params, "model": join_trainable(params["model"], state.frozen)}
            return batch_loss(
                forward,
                loss,
                params,
                batch,
                objective_index=objective_index,
                dropout_rng=dropout_rng,
                loss_rng=loss_rng,
                place_texts=place_texts,
            )

        # Differentiate a per-device copy of the parameters: under shard_map the replicated parameters
        # would otherwise get gradients already summed over devices (the transpose of replication).
        local_params = state.params if global_batch else lax.pcast(state.params, AXIS_NAME, to="varying")
        if gradient_accumulation_steps == 1:
            value, grads = jax.value_and_grad(loss_fn)(local_params, batch, dropout_rng)
        else:
            value, grads = accumulated_value_and_grad(
                loss_fn,
                local_params,
                micro_batches(batch, gradient_accumulation_steps),
                dropout_rng,
                None if global_batch else AXIS_NAME,
            )
        grads = lax.pmean(grads, AXIS_NAME)
        value = lax.pmean(value, AXIS_NAME)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new_state = state.replace(params=params, opt_state=opt_state, step=state.step + 1)
        # Replicated parameters agree across devices; the all-reduce makes the flag agree in any case.
        params_finite = lax.pmin(all_finite(params).astype(jnp.int32), AXIS_NAME) == 1
        return new_state, {"loss": value, "grad_norm": optax.tree.norm(grads), "params_finite": params_finite}

    return step
