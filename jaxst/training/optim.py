"""The optimizer of sentence-transformers' fit as optax: gradient clipping, AdamW and the lr schedules.

sentence-transformers' fit builds `torch.optim.AdamW(groups, **optimizer_params)` (torch defaults
betas=(0.9, 0.999), eps=1e-8; `weight_decay` on every parameter whose name contains none of "bias",
"LayerNorm.bias", "LayerNorm.weight"), clips with `torch.nn.utils.clip_grad_norm_(max_grad_norm)` (no
clipping when max_grad_norm is 0, as the Hugging Face Trainer it runs on), and steps a `LambdaLR`
from `transformers.get_*_schedule_with_warmup`. `make_optimizer` gives the same update as one optax
transformation.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

SCHEDULERS = ("constantlr", "warmupconstant", "warmuplinear", "warmupcosine", "warmupcosinewithhardrestarts")
# torch.optim.AdamW keyword arguments make_optimizer takes through `optimizer_params`.
ADAMW_PARAMS = ("betas", "eps")
# torch.nn.utils.clip_grad_norm_ divides by (norm + this).
_CLIP_EPS = 1e-6
ArrayOrInt = jax.Array | int


def _warmup(step: jax.Array, warmup_steps: ArrayOrInt) -> jax.Array:
    return step.astype(jnp.float32) / jnp.maximum(1, warmup_steps).astype(jnp.float32)


def _linear_remaining(step: jax.Array, warmup_steps: ArrayOrInt, total_steps: ArrayOrInt) -> jax.Array:
    """(total - step) / max(1, total - warmup), transformers' linear decay (exact integer numerator)."""
    decay_steps = jnp.maximum(1, total_steps - warmup_steps).astype(jnp.float32)
    return (total_steps - step).astype(jnp.float32) / decay_steps


def _cosine_remaining(step: jax.Array, warmup_steps: ArrayOrInt, total_steps: ArrayOrInt) -> jax.Array:
    """1 - progress, progress = (step - warmup) / max(1, total - warmup) (exact integer numerator).

    It differs from the linear remaining fraction only when total_steps <= warmup_steps.
    """
    decay_steps = jnp.maximum(1, total_steps - warmup_steps)
    return (decay_steps + warmup_steps - step).astype(jnp.float32) / decay_steps.astype(jnp.float32)


def _half_cosine(remaining: jax.Array) -> jax.Array:
    """0.5 * (1 + cos(pi * progress)) written as sin(pi/2 * (1 - progress))^2: float32-accurate near 0."""
    return jnp.square(jnp.sin(0.5 * jnp.pi * remaining))


def check_learning_rate(lr: Any) -> None:
    """Raises ValueError naming `lr` unless it is a positive finite real number (a bool is not one)."""
    value = None if isinstance(lr, str) else np.asarray(lr)
    if value is None or value.ndim or value.dtype.kind not in "iuf" or not 0 < value < math.inf:
        raise ValueError(f"The learning rate lr must be a positive finite number, got {lr!r}.")


def make_schedule(name: str, *, lr: float, warmup_steps: int, total_steps: int) -> optax.Schedule:
    """The learning rate of optimizer step `count` (0 for the first update), as sentence-transformers' fit.

    With w = warmup_steps, t = total_steps, s = count and progress p = (s - w) / max(1, t - w), the rate
    is lr times (transformers' lambdas, after warmup s / max(1, w) while s < w):
        constantlr: 1;  warmupconstant: 1;  warmuplinear: max(0, 1 - p);
        warmupcosine: 0.5 * (1 + cos(pi * p))  (num_cycles 0.5, so it rises again past t, as there);
        warmupcosinewithhardrestarts: 0 for p >= 1, else 0.5 * (1 + cos(pi * (p % 1)))  (num_cycles 1).

    Args:
        name: one of SCHEDULERS, case-insensitive (e.g. "WarmupLinear").
        lr: the peak learning rate.
        warmup_steps: w.
        total_steps: t, all optimizer steps of the run.

    Raises:
        ValueError: an unknown scheduler name (the message lists the known ones), negative steps, an lr
            that is not a positive finite number.
    """
    key = check_schedule(name, lr, warmup_steps, total_steps)
    return lambda count: scheduled_lr(key, count, lr, warmup_steps, total_steps)


