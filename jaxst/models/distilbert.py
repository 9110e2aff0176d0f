"""DistilBERT encoder: transformers' `DistilBertModel`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jaxst.models.config import (
    require_activation,
    require_encoder_only,
    require_heads_divide_width,
    require_probabilities,
)
from jaxst.models.post_norm import PostNormEncoder
from jaxst.models.spec import EncoderSpec

if TYPE_CHECKING:
    from transformers import PreTrainedConfig

# DistilBERT's layer norms use a fixed epsilon; its config has no layer_norm_eps.
DISTILBERT_LAYER_NORM_EPS = 1e-12


def validate_distilbert_config(config: PreTrainedConfig) -> None:
    """Refuse DistilBERT config options the encoder does not implement.

    `sinusoidal_pos_embds` only changes how the position table is initialised; the table itself is in
    the checkpoint, so it needs nothing here.
    """
    require_activation(config, "activation")
    require_encoder_only(config)
    require_heads_divide_width(config, config.dim, config.n_heads)
    require_probabilities(config, "dropout", "attention_dropout")


class DistilBertEncoder(PostNormEncoder):
    """DistilBERT: word + absolute position embeddings, no token types, no dropout on the attention output."""

    uses_token_type_ids = False
    reads_config_json = True
    checkpoint_prefix = "distilbert."
    unused_keys = frozenset(
        (
            "embeddings.position_ids",
            "vocab_transform.weight",
            "vocab_transform.bias",
            "vocab_layer_norm.weight",
            "vocab_layer_norm.bias",
            "vocab_projector.weight",
            "vocab_projector.bias",
        )
    )
    layer_root = "transformer.layer"
    layer_names = {
        "query": "attention.q_lin",
        "key": "attention.k_lin",
        "value": "attention.v_lin",
        "attention_output": "attention.out_lin",
        "attention_norm": "sa_layer_norm",
        "intermediate": "ffn.lin1",
        "output": "ffn.lin2",
        "output_norm": "output_layer_norm",
    }

    @classmethod
    def spec_from_config(cls, config: PreTrainedConfig) -> EncoderSpec:
        validate_distilbert_config(config)
        return EncoderSpec.from_config(
            config,
            intermediate_size=config.hidden_dim,
            activation=config.activation,
            layer_norm_eps=DISTILBERT_LAYER_NORM_EPS,
            embedding_dropout=config.dropout,
            attention_dropout=config.attention_dropout,
            output_dropout=config.dropout,
        )
