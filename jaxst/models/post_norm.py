"""The body of the BERT-style families (bert.py, distilbert.py, roberta.py, mpnet.py): summed word,
token type and position embeddings, then post-LN layers attending in both directions."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from jaxst.io.hf import KeyTable, ParamPath
from jaxst.models.attention import AttentionInputs, attention
from jaxst.models.encoder import PartitionRules, TransformerEncoder
from jaxst.models.layers import ACTIVATIONS, Dense, Embedding, LayerNorm, dropout
from jaxst.models.spec import EncoderSpec


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


def add_and_norm(norm: LayerNorm, x: jax.Array, residual: jax.Array, dtype: jnp.dtype) -> jax.Array:
    """norm(x + residual) with the sum and the norm in float32, the result cast to the compute dtype."""
    return norm(x.astype(jnp.float32) + residual.astype(jnp.float32)).astype(dtype)


class TransformerLayer(nnx.Module):
    """One post-LN encoder layer (BERT, RoBERTa, DistilBERT and MPNet share it).

    a = LN(dropout(attention(h) W_o + b_o) + h);  out = LN(dropout(act(a W_i + b_i) W_2 + b_2) + a)
    """

    NORMS = ("attention_norm", "output_norm")  # the LayerNorm submodules; the others are Dense

    def __init__(self, spec: EncoderSpec, *, dtype: jnp.dtype, rngs: nnx.Rngs):
        """Sizes, activation, layer norm epsilon, dropout rates and init scale from `spec`."""
        width = spec.hidden_size
        dense = partial(Dense, dtype=dtype, init_std=spec.init_std, rngs=rngs)
        self.query = dense(width, width)
        self.key = dense(width, width)
        self.value = dense(width, width)
        self.attention_output = dense(width, width)
        self.attention_norm = LayerNorm(width, eps=spec.layer_norm_eps)
        self.intermediate = dense(width, spec.intermediate_size)
        self.output = dense(spec.intermediate_size, width)
        self.output_norm = LayerNorm(width, eps=spec.layer_norm_eps)
        self.hidden_size = width
        self.num_heads = spec.num_heads
        self.activation = spec.activation
        self.attention_dropout = spec.attention_dropout
        self.attention_output_dropout = spec.attention_output_dropout
        self.output_dropout = spec.output_dropout
        self.dtype = dtype

    @classmethod
    def checkpoint_keys(cls, name: str, path: ParamPath, names: Mapping[str, str]) -> KeyTable:
        """A checkpoint layer `name` -> parameters below `path`.

        names: each of the eight submodules -> its checkpoint name within the layer, e.g.
        "query" -> "attention.self.query" for BERT.
        """
        table: KeyTable = {}
        for ours, theirs in names.items():
            keys = LayerNorm.checkpoint_keys if ours in cls.NORMS else Dense.checkpoint_keys
            table.update(keys(f"{name}.{theirs}", (*path, ours)))
        return table

    def dropout_shapes(self, batch: int, length: int) -> dict[str, tuple[int, ...]]:
        """The shape of each dropout site with a non-zero rate, for `draw_dropout_bits`."""
        sites = {
            "attention": (self.attention_dropout, (batch, self.num_heads, length, length)),
            "attention_output": (self.attention_output_dropout, (batch, length, self.hidden_size)),
            "output": (self.output_dropout, (batch, length, self.hidden_size)),
        }
        return {name: shape for name, (rate, shape) in sites.items() if rate > 0.0}

    def __call__(
        self,
        hidden: jax.Array,
        inputs: AttentionInputs,
        dropout_bits: Mapping[str, jax.Array] | None = None,
    ) -> jax.Array:
        """hidden [B, T, H] compute dtype; inputs: the mask and bias (rotary unused);
        dropout_bits: site name -> uint32 bits (see `dropout_shapes`), None in eval mode -> [B, T, H]."""
        batch, length, width = hidden.shape
        bits = dropout_bits or {}

        def heads(x: jax.Array) -> jax.Array:
            return x.reshape(batch, length, self.num_heads, width // self.num_heads)

        context = attention(
            heads(self.query(hidden)),
            heads(self.key(hidden)),
            heads(self.value(hidden)),
            inputs.mask,
            inputs.bias,
            dropout_rate=self.attention_dropout,
            dropout_bits=bits.get("attention"),
        ).reshape(batch, length, width)
        attended = dropout(
            self.attention_output(context), self.attention_output_dropout, bits.get("attention_output")
        )
        attended = add_and_norm(self.attention_norm, attended, hidden, self.dtype)
        expanded = ACTIVATIONS[self.activation](self.intermediate(attended))
        output = dropout(self.output(expanded), self.output_dropout, bits.get("output"))
        return add_and_norm(self.output_norm, output, attended, self.dtype)


class PostNormEncoder(TransformerEncoder):
    """The BERT-style encoder: `TextEmbeddings`, then spec.num_layers post-LN `TransformerLayer`s.

    A family names its layer keys by `layer_root` (the checkpoint's layer stack, "encoder.layer") and
    `layer_names` (each TransformerLayer submodule's name within a checkpoint layer).
    """

    layer_root: ClassVar[str]
    layer_names: ClassVar[Mapping[str, str]]
    partition_rules: ClassVar[PartitionRules] = (
        (r"embeddings/word/embedding", ("vocab", "embed")),
        (r"layers/\d+/(query|key|value)/kernel", ("embed", "heads")),
        (r"layers/\d+/(query|key|value)/bias", ("heads",)),
        (r"layers/\d+/attention_output/kernel", ("heads", "embed")),
        (r"layers/\d+/intermediate/kernel", ("embed", "mlp")),
        (r"layers/\d+/intermediate/bias", ("mlp",)),
        (r"layers/\d+/output/kernel", ("mlp", "embed")),
    )

    def __init__(self, spec: EncoderSpec, *, dtype: Any = jnp.float32, rngs: nnx.Rngs):
        super().__init__(spec, dtype=dtype)
        self.embeddings = TextEmbeddings(spec, rngs=rngs)
        self.layers = nnx.List(
            [TransformerLayer(spec, dtype=self.dtype, rngs=rngs) for _ in range(spec.num_layers)]
        )

    @classmethod
    def key_table(cls, num_layers: int) -> KeyTable:
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

    def embed(
        self, input_ids: jax.Array, token_type_ids: jax.Array | None, position_ids: jax.Array | None
    ) -> jax.Array:
        return self.embeddings(input_ids, token_type_ids, position_ids)