@functools.partial(jax.jit, static_argnums=0)
def scheduled_lr(
    key: str, count: ArrayOrInt, lr: jax.Array | float, warmup_steps: ArrayOrInt, total_steps: ArrayOrInt
) -> jax.Array:
    """lr * schedule_multiplier(...) in float32: one program per scheduler, the numbers its arguments (as in
    the train step, where they are state: compiled in as constants, XLA would round the divisions apart)."""
    return jnp.asarray(lr, jnp.float32) * schedule_multiplier(key, count, warmup_steps, total_steps)


def check_schedule(name: str, lr: float, warmup_steps: int, total_steps: int) -> str:
    """The lower-cased scheduler name, after the checks `make_schedule` lists under Raises."""
    check_learning_rate(lr)
    if warmup_steps < 0 or total_steps < 0:
        raise ValueError(f"warmup_steps ({warmup_steps}) and total_steps ({total_steps}) must be >= 0.")
    key = name.lower()
    if key not in SCHEDULERS:
        raise ValueError(f"Unknown scheduler {name!r}; known schedulers: {', '.join(SCHEDULERS)}.")
    return key


def schedule_multiplier(
    key: str, count: ArrayOrInt, warmup_steps: ArrayOrInt, total_steps: ArrayOrInt
) -> jax.Array:
    """The factor of the peak rate at step `count` (the formulas of `make_schedule`), float32; the step
    counts may be traced integers, so that one compiled program serves every warmup and run length."""
    step = jnp.asarray(count, jnp.int32)
    if key == "constantlr":
        return jnp.ones((), jnp.float32)
    remaining = _cosine_remaining(step, warmup_steps, total_steps)
    if key == "warmupconstant":
        after_warmup = jnp.ones((), jnp.float32)
    elif key == "warmuplinear":
        after_warmup = jnp.maximum(0.0, _linear_remaining(step, warmup_steps, total_steps))
    elif key == "warmupcosine":
        after_warmup = _half_cosine(remaining)
    else:  # warmupcosinewithhardrestarts, one cycle: zero from progress 1 on
        after_warmup = jnp.where(remaining > 0, _half_cosine(remaining), 0.0)
    return jnp.where(step < warmup_steps, _warmup(step, warmup_steps), after_warmup)


class ScheduleState(NamedTuple):
    """The learning-rate schedule's optax state: the update count and the schedule's numbers, held as
    arrays rather than compiled in, so that runs differing in lr, warmup or length share one train step
    program (and the persistent compilation cache serves the second run)."""

    count: jax.Array  # int32 [], updates made
    lr: jax.Array  # float32 [], the peak rate
    warmup_steps: jax.Array  # int32 []
    total_steps: jax.Array  # int32 []


def scale_by_scheduled_lr(
    name: str, *, lr: float, warmup_steps: int, total_steps: int
) -> optax.GradientTransformation:
    """updates * -lr_t with lr_t = make_schedule(name, ...)(count): the operations of optax's
    `scale_by_learning_rate` with that schedule, the schedule's numbers read from the state."""
    key = check_schedule(name, lr, warmup_steps, total_steps)

    def init(params: Any) -> ScheduleState:
        del params
        return ScheduleState(
            count=jnp.zeros((), jnp.int32),
            lr=jnp.asarray(lr, jnp.float32),
            warmup_steps=jnp.asarray(warmup_steps, jnp.int32),
            total_steps=jnp.asarray(total_steps, jnp.int32),
        )

    def update(updates: Any, state: ScheduleState, params: Any = None) -> tuple[Any, ScheduleState]:
        del params
        multiplier = schedule_multiplier(key, state.count, state.warmup_steps, state.total_steps)
        step_size = -(state.lr * multiplier)
        updates = jax.tree.map(lambda g: jnp.asarray(step_size, g.dtype) * g, updates)
        return updates, state._replace(count=optax.safe_increment(state.count))

    return optax.GradientTransformation(init, update)


