"""BERT encoder (also MiniLM and the BERT-based BGE, E5 and GTE checkpoints): transformers' `BertModel`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jaxst.models.config import (
    UnsupportedConfigError,
    require,
    require_activation,
    require_encoder_only,
    require_heads_divide_width,
    require_probabilities,
)
from jaxst.models.post_norm import PostNormEncoder
from jaxst.models.spec import EncoderSpec

if TYPE_CHECKING:
    from transformers import PreTrainedConfig

POOLER_KEYS = ("pooler.dense.weight", "pooler.dense.bias")
# Checkpoint names of the TransformerLayer submodules in BERT, RoBERTa and XLM-R.
BERT_LAYER_NAMES = {
    "query": "attention.self.query",
    "key": "attention.self.key",
    "value": "attention.self.value",
    "attention_output": "attention.output.dense",
    "attention_norm": "attention.output.LayerNorm",
    "intermediate": "intermediate.dense",
    "output": "output.dense",
    "output_norm": "output.LayerNorm",
}


def validate_bert_config(config: PreTrainedConfig) -> None:
    """Refuse the BERT/RoBERTa config options beyond `bert_style_spec`'s that the encoder does not implement.

    transformers v5 no longer reads `position_embedding_type` and silently computes absolute positions;
    jaxst refuses the relative kinds instead of giving different numbers than the original model.
    """
    require(config, "position_embedding_type", ["absolute"], "absolute")
    if config.type_vocab_size < 1:
        raise UnsupportedConfigError(
            f"{config.model_type} config option type_vocab_size={config.type_vocab_size!r} is not supported "
            "(token type embeddings need at least one row)"
        )


def bert_style_spec(
    config: PreTrainedConfig, *, type_vocab_size: int, position_padding_idx: int | None
) -> EncoderSpec:
    """The EncoderSpec of a config with BERT's option names (BERT, RoBERTa, XLM-R, MPNet), after refusing
    the options every such family leaves out (see `jaxst.models.config`).

    Hidden dropout applies to the embedding output, each attention output and each feed-forward output.
    """
    require_activation(config, "hidden_act")
    require_encoder_only(config)
    require_heads_divide_width(config, config.hidden_size, config.num_attention_heads)
    require_probabilities(config, "hidden_dropout_prob", "attention_probs_dropout_prob")
    return EncoderSpec.from_config(
        config,
        intermediate_size=config.intermediate_size,
        activation=config.hidden_act,
        layer_norm_eps=config.layer_norm_eps,
        type_vocab_size=type_vocab_size,
        position_padding_idx=position_padding_idx,
        embedding_dropout=config.hidden_dropout_prob,
        attention_dropout=config.attention_probs_dropout_prob,
        attention_output_dropout=config.hidden_dropout_prob,
        output_dropout=config.hidden_dropout_prob,
    )


class BertEncoder(PostNormEncoder):
    """BERT: word + token type + absolute position embeddings (positions 0..T-1), post-LN layers."""

    uses_token_type_ids = True
    reads_config_json = True
    checkpoint_prefix = "bert."
    unused_keys = frozenset(
        (
            *POOLER_KEYS,
            "embeddings.position_ids",
            "cls.predictions.bias",
            "cls.predictions.transform.dense.weight",
            "cls.predictions.transform.dense.bias",
            "cls.predictions.transform.LayerNorm.weight",
            "cls.predictions.transform.LayerNorm.bias",
            "cls.predictions.decoder.weight",
            "cls.predictions.decoder.bias",
            "cls.seq_relationship.weight",
            "cls.seq_relationship.bias",
        )
    )
    layer_root = "encoder.layer"
    layer_names = BERT_LAYER_NAMES

    @classmethod
    def spec_from_config(cls, config: PreTrainedConfig) -> EncoderSpec:
        validate_bert_config(config)
        return bert_style_spec(config, type_vocab_size=config.type_vocab_size, position_padding_idx=None)
