"""Qwen3 (Qwen3-Embedding): transformers' `Qwen3Model`, a causal pre-norm decoder used as an encoder.

The last hidden state is the final RMS norm's output, which Qwen3-Embedding pools at the last token.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from transformers import PreTrainedConfig

from jaxst.io.hf import KeyTable
from jaxst.models.attention import AttentionInputs, GroupedQueryAttention, rotary_angles
from jaxst.models.config import (
    UnsupportedConfigError,
    default_rope_theta,
    require,
    require_activation,
    require_probabilities,
)
from jaxst.models.encoder import TransformerEncoder
from jaxst.models.layers import GatedMLP, RMSNorm, TokenEmbeddings
from jaxst.models.pre_norm import PreNormLayer
from jaxst.models.spec import EncoderSpec


@dataclasses.dataclass(frozen=True, kw_only=True)
class Qwen3Spec(EncoderSpec):
    """EncoderSpec plus Qwen3's grouped-query attention and positions.

    Attributes:
        num_kv_heads: K key / value heads, each shared by N / K query heads.
        head_dim: D, the width of each attention head (N * D need not equal H).
        rope_theta: the base of the rotary frequencies (`attention.rotary_angles`).
        padding_token_id: the config's pad_token_id, whose embedding row gets no gradient, or None.
    """

    num_kv_heads: int
    head_dim: int
    rope_theta: float
    padding_token_id: int | None


def validate_qwen3_config(config: PreTrainedConfig) -> None:
    """Refuse the Qwen3 config options the encoder does not implement, each by name.

    Sliding-window layers, attention biases, bidirectional attention (`is_causal=False`) and RoPE types
    other than "default" are refused. `tie_word_embeddings` concerns only the language-model head, which
    the encoder does not use (a checkpoint's `lm_head.weight` is kept aside and written back).
    """
    require(config, "use_sliding_window", [False], False)
    if any(kind != "full_attention" for kind in config.layer_types):
        raise UnsupportedConfigError(
            f"qwen3 config option layer_types={config.layer_types!r} is not supported by jaxst "
            "(supported: 'full_attention' layers only)"
        )
    require(config, "attention_bias", [False], False)
    require(config, "is_causal", [True], True)
    require_activation(config, "hidden_act")
    require_probabilities(config, "attention_dropout")
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    if kv_heads <= 0 or heads % kv_heads:
        raise UnsupportedConfigError(
            f"qwen3 config: num_attention_heads={heads} is not a multiple of num_key_value_heads={kv_heads}"
        )


# transformers' `Qwen3DecoderLayer` submodule names of `PreNormLayer`'s
LAYER_NAMES = {
    "attention_norm": "input_layernorm",
    "attention": "self_attn",
    "mlp_norm": "post_attention_layernorm",
    "mlp": "mlp",
}


def qwen3_layer(spec: Qwen3Spec, *, dtype: jnp.dtype, rngs: nnx.Rngs) -> PreNormLayer:
    """One pre-norm decoder layer (`PreNormLayer`):

    a = h + attention(RMSNorm(h));  out = a + SwiGLU(RMSNorm(a))

    Sizes, activation, RMS norm epsilon, attention dropout rate and init scale from `spec`.
    """
    width, eps = spec.hidden_size, spec.layer_norm_eps
    return PreNormLayer(
        attention_norm=RMSNorm(width, eps=eps),
        attention=GroupedQueryAttention(
            width,
            num_heads=spec.num_heads,
            num_kv_heads=spec.num_kv_heads,
            head_dim=spec.head_dim,
            head_norm=partial(RMSNorm, eps=eps),
            dropout_rate=spec.attention_dropout,
            dtype=dtype,
            init_std=spec.init_std,
            rngs=rngs,
        ),
        mlp_norm=RMSNorm(width, eps=eps),
        mlp=GatedMLP(
            width,
            spec.intermediate_size,
            activation=spec.activation,
            dtype=dtype,
            init_std=spec.init_std,
            rngs=rngs,
        ),
        dtype=dtype,
    )


class Qwen3Encoder(TransformerEncoder):
    """Qwen3: token embeddings, causal pre-norm layers with rotary positions, a final RMS norm.

    A checkpoint is a `Qwen3Model` (keys "embed_tokens.weight", "layers.0. ...", "norm.weight") or a
    model with heads whose keys carry the prefix "model." (`Qwen3ForCausalLM`, whose untied
    `lm_head.weight` is kept aside).
    """

    uses_token_type_ids = False
    checkpoint_prefix = "model."
    unused_keys = frozenset(("lm_head.weight",))
    causal = True

    def __init__(self, spec: Qwen3Spec, *, dtype: Any = jnp.float32, rngs: nnx.Rngs):
        super().__init__(spec, dtype=dtype)
        self.embeddings = TokenEmbeddings(
            spec.vocab_size,
            spec.hidden_size,
            max_length=spec.max_positions,
            padding_idx=spec.padding_token_id,
            init_std=spec.init_std,
            rngs=rngs,
        )
        self.layers = nnx.List(
            [qwen3_layer(spec, dtype=self.dtype, rngs=rngs) for _ in range(spec.num_layers)]
        )
        self.norm = RMSNorm(spec.hidden_size, eps=spec.layer_norm_eps)

    @classmethod
    def spec_from_config(cls, config: PreTrainedConfig) -> Qwen3Spec:
        validate_qwen3_config(config)
        return Qwen3Spec.from_config(
            config,
            intermediate_size=config.intermediate_size,
            activation=config.hidden_act,
            layer_norm_eps=config.rms_norm_eps,
            attention_dropout=config.attention_dropout,
            num_kv_heads=config.num_key_value_heads,
            head_dim=config.head_dim,
            rope_theta=default_rope_theta(config),
            padding_token_id=config.pad_token_id,
        )

    @classmethod
    def key_table(cls, num_layers: int) -> KeyTable:
        table = {
            **TokenEmbeddings.checkpoint_keys("embed_tokens", ("embeddings",)),
            **RMSNorm.checkpoint_keys("norm", ("norm",)),
        }
        for index in range(num_layers):
            table.update(PreNormLayer.checkpoint_keys(f"layers.{index}", ("layers", index), LAYER_NAMES))
        return table

    def embed(
        self, input_ids: jax.Array, token_type_ids: jax.Array | None, position_ids: jax.Array | None
    ) -> jax.Array:
        return self.embeddings(input_ids)

    def attention_inputs(self, mask: jax.Array, positions: jax.Array) -> AttentionInputs:
        """The causal mask and the rotary angles of the positions."""
        return AttentionInputs(
            mask, rotary=rotary_angles(positions, self.spec.head_dim, self.spec.rope_theta)
        )

    def last_hidden_state(self, hidden: jax.Array) -> jax.Array:
        """The final RMS norm of the last layer's output, in the compute dtype."""
        return self.norm(hidden).astype(self.dtype)
