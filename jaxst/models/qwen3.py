"""Qwen3 (Qwen3-Embedding): transformers' `Qwen3Model`, a causal pre-norm decoder used as an encoder.

The last hidden state is the final RMS norm's output, which Qwen3-Embedding pools at the last token.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import jax

from jaxst.models.attention import AttentionInputs, rotary_angles
from jaxst.models.config import (
    UnsupportedConfigError,
    default_rope_theta,
    require,
    require_activation,
    require_grouped_heads,
    require_probabilities,
)
from jaxst.models.pre_norm import DecoderSpec, PreNormDecoder

if TYPE_CHECKING:
    from transformers import PreTrainedConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class Qwen3Spec(DecoderSpec):
    """DecoderSpec (grouped-query heads, padding token) plus Qwen3's rotary positions.

    Attributes:
        rope_theta: the base of the rotary frequencies (`attention.rotary_angles`).
    """

    rope_theta: float


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
    require_grouped_heads(config)


class Qwen3Encoder(PreNormDecoder):
    """Qwen3: token embeddings, causal pre-norm layers with rotary positions, a final RMS norm.

    A checkpoint is a `Qwen3Model` or a `Qwen3ForCausalLM` (see `PreNormDecoder`). Each layer is
    a = h + attention(RMSNorm(h));  out = a + SwiGLU(RMSNorm(a)).
    """

    causal = True
    layer_names = {  # transformers' `Qwen3DecoderLayer` submodule names
        "attention_norm": "input_layernorm",
        "attention": "self_attn",
        "mlp_norm": "post_attention_layernorm",
        "mlp": "mlp",
    }

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

    def attention_inputs(self, mask: jax.Array, positions: jax.Array) -> AttentionInputs:
        """The causal mask and the rotary angles of the positions."""
        return AttentionInputs(
            mask, rotary=rotary_angles(positions, self.spec.head_dim, self.spec.rope_theta)
        )
