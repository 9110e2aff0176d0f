"""MPNet encoder: transformers' `MPNetModel`, with its relative position bucket bias."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from transformers import PreTrainedConfig

from jaxst.io.hf import KeyTable
from jaxst.models.attention import AttentionInputs
from jaxst.models.bert import POOLER_KEYS, BertEncoder, bert_style_spec
from jaxst.models.config import require
from jaxst.models.layers import Embedding
from jaxst.models.roberta import LM_HEAD_KEYS
from jaxst.models.spec import EncoderSpec

# transformers' MPNetEncoder.compute_position_bias buckets relative positions with these fixed values,
# whatever the config says; MPNetEmbeddings fixes the padding id to 1 in the same way.
MPNET_NUM_BUCKETS = 32
MPNET_MAX_DISTANCE = 128
MPNET_PADDING_IDX = 1


def validate_mpnet_config(config: PreTrainedConfig) -> None:
    """Refuse the MPNet config options beyond `bert_style_spec`'s that the encoder does not implement.

    transformers builds a table of `relative_attention_num_buckets` rows but always buckets with 32;
    jaxst accepts only the value that makes the two agree.
    """
    require(config, "relative_attention_num_buckets", [MPNET_NUM_BUCKETS], None)


def relative_position_buckets(
    length: int, num_buckets: int = MPNET_NUM_BUCKETS, max_distance: int = MPNET_MAX_DISTANCE
) -> np.ndarray:
    """T5-style bidirectional buckets of (key position - query position), int [T, T], on the host.

    With n = query - key: half the buckets for n < 0, half for n >= 0; within a half, |n| < num_buckets / 4
    gets its own bucket and larger distances share log-spaced buckets up to `max_distance`. The log is
    taken in float32 as transformers does, so the buckets agree exactly at the rounding boundaries.
    """
    positions = np.arange(length)
    n = positions[:, None] - positions[None, :]
    half = num_buckets // 2
    buckets = (n < 0).astype(np.int64) * half
    n = np.abs(n)
    max_exact = half // 2
    with np.errstate(divide="ignore"):
        log_ratio = np.log(n.astype(np.float32) / np.float32(max_exact))
    scaled = log_ratio / np.float32(math.log(max_distance / max_exact)) * np.float32(half - max_exact)
    large = max_exact + np.where(n < max_exact, 0, scaled).astype(np.int64)
    return buckets + np.where(n < max_exact, n, np.minimum(large, half - 1))


class MPNetEncoder(BertEncoder):
    """MPNet: word + position embeddings (positions after padding id 1), no token types, BERT-style
    layers, and one relative position bias [1, N, T, T] computed once per call and added in every layer.
    """

    uses_token_type_ids = False
    checkpoint_prefix = "mpnet."
    unused_keys = frozenset((*POOLER_KEYS, "embeddings.position_ids", *LM_HEAD_KEYS))
    layer_names = {
        "query": "attention.attn.q",
        "key": "attention.attn.k",
        "value": "attention.attn.v",
        "attention_output": "attention.attn.o",
        "attention_norm": "attention.LayerNorm",
        "intermediate": "intermediate.dense",
        "output": "output.dense",
        "output_norm": "output.LayerNorm",
    }

    def __init__(self, spec: EncoderSpec, *, dtype: Any = jnp.float32, rngs: nnx.Rngs):
        super().__init__(spec, dtype=dtype, rngs=rngs)
        self.relative_attention_bias = Embedding(
            MPNET_NUM_BUCKETS, spec.num_heads, init_std=spec.init_std, rngs=rngs
        )

    @classmethod
    def spec_from_config(cls, config: PreTrainedConfig) -> EncoderSpec:
        validate_mpnet_config(config)
        return bert_style_spec(config, type_vocab_size=0, position_padding_idx=MPNET_PADDING_IDX)

    @classmethod
    def key_table(cls, num_layers: int) -> KeyTable:
        return {
            **super().key_table(num_layers),
            **Embedding.checkpoint_keys("encoder.relative_attention_bias", ("relative_attention_bias",)),
        }

    def attention_inputs(self, mask: jax.Array, positions: jax.Array) -> AttentionInputs:
        """The mask and the bias float32 [1, N, T, T]: the learned bias of each query-key pair's relative
        position bucket, by row index (within a packed text, the same as by position)."""
        bias = self.relative_attention_bias(relative_position_buckets(positions.shape[1]))  # [T, T, N]
        return AttentionInputs(mask, bias=jnp.transpose(bias, (2, 0, 1))[None])
