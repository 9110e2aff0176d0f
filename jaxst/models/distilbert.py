"""DistilBERT encoder: transformers' `DistilBertModel`."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from flax import nnx

from jaxst.models.config import (
    require_activation,
    require_encoder_only,
    require_heads_divide_width,
    require_probabilities,
)
from jaxst.models.encoder import TextEmbeddings, TransformerEncoder
from jaxst.models.layers import TransformerLayer

# DistilBERT's layer norms use a fixed epsilon; its config has no layer_norm_eps.
DISTILBERT_LAYER_NORM_EPS = 1e-12


def validate_distilbert_config(config: Any) -> None:
    """Refuse DistilBERT config options the encoder does not implement.

    `sinusoidal_pos_embds` only changes how the position table is initialised; the table itself is in
    the checkpoint, so it needs nothing here.
    """
    require_activation(config, "activation")
    require_encoder_only(config)
    require_heads_divide_width(config, config.dim, config.n_heads)
    require_probabilities(config, "dropout", "attention_dropout")


class DistilBertEncoder(TransformerEncoder):
    """DistilBERT: word + absolute position embeddings, no token types, no dropout on the attention output."""

    uses_token_type_ids = False
    validate_config = staticmethod(validate_distilbert_config)

    def __init__(self, config: Any, *, dtype: Any = jnp.float32, rngs: nnx.Rngs):
        super().__init__(config, dtype)
        self.embeddings = TextEmbeddings(
            vocab_size=config.vocab_size,
            hidden_size=config.dim,
            max_positions=config.max_position_embeddings,
            type_vocab_size=0,
            padding_idx=None,
            layer_norm_eps=DISTILBERT_LAYER_NORM_EPS,
            init_std=config.initializer_range,
            rngs=rngs,
        )
        self.layers = nnx.List(
            [
                TransformerLayer(
                    hidden_size=config.dim,
                    num_heads=config.n_heads,
                    intermediate_size=config.hidden_dim,
                    activation=config.activation,
                    layer_norm_eps=DISTILBERT_LAYER_NORM_EPS,
                    attention_dropout=config.attention_dropout,
                    attention_output_dropout=0.0,
                    output_dropout=config.dropout,
                    dtype=self.dtype,
                    init_std=config.initializer_range,
                    rngs=rngs,
                )
                for _ in range(config.n_layers)
            ]
        )
        self.embedding_dropout = config.dropout
