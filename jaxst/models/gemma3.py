"""Gemma 3 text (EmbeddingGemma): transformers' `Gemma3TextModel`, a pre-norm decoder alternating local
(sliding-window) and global attention layers, causal or, as EmbeddingGemma, bidirectional.

What sets it apart from Qwen3 (qwen3.py):
- the token embeddings are multiplied by sqrt(H), rounded to the compute dtype;
- every RMS norm scales by (1 + weight) (`layers.OffsetRMSNorm`), and each layer has four of them:
  before and after the attention, before and after the feed-forward block;
- attention logits are scaled by query_pre_attn_scalar^-1/2, not head_dim^-1/2;
- `layer_types` makes each layer global ("full_attention": rotary base `rope_parameters.full_attention`,
  rope_theta in older configs) or local ("sliding_attention": base `rope_parameters.sliding_attention`,
  rope_local_base_freq in older configs; a window of `sliding_window` positions);
- `use_bidirectional_attention` drops causality. transformers then keeps sliding_window // 2 + 1 of the
  config.json value (the exclusive bound it gives flash attention) and a local layer's token attends the
  tokens at distance < that bound on either side; a causal local layer's token attends the
  `sliding_window` tokens up to its own.

Windows count positions within a text (`attention.window_mask`), so a packed row's texts each see the
window they would see alone. The last hidden state is the final norm's output.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxst.models.attention import AttentionInputs, window_mask
from jaxst.models.config import (
    UnsupportedConfigError,
    require,
    require_activation,
    require_grouped_heads,
    require_probabilities,
)
from jaxst.models.layers import OffsetRMSNorm
from jaxst.models.pre_norm import DecoderSpec, PreNormDecoder

if TYPE_CHECKING:
    from transformers import PreTrainedConfig

LOCAL, GLOBAL = "sliding_attention", "full_attention"
# The rope types implemented, each with the keys its parameters may hold.
_ROPE_KEYS = {"default": {"rope_type", "rope_theta"}, "linear": {"rope_type", "rope_theta", "factor"}}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Gemma3Spec(DecoderSpec):
    """DecoderSpec (grouped-query heads, padding token) plus Gemma 3's attention scale, layer kinds,
    window and rotary bases.

    Attributes:
        query_pre_attn_scalar: attention logits are q k^T / sqrt(query_pre_attn_scalar).
        layer_types: per layer, "sliding_attention" (local) or "full_attention" (global).
        sliding_window: transformers' (exclusive) window bound W: a local layer's query at position p
            attends keys at positions p - W < q <= p (causal) or |p - q| < W (bidirectional).
        bidirectional: the config's use_bidirectional_attention (no causal mask).
        global_rope: (theta, linear scaling factor) of the global layers' rotary angles.
        local_rope: the same for the local layers.
    """

    query_pre_attn_scalar: float
    layer_types: tuple[str, ...]
    sliding_window: int
    bidirectional: bool
    global_rope: tuple[float, float]
    local_rope: tuple[float, float]


def _unsupported(config: PreTrainedConfig, option: str, value: Any, supported: str) -> UnsupportedConfigError:
    return UnsupportedConfigError(
        f"{config.model_type} config option {option}={value!r} is not supported by jaxst "
        f"(supported: {supported})"
    )


def rope_of(config: PreTrainedConfig, layer_type: str) -> tuple[float, float]:
    """(theta, factor) of `layer_type`'s rotary angles: RoPE's "default" kind (factor 1) or "linear"
    (frequencies divided by the factor, as the global layers of the larger Gemma 3 models).

    Raises:
        UnsupportedConfigError: naming rope_parameters (rope_scaling in older configs) and the rope type.
    """
    parameters = dict((config.rope_parameters or {}).get(layer_type) or {})
    rope_type = parameters.get("rope_type", "default")
    keys = _ROPE_KEYS.get(rope_type)
    if keys is None or set(parameters) - keys:
        raise UnsupportedConfigError(
            f"{config.model_type} config option rope_parameters[{layer_type!r}] (rope_scaling or "
            f"rope_local_base_freq in older configs) with rope_type={rope_type!r} and keys "
            f"{sorted(parameters)} is not supported by jaxst (supported: rope types 'default' and "
            f"'linear', keys rope_type, rope_theta, factor); it holds {parameters}"
        )
    factor = float(parameters.get("factor", 1.0))
    if not factor > 0.0:
        raise _unsupported(config, f"rope_parameters[{layer_type!r}].factor", factor, "a positive factor")
    return float(parameters["rope_theta"]), factor


def validate_gemma3_config(config: PreTrainedConfig) -> None:
    """Refuse the Gemma 3 config options the encoder does not implement, each by name.

    Refused: attention biases, rope types other than "default" and "linear" (and their extra keys, such
    as partial_rotary_factor), layer types other than sliding / full attention, and
    attn_logit_softcapping. transformers' Gemma 3 keeps that option but never applies it (unlike Gemma
    2), so either choice would contradict the config or transformers. `final_logit_softcapping` and
    `tie_word_embeddings` concern only the language-model head, which the encoder does not use.
    """
    require(config, "attention_bias", [False], False)
    require(config, "attn_logit_softcapping", [None], None)
    require_activation(config, "hidden_activation")
    require_probabilities(config, "attention_dropout")
    require_grouped_heads(config)
    layer_types = list(config.layer_types)
    if len(layer_types) != config.num_hidden_layers or set(layer_types) - {LOCAL, GLOBAL}:
        raise _unsupported(
            config, "layer_types", layer_types, f"{config.num_hidden_layers} of {LOCAL!r}, {GLOBAL!r}"
        )
    window = config.sliding_window
    if LOCAL in layer_types and not (isinstance(window, int) and window > 0):
        raise _unsupported(config, "sliding_window", window, "a positive window for sliding layers")
    if not config.query_pre_attn_scalar > 0:
        raise _unsupported(config, "query_pre_attn_scalar", config.query_pre_attn_scalar, "a positive number")
    for layer_type in (LOCAL, GLOBAL):
        rope_of(config, layer_type)


def scaled_rotary_angles(
    positions: jax.Array, head_dim: int, rope: tuple[float, float]
) -> tuple[jax.Array, jax.Array]:
    """RoPE's (cos, sin), float32 [B, T, D], of positions int [B, T] with rope = (theta, factor).

    As `attention.rotary_angles` (frequency i < D / 2 is f_i = 1 / theta^(2i / D), the power rounded
    correctly to float32 as torch computes it), each frequency then divided by the factor in float32
    (transformers' "linear" rope type; factor 1 is the "default" type).
    """
    theta, factor = rope
    exponents = np.arange(0, head_dim, 2, dtype=np.float32) / np.float32(head_dim)
    frequencies = np.float32(1.0) / (theta ** exponents.astype(np.float64)).astype(np.float32)
    frequencies = (frequencies / np.float32(factor)).astype(np.float32)
    angles = positions.astype(jnp.float32)[..., None] * frequencies
    angles = jnp.concatenate([angles, angles], axis=-1)
    return jnp.cos(angles), jnp.sin(angles)


class Gemma3Encoder(PreNormDecoder):
    """Gemma 3 text: scaled token embeddings, local and global pre-norm layers with rotary positions,
    a final RMS norm; causal, or bidirectional with `use_bidirectional_attention` (EmbeddingGemma).

    A checkpoint is a `Gemma3TextModel` or a `Gemma3ForCausalLM` (see `PreNormDecoder`). Each layer is,
    every norm an `OffsetRMSNorm`:

    a = h + norm(attention(norm(h)));  out = a + norm(GeGLU(norm(a)))

    the attention with (1 + weight) RMS norms on the query and key heads and logits scaled by
    query_pre_attn_scalar^-1/2. A local layer attends under the sliding-window mask with the local rotary
    base, a global one under the full mask with the global base.
    """

    norm_class = OffsetRMSNorm
    layer_names = {  # transformers' `Gemma3DecoderLayer` submodule names
        "attention_norm": "input_layernorm",
        "attention": "self_attn",
        "attention_output_norm": "post_attention_layernorm",
        "mlp_norm": "pre_feedforward_layernorm",
        "mlp": "mlp",
        "mlp_output_norm": "post_feedforward_layernorm",
    }

    def attention_scale(self) -> float:
        """query_pre_attn_scalar^-1/2."""
        return float(self.spec.query_pre_attn_scalar) ** -0.5

    def layer_is_local(self, index: int) -> bool:
        """Whether layer `index` is a "sliding_attention" layer."""
        return self.spec.layer_types[index] == LOCAL

    @property
    def causal(self) -> bool:
        """Whether a token attends only to the tokens of its text up to its own position: per config
        (use_bidirectional_attention), where the other families fix it per class."""
        return not self.spec.bidirectional

    @classmethod
    def spec_from_config(cls, config: PreTrainedConfig) -> Gemma3Spec:
        validate_gemma3_config(config)
        layer_types = tuple(config.layer_types)
        return Gemma3Spec.from_config(
            config,
            intermediate_size=config.intermediate_size,
            activation=config.hidden_activation,
            layer_norm_eps=config.rms_norm_eps,
            attention_dropout=config.attention_dropout,
            num_kv_heads=config.num_key_value_heads,
            head_dim=config.head_dim,
            query_pre_attn_scalar=float(config.query_pre_attn_scalar),
            layer_types=layer_types,
            sliding_window=int(config.sliding_window) if LOCAL in layer_types else 0,
            bidirectional=bool(config.use_bidirectional_attention),
            global_rope=rope_of(config, GLOBAL),
            local_rope=rope_of(config, LOCAL),
            padding_token_id=config.pad_token_id,
        )

    def embed(
        self, input_ids: jax.Array, token_type_ids: jax.Array | None, position_ids: jax.Array | None
    ) -> jax.Array:
        """The token embeddings times sqrt(H), that factor rounded to float32, then to the compute dtype
        (transformers multiplies by it in the model's dtype: 55.5, not 55.43, for H = 3072 in bfloat16)."""
        scale = jnp.asarray(np.float32(math.sqrt(self.spec.hidden_size)), self.dtype).astype(jnp.float32)
        return self.embeddings(input_ids) * scale

    def attention_inputs(self, mask: jax.Array, positions: jax.Array) -> AttentionInputs:
        """The global mask and rotary angles, and the local ones: the mask within the sliding window of
        each query's position in its text (W - 1 positions back; as many ahead when bidirectional)."""
        spec = self.spec
        inputs = AttentionInputs(
            mask, rotary=scaled_rotary_angles(positions, spec.head_dim, spec.global_rope)
        )
        if LOCAL not in spec.layer_types:
            return inputs
        reach = spec.sliding_window - 1
        local_mask = mask & window_mask(positions, before=reach, after=reach if spec.bidirectional else 0)
        return inputs._replace(
            local_mask=local_mask,
            local_rotary=scaled_rotary_angles(positions, spec.head_dim, spec.local_rope),
        )
