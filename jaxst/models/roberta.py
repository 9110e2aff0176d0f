"""RoBERTa and XLM-RoBERTa encoders: transformers' `RobertaModel` / `XLMRobertaModel` (identical maths)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jaxst.models.bert import POOLER_KEYS, BertEncoder, bert_style_spec, validate_bert_config
from jaxst.models.spec import EncoderSpec

if TYPE_CHECKING:
    from transformers import PreTrainedConfig

# The masked-language-model head of RoBERTa, XLM-R and MPNet checkpoints.
LM_HEAD_KEYS = (
    "lm_head.bias",
    "lm_head.dense.weight",
    "lm_head.dense.bias",
    "lm_head.layer_norm.weight",
    "lm_head.layer_norm.bias",
    "lm_head.decoder.weight",
    "lm_head.decoder.bias",
)


class RobertaEncoder(BertEncoder):
    """RoBERTa / XLM-R: BERT layers; positions count from pad_token_id + 1 over non-padding input ids."""

    checkpoint_prefix = "roberta."
    unused_keys = frozenset((*POOLER_KEYS, "embeddings.position_ids", *LM_HEAD_KEYS))

    @classmethod
    def spec_from_config(cls, config: PreTrainedConfig) -> EncoderSpec:
        validate_bert_config(config)
        return bert_style_spec(
            config, type_vocab_size=config.type_vocab_size, position_padding_idx=config.pad_token_id
        )
