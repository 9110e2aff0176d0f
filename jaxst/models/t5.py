"""T5 and mT5 encoders (sentence-t5, GTR): transformers' `T5EncoderModel` / `MT5EncoderModel`.

A pre-norm body with RMS norms (T5's layer norm: no mean, no bias, the variance in float32), attention
without bias and without the 1 / sqrt(D) logit scale, and one learned relative position bias, held by
the first layer in transformers and added to every layer's logits. The feed-forward block is
`wo(act(wi x))` ("relu", T5) or `wo(act(wi_0 x) * wi_1 x)` ("gated-gelu", T5 v1.1, mT5). The token
embeddings (`shared`) are not scaled. The encoder's output is the final RMS norm of the last layer, then
dropout in train mode.

transformers clamps hidden states to the float16 range when it computes in float16; jaxst computes in
float32 or bfloat16, where that clamp never applies. transformers keeps `wo` in float32 under half
precision; jaxst's bfloat16 compute rounds it as every other kernel.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxst.io.hf import KeyMapping, KeyTable, ParamPath
from jaxst.models.attention import AttentionInputs, GroupedQueryAttention, relative_position_buckets
from jaxst.models.config import (
    UnsupportedConfigError,
    require_encoder_only,
    require_probabilities,
)
from jaxst.models.encoder import PartitionRules, TransformerEncoder
from jaxst.models.layers import ACTIVATIONS, Dense, Embedding, RMSNorm, TokenEmbeddings, dropout
from jaxst.models.spec import EncoderSpec, config_json

if TYPE_CHECKING:
    from transformers import PreTrainedConfig

# T5 has no position table: relative buckets take any length. Sequences are limited to the config's
# n_positions (older T5 configs name 512, the length the models were trained at), or else to 512.
T5_DEFAULT_MAX_LENGTH = 512


@dataclasses.dataclass(frozen=True, kw_only=True)
class T5Spec(EncoderSpec):
    """EncoderSpec plus T5's attention heads, relative position buckets and feed-forward layout.

    Every dropout rate of the spec is the config's dropout_rate (T5 has one rate for all its sites).

    Attributes:
        head_dim: D (the config's d_kv), the width of each attention head; N * D need not equal H.
        num_buckets: relative_attention_num_buckets, the rows of the relative bias table.
        max_distance: relative_attention_max_distance, from which all distances share the last bucket.
        gated_feed_forward: True for "gated-<act>" (wi_0, wi_1, wo), False for "<act>" (wi, wo).
        num_decoder_layers: the decoder layers a full T5 checkpoint holds (kept aside, never used).
    """

    head_dim: int
    num_buckets: int
    max_distance: int
    gated_feed_forward: bool
    num_decoder_layers: int


def validate_t5_config(config: PreTrainedConfig) -> None:
    """Refuse the T5 config options the encoder does not implement, each by name.

    Decoder stacks (`is_decoder`, cross-attention), pruned heads, a feed_forward_proj whose activation
    jaxst lacks, and relative buckets too few to have both exact and log-spaced buckets are refused.
    """
    require_encoder_only(config)
    activation = getattr(config, "dense_act_fn", None)
    if activation not in ACTIVATIONS:
        raise UnsupportedConfigError(
            f"{config.model_type} config option feed_forward_proj={config.feed_forward_proj!r} "
            f"(dense_act_fn={activation!r}) is not supported by jaxst (supported: '<act>' or 'gated-<act>' "
            f"with <act> one of {', '.join(repr(name) for name in ACTIVATIONS)})"
        )
    require_probabilities(config, "dropout_rate")
    buckets, distance = config.relative_attention_num_buckets, config.relative_attention_max_distance
    if buckets < 4:
        raise UnsupportedConfigError(
            f"{config.model_type} config option relative_attention_num_buckets={buckets!r} is not "
            "supported by jaxst (supported: 4 or more)"
        )
    if distance <= buckets // 4:
        raise UnsupportedConfigError(
            f"{config.model_type} config option relative_attention_max_distance={distance!r} is not "
            f"supported by jaxst (supported: more than relative_attention_num_buckets // 4 = {buckets // 4})"
        )


# transformers' `T5Attention` submodule names of `GroupedQueryAttention`'s (T5's has no head norms)
ATTENTION_NAMES = {"query": "q", "key": "k", "value": "v", "output": "o"}


class T5FeedForward(nnx.Module):
    """T5's feed-forward block, without biases, with dropout on its inner activations:

    plain ("relu"): out = dropout(act(x W_i)) W_o;
    gated ("gated-gelu"): out = dropout(act(x W_gate) * (x W_i)) W_o.
    """

    def __init__(
        self,
        width: int,
        intermediate_size: int,
        *,
        activation: str,
        gated: bool,
        dropout_rate: float,
        dtype: jnp.dtype,
        init_std: float,
        rngs: nnx.Rngs,
    ):
        dense = partial(Dense, dtype=dtype, init_std=init_std, rngs=rngs, use_bias=False)
        self.gate = dense(width, intermediate_size) if gated else None
        self.input = dense(width, intermediate_size)
        self.output = dense(intermediate_size, width)
        self.activation = activation
        self.dropout_rate = dropout_rate

    @staticmethod
    def checkpoint_keys(name: str, path: ParamPath, *, gated: bool) -> KeyTable:
        """transformers' `T5DenseActDense` (wi, wo) or `T5DenseGatedActDense` (wi_0, wi_1, wo) `name` ->
        parameters below `path`."""
        names = (
            {"gate": "wi_0", "input": "wi_1", "output": "wo"} if gated else {"input": "wi", "output": "wo"}
        )
        table: KeyTable = {}
        for ours, theirs in names.items():
            table.update(Dense.checkpoint_keys(f"{name}.{theirs}", (*path, ours), use_bias=False))
        return table

    def __call__(self, x: jax.Array, dropout_bits: jax.Array | None = None) -> jax.Array:
        """x [B, T, H] compute dtype; dropout_bits uint32 [B, T, F] or None -> [B, T, H] compute dtype."""
        act = ACTIVATIONS[self.activation]
        inner = act(self.input(x)) if self.gate is None else act(self.gate(x)) * self.input(x)
        return self.output(dropout(inner, self.dropout_rate, dropout_bits))


class T5Layer(nnx.Module):
    """One pre-norm T5 block, residual sums in float32, every dropout at the config's dropout_rate:

    a = h + dropout(attention(RMSNorm(h)));  out = a + dropout(feed_forward(RMSNorm(a)))
    """

    def __init__(self, spec: T5Spec, *, dtype: jnp.dtype, rngs: nnx.Rngs):
        width, eps = spec.hidden_size, spec.layer_norm_eps
        self.attention_norm = RMSNorm(width, eps=eps)
        # multi-head attention without head norms, rotary angles or logit scaling
        self.attention = GroupedQueryAttention(
            width,
            num_heads=spec.num_heads,
            num_kv_heads=spec.num_heads,
            head_dim=spec.head_dim,
            head_norm=None,
            scale=1.0,
            dropout_rate=spec.attention_dropout,
            dtype=dtype,
            init_std=spec.init_std,
            rngs=rngs,
        )
        self.feed_forward_norm = RMSNorm(width, eps=eps)
        self.feed_forward = T5FeedForward(
            width,
            spec.intermediate_size,
            activation=spec.activation,
            gated=spec.gated_feed_forward,
            dropout_rate=spec.output_dropout,
            dtype=dtype,
            init_std=spec.init_std,
            rngs=rngs,
        )
        self.attention_output_dropout = spec.attention_output_dropout
        self.output_dropout = spec.output_dropout
        self.hidden_size = width
        self.intermediate_size = spec.intermediate_size
        self.dtype = dtype

    @staticmethod
    def checkpoint_keys(name: str, path: ParamPath, *, gated: bool) -> KeyTable:
        """transformers' `T5Block` `name` -> parameters below `path` (the relative bias of block 0 is the
        encoder's, see `T5Encoder.key_table`)."""
        return {
            **RMSNorm.checkpoint_keys(f"{name}.layer.0.layer_norm", (*path, "attention_norm")),
            **GroupedQueryAttention.checkpoint_keys(
                f"{name}.layer.0.SelfAttention", (*path, "attention"), ATTENTION_NAMES
            ),
            **RMSNorm.checkpoint_keys(f"{name}.layer.1.layer_norm", (*path, "feed_forward_norm")),
            **T5FeedForward.checkpoint_keys(
                f"{name}.layer.1.DenseReluDense", (*path, "feed_forward"), gated=gated
            ),
        }

    def dropout_shapes(self, batch: int, length: int) -> dict[str, tuple[int, ...]]:
        """The shape of each dropout site with a non-zero rate, for `draw_dropout_bits`."""
        shapes = self.attention.dropout_shapes(batch, length)
        sites = {
            "attention_output": (self.attention_output_dropout, (batch, length, self.hidden_size)),
            "intermediate": (self.output_dropout, (batch, length, self.intermediate_size)),
            "output": (self.output_dropout, (batch, length, self.hidden_size)),
        }
        return {**shapes, **{name: shape for name, (rate, shape) in sites.items() if rate > 0.0}}

    def __call__(
        self,
        hidden: jax.Array,
        inputs: AttentionInputs,
        dropout_bits: dict[str, jax.Array] | None = None,
    ) -> jax.Array:
        """hidden [B, T, H] compute dtype; inputs: the mask and the relative bias; dropout_bits: site
        name -> uint32 bits (see `dropout_shapes`), None in eval mode -> [B, T, H] compute dtype."""
        bits = dropout_bits or {}
        attended = self.attention(
            self.attention_norm(hidden).astype(self.dtype), inputs, bits.get("attention")
        )
        attended = dropout(attended, self.attention_output_dropout, bits.get("attention_output"))
        hidden = hidden.astype(jnp.float32) + attended.astype(jnp.float32)
        expanded = self.feed_forward(
            self.feed_forward_norm(hidden).astype(self.dtype), bits.get("intermediate")
        )
        expanded = dropout(expanded, self.output_dropout, bits.get("output"))
        return (hidden + expanded.astype(jnp.float32)).astype(self.dtype)


class T5Encoder(TransformerEncoder):
    """T5 / mT5: shared token embeddings, pre-norm layers sharing one relative position bias, a final RMS
    norm.

    A checkpoint is a `T5EncoderModel` ("shared.weight", "encoder.block.0. ...",
    "encoder.final_layer_norm.weight") or a full `T5Model` / `T5ForConditionalGeneration`, whose decoder
    and (untied, in older files) language-model head are kept aside and written back unchanged.

    Older files also hold the embeddings' tied copies "encoder.embed_tokens.weight" and
    "decoder.embed_tokens.weight". transformers embeds the encoder's input with the first when a file
    holds it, so each must equal "shared.weight" (else loading stops, naming both); neither is written on
    save, as transformers' save_pretrained writes tied tensors once and reties them on load. Written back
    unchanged, the copies would keep the embeddings from before training.
    """

    uses_token_type_ids = False
    checkpoint_prefix = ""
    partition_rules: ClassVar[PartitionRules] = (
        (r"embeddings/embedding", ("vocab", "embed")),
        (r"layers/\d+/attention/(query|key|value)/kernel", ("embed", "heads")),
        (r"layers/\d+/attention/output/kernel", ("heads", "embed")),
        (r"layers/\d+/feed_forward/(input|gate)/kernel", ("embed", "mlp")),
        (r"layers/\d+/feed_forward/output/kernel", ("mlp", "embed")),
        (r"relative_attention_bias/embedding", (None, "heads")),
    )
    unused_keys = frozenset(("lm_head.weight",))
    tied_keys = (
        ("encoder.embed_tokens.weight", "shared.weight"),
        ("decoder.embed_tokens.weight", "shared.weight"),
    )

    def __init__(self, spec: T5Spec, *, dtype: Any = jnp.float32, rngs: nnx.Rngs):
        super().__init__(spec, dtype=dtype)
        self.embeddings = TokenEmbeddings.of_spec(spec, padding_idx=None, rngs=rngs)
        self.relative_attention_bias = Embedding(
            spec.num_buckets, spec.num_heads, init_std=spec.init_std, rngs=rngs
        )
        self.layers = nnx.List([T5Layer(spec, dtype=self.dtype, rngs=rngs) for _ in range(spec.num_layers)])
        self.final_norm = RMSNorm(spec.hidden_size, eps=spec.layer_norm_eps)

    @classmethod
    def spec_from_config(cls, config: PreTrainedConfig) -> T5Spec:
        validate_t5_config(config)
        rate = float(config.dropout_rate)
        return T5Spec(
            model_type=config.model_type,
            vocab_size=config.vocab_size,
            hidden_size=config.d_model,
            num_layers=config.num_layers,
            num_heads=config.num_heads,
            intermediate_size=config.d_ff,
            activation=config.dense_act_fn,
            layer_norm_eps=config.layer_norm_epsilon,
            max_positions=int(getattr(config, "n_positions", None) or T5_DEFAULT_MAX_LENGTH),
            init_std=config.initializer_factor,
            transformers_json=config_json(config),
            embedding_dropout=rate,
            attention_dropout=rate,
            attention_output_dropout=rate,
            output_dropout=rate,
            head_dim=config.d_kv,
            num_buckets=config.relative_attention_num_buckets,
            max_distance=config.relative_attention_max_distance,
            gated_feed_forward=bool(config.is_gated_act),
            num_decoder_layers=config.num_decoder_layers,
        )

    @classmethod
    def key_table(cls, num_layers: int, *, gated: bool = False) -> KeyTable:
        """The encoder's keys with the plain ("relu", wi / wo) or gated (wi_0 / wi_1 / wo) feed-forward
        layout; `key_mapping` picks the layout of a spec."""
        table = {
            **TokenEmbeddings.checkpoint_keys("shared", ("embeddings",)),
            **Embedding.checkpoint_keys(
                "encoder.block.0.layer.0.SelfAttention.relative_attention_bias", ("relative_attention_bias",)
            ),
            **RMSNorm.checkpoint_keys("encoder.final_layer_norm", ("final_norm",)),
        }
        for index in range(num_layers):
            table.update(T5Layer.checkpoint_keys(f"encoder.block.{index}", ("layers", index), gated=gated))
        return table

    @classmethod
    def key_mapping(cls, spec: EncoderSpec) -> KeyMapping:
        """The spec's feed-forward layout, and the decoder of a full T5 checkpoint among the unused keys."""
        assert isinstance(spec, T5Spec)
        table = cls.key_table(spec.num_layers, gated=spec.gated_feed_forward)
        unused = cls.unused_keys | decoder_keys(spec)
        return KeyMapping(spec.model_type, table, cls.checkpoint_prefix, unused, cls.tied_keys)

    def embed(
        self, input_ids: jax.Array, token_type_ids: jax.Array | None, position_ids: jax.Array | None
    ) -> jax.Array:
        """The shared token embeddings, unscaled."""
        return self.embeddings(input_ids)

    def attention_inputs(self, mask: jax.Array, positions: jax.Array) -> AttentionInputs:
        """The mask and the relative bias float32 [B, N, T, T]: the learned bias of the bucket of each
        query-key pair's position difference (positions within a packed text, so each text gets the bias
        it gets alone). The buckets of all differences -(T-1) ... T-1 are computed on the host."""
        length = positions.shape[1]
        spec = self.spec
        table = relative_position_buckets(
            np.arange(1 - length, length), num_buckets=spec.num_buckets, max_distance=spec.max_distance
        )
        relative = positions[:, None, :] - positions[:, :, None] + (length - 1)  # p_k - p_q, [B, T, T]
        bias = self.relative_attention_bias(jnp.take(jnp.asarray(table, jnp.int32), relative))
        return AttentionInputs(mask, bias=jnp.transpose(bias, (0, 3, 1, 2)))

    def last_hidden_state(self, hidden: jax.Array) -> jax.Array:
        """The final RMS norm of the last layer's output, in the compute dtype (dropout follows in
        `__call__`)."""
        return self.final_norm(hidden).astype(self.dtype)

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
        """`TransformerEncoder.__call__`, then T5's dropout after the final norm in train mode (its bits
        from a key split off `dropout_rng`), on the last hidden state and the last of the hidden states."""
        final_rng = None
        if dropout_rng is not None and self.spec.output_dropout > 0.0:
            dropout_rng, final_rng = jax.random.split(dropout_rng)
        out = super().__call__(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids=position_ids,
            output_hidden_states=output_hidden_states,
            dropout_rng=dropout_rng,
        )
        if final_rng is None:
            return out
        last = out[0] if output_hidden_states else out
        bits = jax.random.bits(final_rng, last.shape, jnp.uint32)
        last = dropout(last, self.spec.output_dropout, bits)
        return (last, (*out[1][:-1], last)) if output_hidden_states else last


def decoder_keys(spec: T5Spec) -> frozenset[str]:
    """The keys of the decoder of a full T5 checkpoint with the spec's decoder layers and feed-forward
    layout (self-attention, cross-attention, feed-forward, their norms, the relative biases)."""
    feed_forward = ("wi_0", "wi_1", "wo") if spec.gated_feed_forward else ("wi", "wo")
    keys = {
        "decoder.final_layer_norm.weight",
        "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
        # transformers ignores this one, which some old checkpoints hold
        "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight",
    }
    for index in range(spec.num_decoder_layers):
        block = f"decoder.block.{index}.layer"
        for projection in ("q", "k", "v", "o"):
            keys.add(f"{block}.0.SelfAttention.{projection}.weight")
            keys.add(f"{block}.1.EncDecAttention.{projection}.weight")
        keys.update(f"{block}.2.DenseReluDense.{name}.weight" for name in feed_forward)
        keys.update(f"{block}.{sub}.layer_norm.weight" for sub in range(3))
    return frozenset(keys)
