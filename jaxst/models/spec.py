"""EncoderSpec: what an encoder computes with, read once from its transformers config."""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any, Self

from jaxst.models.json_config import JsonConfig

if TYPE_CHECKING:
    from transformers import PreTrainedConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class EncoderSpec:
    """The sizes, activation, epsilon, dropout rates and positions of a text encoder.

    Each family builds it from a transformers config after refusing what it does not implement
    (`TransformerEncoder.spec_from_config`). It is frozen and compared by value: it is a static attribute
    of the encoder, so it sits in the NNX graphdef that `jax.jit` hashes and compares, and two loads of
    the same config share compiled code. The fields with defaults are the features a family may lack: no
    token types, positions from 0, no dropout at that site.

    Attributes:
        model_type: the config's model_type ("bert", "xlm-roberta", ...).
        vocab_size: rows V of the word embedding table.
        hidden_size: width H of the hidden states.
        num_layers: number L of encoder layers.
        num_heads: attention (query) heads N; H = N * head width in the BERT-style families.
        intermediate_size: width of each layer's feed-forward block.
        activation: the feed-forward activation, a key of `layers.ACTIVATIONS`.
        layer_norm_eps: epsilon of every layer norm (RMS norm in the decoder families).
        max_positions: rows of the position embedding table; with rotary positions, the config's
            max_position_embeddings.
        type_vocab_size: rows of the token type table; 0 for a family without token types.
        position_padding_idx: None for positions 0..T-1; else the padding id fairseq positions count
            from (see `TextEmbeddings`).
        embedding_dropout: dropout rate on the embedding output.
        attention_dropout: dropout rate on the attention probabilities.
        attention_output_dropout: dropout rate on each layer's attention output projection.
        output_dropout: dropout rate on each layer's feed-forward output.
        init_std: standard deviation of the random initialisation (overwritten by a checkpoint).
        transformers_json: the transformers config as JSON (`config_json`: every option, or config.json's
            own where the spec was read without transformers' config classes), to rebuild it
            (`transformers_config`) and write it back on save.
    """

    model_type: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    activation: str
    layer_norm_eps: float
    max_positions: int
    attention_dropout: float
    init_std: float
    transformers_json: str = dataclasses.field(repr=False)
    type_vocab_size: int = 0
    position_padding_idx: int | None = None
    embedding_dropout: float = 0.0
    attention_output_dropout: float = 0.0
    output_dropout: float = 0.0

    @classmethod
    def from_config(cls, config: PreTrainedConfig | JsonConfig, **family_fields: Any) -> Self:
        """The spec of `config` with the options every transformers encoder config names alike
        (vocab_size, hidden_size, num_hidden_layers, num_attention_heads, max_position_embeddings,
        initializer_range; DistilBERT's through its attribute map) and the other fields from the family.
        `config` may be a `JsonConfig` standing in for the transformers config object.
        """
        return cls(
            model_type=config.model_type,
            vocab_size=config.vocab_size,
            hidden_size=config.hidden_size,
            num_layers=config.num_hidden_layers,
            num_heads=config.num_attention_heads,
            max_positions=config.max_position_embeddings,
            init_std=config.initializer_range,
            transformers_json=config_json(config),
            **family_fields,
        )

    def transformers_config(self) -> PreTrainedConfig:
        """A new transformers config object (e.g. `BertConfig`) with every option of the one the spec was
        built from (its `name_or_path` left empty)."""
        from transformers import CONFIG_MAPPING

        return CONFIG_MAPPING[self.model_type].from_dict(json.loads(self.transformers_json))


def config_json(config: PreTrainedConfig | JsonConfig) -> str:
    """The options of a config as JSON, without the folder it was read from (`_name_or_path`): one model
    gives one spec wherever it is loaded from.

    For a transformers config, every option (`to_json_string(use_diff=False)`); for a `JsonConfig`,
    config.json's own options, from which `CONFIG_MAPPING[model_type].from_dict` builds the same config
    object as AutoConfig does from the folder.
    """
    if isinstance(config, JsonConfig):
        options = dict(config.options)
    else:
        options = json.loads(config.to_json_string(use_diff=False))
    options.pop("_name_or_path", None)
    return json.dumps(options, sort_keys=True)
