"""AdaptiveLayerLoss: any loss, applied to the last layer and to earlier layers of the encoder (2DMSE).

Training the earlier layers' pooled outputs as embeddings of their own (and pulling their similarity
distributions towards the last layer's) lets users drop the top layers at inference.

How a layer is evaluated, as sentence-transformers: the hidden states of layer l (l = 0 is the
embedding layer's output) replace the token embeddings and go through the model's pipeline after the
Transformer (Pooling, Dense, Normalize, ...) with the model's own parameters, giving [N, D] embeddings.
The train step supplies the hidden states: a loss with `needs_hidden_states` gets `model_output` (the
forward pass's dict with "all_layer_embeddings") and `model_params` (see `jaxst.losses.base.Loss`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import jax
import jax.numpy as jnp
from jax.scipy.special import xlogy

from jaxst.losses.base import Loss, WrapperLoss, chain_name

LayerWeighting = Literal["uniform", "log", "linear"] | Callable[[int], float]
LAYER_WEIGHTINGS = ("uniform", "log", "linear")


def check_layer_weighting(layer_weighting: Any) -> None:
    if not callable(layer_weighting) and layer_weighting not in LAYER_WEIGHTINGS:
        raise ValueError(
            f"layer_weighting must be one of {LAYER_WEIGHTINGS} or a callable, got {layer_weighting!r}."
        )


def layer_weight(layer_weighting: LayerWeighting, layer: int) -> float:
    """Weight of prior layer l: 1 ("uniform"), 1 / (1 + ln(1 + l)) ("log"), 1 / (1 + l) ("linear")."""
    if callable(layer_weighting):
        return float(layer_weighting(layer))
    if layer_weighting == "log":
        return 1.0 / (1.0 + math.log(1 + layer))
    if layer_weighting == "linear":
        return 1.0 / (1 + layer)
    return 1.0


def samples_layers(n_layers_per_step: int, num_prior_layers: int) -> bool:
    """Whether n_layers_per_step selects a random subset of the prior layers at each step."""
    return 0 < n_layers_per_step < num_prior_layers


def kl_to_teacher(student: jax.Array, teacher_probabilities: jax.Array, temperature: float) -> jax.Array:
    """torch's `F.kl_div(log_softmax(student / t), teacher, reduction="batchmean")`: [N, D], [N, D] -> scalar.

    = sum_ij p_ij (log p_ij - log_softmax(student / t)_ij) / N, with 0 log 0 = 0.
    """
    log_q = jax.nn.log_softmax(student.astype(jnp.float32) / temperature, axis=-1)
    pointwise = xlogy(teacher_probabilities, teacher_probabilities) - teacher_probabilities * log_q
    return jnp.sum(pointwise) / student.shape[0]


def adaptive_layer_loss(
    loss_fn: Callable[[jax.Array, int], jax.Array],
    final_embeddings: jax.Array,
    layer_embeddings: Callable[[jax.Array | int], jax.Array],
    num_prior_layers: int,
    *,
    n_layers_per_step: int = 1,
    last_layer_weight: float = 1.0,
    prior_layers_weight: float = 1.0,
    kl_div_weight: float = 1.0,
    kl_temperature: float = 0.3,
    layer_weighting: LayerWeighting = "uniform",
    rng: jax.Array | None = None,
) -> jax.Array:
    """Weighted sum of a loss over the last layer and the prior layers, plus a KL term per prior layer.

    Args:
        loss_fn: (embeddings [N, D] of every column, stacked; call number) -> scalar. Call 0 is the last
            layer, calls 1, 2, ... the prior layers in evaluation order.
        final_embeddings: [N, D], the model's embeddings (the last layer, through the pipeline).
        layer_embeddings: layer index l in [0, num_prior_layers) (an int, or a traced int32 scalar when
            layers are sampled) -> [N, D], that layer's hidden states through the pipeline.
        num_prior_layers: L, the encoder's layer count; the prior layers are 0 (embeddings) .. L - 1.
        n_layers_per_step: if 0 < n < L, n distinct prior layers drawn uniformly at random from `rng`
            (`jax.random.choice` without replacement) per call; otherwise all L prior layers.
        last_layer_weight, prior_layers_weight, kl_div_weight, kl_temperature, layer_weighting: as below.
        rng: a jax.random key, needed only when layers are sampled.

    Returns:
        With S the evaluated prior layers, w_l = layer_weight(layer_weighting, l), t = kl_temperature,
        p = softmax(final / t) (no gradient) and e_l the layer's embeddings, a float32 scalar
            last_layer_weight * loss(final)
            + sum_{l in S} [ prior_layers_weight * w_l / |S| * loss(e_l)
                             + kl_div_weight * t * KL(p || softmax(e_l / t)) ]   (KL "batchmean", t > 0).
        sentence-transformers draws S with Python's `random.sample`; here the draw is a pure function of
        `rng`, and each drawn layer's hidden states are picked from the stacked layers by index, so one
        compiled program serves every draw.
    """
    total = last_layer_weight * loss_fn(final_embeddings, 0).astype(jnp.float32)
    if kl_temperature > 0:
        teacher = jax.lax.stop_gradient(jax.nn.softmax(final_embeddings.astype(jnp.float32) / kl_temperature))
    weights = [layer_weight(layer_weighting, layer) for layer in range(num_prior_layers)]
    if samples_layers(n_layers_per_step, num_prior_layers):
        if rng is None:
            raise ValueError(
                f"adaptive_layer_loss: n_layers_per_step={n_layers_per_step} samples {n_layers_per_step} of "
                f"{num_prior_layers} prior layers per call and needs a jax.random key: pass rng=..."
            )
        chosen = jax.random.choice(rng, num_prior_layers, (n_layers_per_step,), replace=False)
        layers = [(chosen[i], jnp.asarray(weights)[chosen[i]]) for i in range(n_layers_per_step)]
    else:
        layers = [(layer, weights[layer]) for layer in range(num_prior_layers)]
    for call, (layer, weight) in enumerate(layers, start=1):
        embeddings = layer_embeddings(layer)
        layer_loss = loss_fn(embeddings, call).astype(jnp.float32)
        total = total + layer_loss * weight / len(layers) * prior_layers_weight
        if kl_temperature > 0:
            total = (
                total + kl_to_teacher(embeddings, teacher, kl_temperature) * kl_temperature * kl_div_weight
            )
    return total


class AdaptiveLayerLoss(WrapperLoss):
    """sentence-transformers' AdaptiveLayerLoss around another jaxst loss class; see `adaptive_layer_loss`.

    Columns, labels, trainable parameters and the other step needs are the wrapped loss's (`WrapperLoss`);
    this loss needs the hidden states. The train step calls
    `compute(embeddings, labels, params, model_output=..., model_params=..., rng=..., **inputs)`:
    `model_output["all_layer_embeddings"]` holds L + 1 arrays [k * b, T, H]; each prior layer is pooled by
    `model.pipeline` with `model_params["modules"]`; `inputs` (e.g. guide_embeddings) go to the wrapped
    loss unchanged. `rng` is the step's loss key (the same on every device, so data-parallel devices draw
    the same layers, as sentence-transformers' equally seeded ranks do): fold_in(rng, 0) draws the layers,
    and the wrapped loss, when it needs a key itself, gets fold_in(fold_in(rng, 1), call) per call.

    Refused when this loss is constructed: a wrapped chain with a GradCache loss anywhere in it (one with
    `mini_batch_size`, e.g. MatryoshkaLoss(CachedMultipleNegativesRankingLoss)), whose step embeds the
    batch in mini-batches and never holds the hidden states of the whole batch, and a chain that needs
    hidden states itself (another AdaptiveLayerLoss). sentence-transformers accepts a GradCache loss with
    a warning that the combination is unsupported (its cached backward pass runs after the hidden states
    are gone); the plain loss has the same value and gradient.
    """

    needs_hidden_states = True

    def __init__(
        self,
        model: Any,
        loss: Loss,
        n_layers_per_step: int = 1,
        last_layer_weight: float = 1.0,
        prior_layers_weight: float = 1.0,
        kl_div_weight: float = 1.0,
        kl_temperature: float = 0.3,
        layer_weighting: LayerWeighting = "uniform",
    ):
        check_layer_weighting(layer_weighting)
        if loss.mini_batch_size is not None:
            raise ValueError(
                f"AdaptiveLayerLoss cannot wrap {chain_name(loss)}: a GradCache loss embeds the batch in "
                "mini-batches and never holds every layer's hidden states. Use the non-cached loss."
            )
        if loss.needs_hidden_states:
            raise ValueError(f"AdaptiveLayerLoss cannot wrap {chain_name(loss)}, which needs hidden states.")
        super().__init__(
            model,
            loss,
            n_layers_per_step=n_layers_per_step,
            last_layer_weight=last_layer_weight,
            prior_layers_weight=prior_layers_weight,
            kl_div_weight=kl_div_weight,
            kl_temperature=kl_temperature,
            layer_weighting=layer_weighting,
        )

    @property
    def needs_rng(self) -> bool:
        """Whether `compute` needs a key: layers may be sampled, or the wrapped loss needs one."""
        return self.hyperparameters["n_layers_per_step"] > 0 or self.loss.needs_rng

    def compute(
        self,
        embeddings: Sequence[jax.Array],
        labels: jax.Array | None,
        params: Any = None,
        *,
        model_output: dict[str, Any],
        model_params: Any,
        rng: jax.Array | None = None,
        **inputs: Any,
    ) -> jax.Array:
        num_columns, rows = len(embeddings), embeddings[0].shape[0]
        hidden_states = model_output["all_layer_embeddings"]
        num_prior_layers = len(hidden_states) - 1
        inner_needs_rng = self.loss.needs_rng

        def loss_fn(stacked: jax.Array, call: int) -> jax.Array:
            call_inputs = dict(inputs)
            if inner_needs_rng:
                call_inputs["rng"] = (
                    None if rng is None else jax.random.fold_in(jax.random.fold_in(rng, 1), call)
                )
            columns = list(stacked.reshape(num_columns, rows, -1))
            return self.loss.compute(columns, labels, params, **call_inputs)

        sampled = samples_layers(self.hyperparameters["n_layers_per_step"], num_prior_layers)
        prior = jnp.stack(hidden_states[:-1]) if sampled else hidden_states[:-1]

        def layer_embeddings(layer: jax.Array | int) -> jax.Array:
            features = {**model_output, "token_embeddings": prior[layer]}
            for name, module in self.model.pipeline:
                features = module(model_params["modules"].get(name), features)
            return features["sentence_embedding"]

        return adaptive_layer_loss(
            loss_fn,
            jnp.concatenate(list(embeddings)),
            layer_embeddings,
            num_prior_layers,
            rng=None if rng is None else jax.random.fold_in(rng, 0),
            **self.hyperparameters,
        )

    def get_config_dict(self) -> dict[str, Any]:
        """As sentence-transformers: the wrapped loss by class name, the options, the weighting by name."""
        weighting = self.hyperparameters["layer_weighting"]
        if callable(weighting):
            weighting = getattr(weighting, "__name__", "custom")
        return {**super().get_config_dict(), "layer_weighting": weighting}
