"""BERT encoder (also MiniLM and the BERT-based BGE, E5 and GTE checkpoints): transformers' `BertModel`."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from flax import nnx

from jaxst.models.config import (
    require,
    require_activation,
    require_encoder_only,
    require_heads_divide_width,
    require_probabilities,
)
from jaxst.models.encoder import TextEmbeddings, TransformerEncoder
from jaxst.models.layers import TransformerLayer


def validate_bert_config(config: Any) -> None:
    """Refuse BERT/RoBERTa config options the encoder does not implement.

    transformers v5 no longer reads `position_embedding_type` and silently computes absolute positions;
    jaxst refuses the relative kinds instead of giving different numbers than the original model.
    """
    require(config, "position_embedding_type", ["absolute"], "absolute")
    require_activation(config, "hidden_act")
    require_encoder_only(config)
    require_heads_divide_width(config, config.hidden_size, config.num_attention_heads)
    require_probabilities(config, "hidden_dropout_prob", "attention_probs_dropout_prob")


def bert_layers(config: Any, dtype: jnp.dtype, rngs: nnx.Rngs) -> nnx.List:
    """The num_hidden_layers post-LN layers of a BERT-style config (BERT, RoBERTa, XLM-R, MPNet)."""
    return nnx.List(
        [
            TransformerLayer(
                hidden_size=config.hidden_size,
                num_heads=config.num_attention_heads,
                intermediate_size=config.intermediate_size,
                activation=config.hidden_act,
                layer_norm_eps=config.layer_norm_eps,
                attention_dropout=config.attention_probs_dropout_prob,
                attention_output_dropout=config.hidden_dropout_prob,
                output_dropout=config.hidden_dropout_prob,
                dtype=dtype,
                init_std=config.initializer_range,
                rngs=rngs,
            )
            for _ in range(config.num_hidden_layers)
        ]
    )


class BertEncoder(TransformerEncoder):
    """BERT: word + token type + absolute position embeddings (positions 0..T-1), post-LN layers.

    Subclasses with BERT's layers change the embeddings through `position_padding_idx` (fairseq
    positions) and `type_vocab_size` (0: no token type embeddings).
    """

    uses_token_type_ids = True
    validate_config = staticmethod(validate_bert_config)

    def __init__(self, config: Any, *, dtype: Any = jnp.float32, rngs: nnx.Rngs):
        super().__init__(config, dtype)
        self.embeddings = TextEmbeddings(
            vocab_size=config.vocab_size,
            hidden_size=config.hidden_size,
            max_positions=config.max_position_embeddings,
            type_vocab_size=self.type_vocab_size(config),
            padding_idx=self.position_padding_idx(config),
            layer_norm_eps=config.layer_norm_eps,
            init_std=config.initializer_range,
            rngs=rngs,
        )
        self.layers = bert_layers(config, self.dtype, rngs)
        self.embedding_dropout = config.hidden_dropout_prob

    @staticmethod
    def position_padding_idx(config: Any) -> int | None:
        """The padding id positions count from (see `TextEmbeddings`); None for positions 0..T-1."""
        return None

    @staticmethod
    def type_vocab_size(config: Any) -> int:
        return config.type_vocab_size
