"""RoBERTa and XLM-RoBERTa encoders: transformers' `RobertaModel` / `XLMRobertaModel` (identical maths)."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from flax import nnx

from jaxst.models.bert import bert_layers, validate_bert_config
from jaxst.models.encoder import TextEmbeddings, TransformerEncoder


class RobertaEncoder(TransformerEncoder):
    """RoBERTa / XLM-R: BERT layers; positions count from pad_token_id + 1 over non-padding input ids."""

    uses_token_type_ids = True
    validate_config = staticmethod(validate_bert_config)

    def __init__(self, config: Any, *, dtype: Any = jnp.float32, rngs: nnx.Rngs):
        super().__init__(config, dtype)
        self.embeddings = TextEmbeddings(
            vocab_size=config.vocab_size,
            hidden_size=config.hidden_size,
            max_positions=config.max_position_embeddings,
            type_vocab_size=config.type_vocab_size,
            padding_idx=config.pad_token_id,
            layer_norm_eps=config.layer_norm_eps,
            init_std=config.initializer_range,
            rngs=rngs,
        )
        self.layers = bert_layers(config, self.dtype, rngs)
        self.embedding_dropout = config.hidden_dropout_prob