def weight_decay_mask(params: Any) -> Any:
    """True for the parameters AdamW decays: arrays of 2 or more dimensions whose path names no "bias".

    This equals sentence-transformers' name rule (no decay for names containing "bias", "LayerNorm.bias",
    "LayerNorm.weight") on BERT / MiniLM, RoBERTa / XLM-R and MPNet, whose 1-D parameters are all biases
    or LayerNorm parameters, and MPNet's 2-D `relative_attention_bias` table is excluded by its name. It
    depends on shapes rather than on how an encoder names its layer norms (`scale`, `weight`). It differs
    on DistilBERT, where sentence-transformers decays the layer-norm weights, because they are named
    `sa_layer_norm.weight` / `output_layer_norm.weight`. torch's AdamW also skips parameters that get no
    gradient at all (e.g. BERT's pooler under mean pooling), while optax decays every masked leaf: keep
    unused parameters out of the trained pytree.

    Args:
        params: any pytree of arrays (nested dicts, `nnx.State`).

    Returns:
        a pytree of bools with the structure of `params`.
    """

    def decays(path: tuple[Any, ...], leaf: Any) -> bool:
        names = [str(getattr(key, "key", getattr(key, "name", ""))) for key in path]
        return jnp.ndim(leaf) >= 2 and not any("bias" in name.lower() for name in names)

    return jax.tree_util.tree_map_with_path(decays, params)


def clip_by_global_norm_like_torch(max_norm: float) -> optax.GradientTransformation:
    """Scales all gradients by min(1, max_norm / (global_norm + 1e-6)), as torch's clip_grad_norm_."""

    def update(updates: Any, state: optax.EmptyState, params: Any = None) -> tuple[Any, optax.EmptyState]:
        scale = jnp.minimum(1.0, max_norm / (optax.tree.norm(updates) + _CLIP_EPS))
        return jax.tree.map(lambda g: (g * scale).astype(g.dtype), updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def make_optimizer(
    params: Any,
    *,
    lr: float,
    weight_decay: float = 0.01,
    max_grad_norm: float | None = 1.0,
    scheduler: str,
    warmup_steps: int,
    total_steps: int,
    optimizer_params: Mapping[str, Any] | None = None,
) -> optax.GradientTransformation:
    """Clipping, AdamW and the learning-rate schedule of sentence-transformers' fit, as one optax chain.

    update = -lr_t * (m_hat / (sqrt(v_hat) + eps) + weight_decay * mask * param) after clipping the
    gradients to global norm max_grad_norm; lr_t = make_schedule(scheduler, ...)(step).

    Args:
        params: the trained parameters; their structure fixes the weight-decay mask (`weight_decay_mask`),
            so `init` and `update` must get pytrees of the same structure.
        lr: the peak learning rate (sentence-transformers' optimizer_params["lr"]).
        weight_decay: the decoupled weight decay of the decayed parameters.
        max_grad_norm: clip threshold; None or 0 turns clipping off.
        scheduler, warmup_steps, total_steps: see `make_schedule`.
        optimizer_params: other torch.optim.AdamW arguments: "betas" (default (0.9, 0.999)) and "eps"
            (default 1e-8).

    Raises:
        ValueError: an unknown scheduler, an lr that is not a positive finite number, or an
            optimizer_params key other than ADAMW_PARAMS.
    """
    optimizer_params = dict(optimizer_params or {})
    unknown = sorted(set(optimizer_params) - set(ADAMW_PARAMS))
    if unknown:
        raise ValueError(
            f"Unsupported optimizer_params {unknown}: lr and weight_decay are arguments of their own, "
            f"and the AdamW options supported are {list(ADAMW_PARAMS)}."
        )
    b1, b2 = optimizer_params.get("betas", (0.9, 0.999))
    # optax.adamw's three parts, its lr scaling with the schedule's numbers in the state.
    adamw = optax.chain(
        optax.scale_by_adam(b1=b1, b2=b2, eps=optimizer_params.get("eps", 1e-8)),
        optax.add_decayed_weights(weight_decay, weight_decay_mask(params)),
        scale_by_scheduled_lr(scheduler, lr=lr, warmup_steps=warmup_steps, total_steps=total_steps),
    )
    if not max_grad_norm:
        return adamw
    return optax.chain(clip_by_global_norm_like_torch(max_grad_norm), adamw)
