"""MPNet encoder: transformers' `MPNetModel`, with its relative position bucket bias."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxst.io.hf import KeyTable
from jaxst.models.attention import AttentionInputs
from jaxst.models.attention import relative_position_buckets as shared_buckets
from jaxst.models.bert import POOLER_KEYS, BertEncoder, bert_style_spec
from jaxst.models.config import require
from jaxst.models.layers import Embedding
from jaxst.models.roberta import LM_HEAD_KEYS
from jaxst.models.spec import EncoderSpec

if TYPE_CHECKING:
    from transformers import PreTrainedConfig

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
    """The T5-style bidirectional buckets (`attention.relative_position_buckets`) of every query-key pair
    of a row of `length` tokens, by row index: int [T, T], entry [q, k] the bucket of k - q."""
    positions = np.arange(length)
    return shared_buckets(
        positions[None, :] - positions[:, None], num_buckets=num_buckets, max_distance=max_distance
    )


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
