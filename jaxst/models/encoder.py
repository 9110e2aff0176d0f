"""The encoder body shared by all families: embeddings, a stack of post-LN layers, hidden states.

A family (bert.py, distilbert.py, roberta.py, mpnet.py) is a subclass that reads its `EncoderSpec` from
a transformers config, names its checkpoint keys, and may add modules (MPNet's attention bias).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import nnx
from transformers import PreTrainedConfig

from jaxst.io.hf import KeyMapping, KeyTable, ParamPath
from jaxst.models.layers import Embedding, LayerNorm, TransformerLayer, draw_dropout_bits, dropout
from jaxst.models.spec import EncoderSpec

COMPUTE_DTYPES = (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16))


class TextEmbeddings(nnx.Module):
    """LN(word[ids] + token_type[types] + position[positions]) in float32, as transformers sums them.

    Positions are 0..T-1, or with a position padding id `padding_idx` (RoBERTa, XLM-R, MPNet) fairseq's:
    tokens whose id is not the padding id count up from padding_idx + 1 and padding tokens get
    padding_idx, computed from `input_ids` (not the attention mask), as transformers does. Packed rows
    (several texts per row) pass `position_ids`, each token's index within its text, which replaces the
    row index 0..T-1 (fairseq: padding_idx + 1 + index for tokens, padding_idx for padding).
    """

    def __init__(self, spec: EncoderSpec, *, rngs: nnx.Rngs):
        """Table sizes, position padding id, layer norm epsilon and init scale from `spec`."""
        table = partial(Embedding, features=spec.hidden_size, init_std=spec.init_std, rngs=rngs)
        self.word = table(spec.vocab_size)
        self.position = table(spec.max_positions)
        self.token_type = table(spec.type_vocab_size) if spec.type_vocab_size else None
        self.norm = LayerNorm(spec.hidden_size, eps=spec.layer_norm_eps)
        self.padding_idx = spec.position_padding_idx
        self.max_length = spec.max_positions - (0 if self.padding_idx is None else self.padding_idx + 1)

    def __call__(
        self, input_ids: jax.Array, token_type_ids: jax.Array | None, position_ids: jax.Array | None = None
    ) -> jax.Array:
        """input_ids, token_type_ids, position_ids [B, T] int -> float32 [B, T, H] (before dropout)."""
        if self.padding_idx is None:
            positions = jnp.arange(input_ids.shape[1])[None, :] if position_ids is None else position_ids
        else:
            is_token = (input_ids != self.padding_idx).astype(jnp.int32)
            counted = jnp.cumsum(is_token, axis=1) if position_ids is None else position_ids + 1
            positions = counted * is_token + self.padding_idx
        summed = self.word(input_ids)
        if self.token_type is not None:
            types = jnp.zeros_like(input_ids) if token_type_ids is None else token_type_ids
            summed = summed + self.token_type(types)
        return self.norm(summed + self.position(positions))

    @staticmethod
    def checkpoint_keys(name: str, path: ParamPath, *, with_token_types: bool) -> KeyTable:
        """transformers' embedding keys below `name` (the same in every family) -> parameters below `path`."""
        table = {
            **Embedding.checkpoint_keys(f"{name}.word_embeddings", (*path, "word")),
            **Embedding.checkpoint_keys(f"{name}.position_embeddings", (*path, "position")),
            **LayerNorm.checkpoint_keys(f"{name}.LayerNorm", (*path, "norm")),
        }
        if with_token_types:
            table.update(Embedding.checkpoint_keys(f"{name}.token_type_embeddings", (*path, "token_type")))
        return table


class TransformerEncoder(nnx.Module):
    """Base of the encoders: `encoder(input_ids, attention_mask)` -> last hidden state [B, T, H].

    Builds the body every family shares from an `EncoderSpec`: `embeddings` (TextEmbeddings) and
    `layers` (spec.num_layers post-LN TransformerLayers). A family subclass reads its spec from a
    transformers config (`spec_from_config`), names its checkpoint keys through the class attributes
    below, and may add modules and override `attention_bias` and `key_table`.

    Attributes:
        spec: the EncoderSpec (static: part of the graphdef).
        dtype: compute dtype, float32 or bfloat16 (static); parameters are float32.
    """

    uses_token_type_ids: ClassVar[bool]
    # The family's checkpoint names: the key prefix of a model with heads ("bert."), the keys it may
    # hold that the encoder does not use (pooler, heads, buffers), the root of the layer stack
    # ("encoder.layer") and each TransformerLayer submodule's name within a layer.
    checkpoint_prefix: ClassVar[str]
    unused_keys: ClassVar[frozenset[str]]
    layer_root: ClassVar[str]
    layer_names: ClassVar[Mapping[str, str]]

    def __init__(self, spec: EncoderSpec, *, dtype: Any = jnp.float32, rngs: nnx.Rngs):
        dtype = jnp.dtype(dtype)
        if dtype not in COMPUTE_DTYPES:
            raise ValueError(f"compute dtype must be float32 or bfloat16, got {dtype}")
        self.spec = spec
        self.dtype = dtype
        self.embeddings = TextEmbeddings(spec, rngs=rngs)
        self.layers = nnx.List(
            [TransformerLayer(spec, dtype=dtype, rngs=rngs) for _ in range(spec.num_layers)]
        )

    @classmethod
    def spec_from_config(cls, config: PreTrainedConfig) -> EncoderSpec:
        """The family's EncoderSpec of a transformers config.

        Raises:
            UnsupportedConfigError: naming a config option the family does not implement.
        """
        raise NotImplementedError(f"{cls.__name__} does not say how to read a transformers config")

    @classmethod
    def key_table(cls, num_layers: int) -> KeyTable:
        """The complete checkpoint key (without prefix) -> parameter path table, for `num_layers` layers."""
        table = TextEmbeddings.checkpoint_keys(
            "embeddings", ("embeddings",), with_token_types=cls.uses_token_type_ids
        )
        for index in range(num_layers):
            table.update(
                TransformerLayer.checkpoint_keys(
                    f"{cls.layer_root}.{index}", ("layers", index), cls.layer_names
                )
            )
        return table

    @classmethod
    def key_mapping(cls, spec: EncoderSpec) -> KeyMapping:
        """How the checkpoint of an encoder with this spec maps onto its parameters (see `jaxst.io.hf`)."""
        return KeyMapping(
            spec.model_type, cls.key_table(spec.num_layers), cls.checkpoint_prefix, cls.unused_keys
        )

    @property
    def hidden_size(self) -> int:
        """Width H of the hidden states."""
        return self.spec.hidden_size

    @property
    def num_hidden_layers(self) -> int:
        """Number L of layers; `output_hidden_states` returns L + 1 arrays."""
        return self.spec.num_layers

    @property
    def config(self) -> PreTrainedConfig:
        """A new transformers config (e.g. `BertConfig`) with the options this encoder was built from."""
        return self.spec.transformers_config()

    def attention_bias(self, length: int) -> jax.Array | None:
        """Bias added to every layer's attention logits, broadcastable to [B, N, T, T]; None by default."""
        del length
        return None

    def __call__(
        self,
        input_ids: jax.Array,
        attention_mask: jax.Array,
        token_type_ids: jax.Array | None = None,
        *,
        position_ids: jax.Array | None = None,
        output_hidden_states: bool = False,
        dropout_rng: jax.Array | None = None,
    ) -> jax.Array | tuple[jax.Array, tuple[jax.Array, ...]]:
        """Encode a padded batch, or packed rows (several texts laid end to end in each row).

        Args:
            input_ids: int [B, T] token ids.
            attention_mask: int [B, T], 1 for tokens, 0 for padding (padded keys are never attended).
                Packed rows number their texts 1, 2, ... instead, and a token attends only to the keys
                of its own text.
            token_type_ids: int [B, T] segment ids, or None for all zeros; only for architectures with
                token type embeddings (`uses_token_type_ids`).
            position_ids: None for one text per row; for packed rows int [B, T], each token's index
                within its text (0 for padding). A text's outputs then equal those of the text alone,
                up to float rounding (MPNet's relative bias depends only on positions within a text).
            output_hidden_states: also return every layer's output.
            dropout_rng: a `jax.random` key for train-mode dropout (embedding, attention-probability and
                hidden dropout with the config's rates); None for eval mode.

        Returns:
            The last hidden state [B, T, H] in the compute dtype; with `output_hidden_states` the pair
            (last hidden state, hidden states) where hidden states is a tuple of L + 1 arrays [B, T, H],
            the embedding output first, as transformers returns them.
        """
        self._check_inputs(input_ids, attention_mask, token_type_ids, position_ids)
        batch, length = input_ids.shape
        if dropout_rng is None:
            embedding_bits, layer_bits = {}, [None] * len(self.layers)
        else:
            embedding_shapes = (
                {"embedding": (batch, length, self.hidden_size)} if self.spec.embedding_dropout else {}
            )
            layer_shapes = [layer.dropout_shapes(batch, length) for layer in self.layers]
            embedding_bits, *layer_bits = draw_dropout_bits(dropout_rng, [embedding_shapes, *layer_shapes])
        hidden = self.embeddings(input_ids, token_type_ids, position_ids)
        hidden = dropout(hidden, self.spec.embedding_dropout, embedding_bits.get("embedding")).astype(
            self.dtype
        )
        if position_ids is None:
            mask = (attention_mask != 0)[:, None, None, :]
        else:  # packed: keys of the query's own text only
            text, key_text = attention_mask[:, None, :, None], attention_mask[:, None, None, :]
            mask = (text == key_text) & (key_text != 0)
        bias = self.attention_bias(length)
        hidden_states = [hidden]
        for layer, bits in zip(self.layers, layer_bits, strict=True):
            hidden = layer(hidden, mask, bias, bits)
            hidden_states.append(hidden)
        return (hidden, tuple(hidden_states)) if output_hidden_states else hidden

    def _check_inputs(
        self,
        input_ids: jax.Array,
        attention_mask: jax.Array,
        token_type_ids: jax.Array | None,
        position_ids: jax.Array | None,
    ) -> None:
        """Shape and dtype checks at trace time, so bad input fails with a message, not an XLA error."""
        named = {"input_ids": input_ids, "attention_mask": attention_mask}
        if position_ids is not None:
            named["position_ids"] = position_ids
        if token_type_ids is not None:
            if not self.uses_token_type_ids:
                raise ValueError(
                    f"{self.spec.model_type} has no token type embeddings: pass token_type_ids=None"
                )
            named["token_type_ids"] = token_type_ids
        for name, array in named.items():
            if jnp.ndim(array) != 2 or not jnp.issubdtype(jnp.result_type(array), jnp.integer):
                raise ValueError(
                    f"{name} must be an integer array [batch, length], got {jnp.result_type(array)} "
                    f"of shape {jnp.shape(array)}"
                )
            if jnp.shape(array) != jnp.shape(input_ids):
                raise ValueError(f"{name} has shape {jnp.shape(array)}, input_ids {jnp.shape(input_ids)}")
        if input_ids.shape[1] > self.embeddings.max_length:
            raise ValueError(
                f"sequence length {input_ids.shape[1]} exceeds the {self.embeddings.max_length} positions "
                f"of this {self.spec.model_type} model"
            )
