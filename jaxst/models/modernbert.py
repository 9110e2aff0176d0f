"""ModernBERT (modernbert-embed, gte-modernbert): transformers' `ModernBertModel`, a bidirectional pre-norm
encoder whose layers alternate global attention and local (sliding-window) attention.

- Embeddings: LayerNorm(token embedding), then dropout; no positions and no token types.
- Layer i: a = h + attention(LN_a(h)) (LN_a the identity in layer 0); out = a + GeGLU(LN_m(a)), the
  attention with a fused query / key / value projection and rotary positions. A local layer attends keys
  at most local_attention // 2 positions away on either side and uses the local rotary base.
- The last hidden state is the final LayerNorm of the last layer's output.
- norm_bias, attention_bias and mlp_bias say whether the norms, the attention projections and the MLP
  projections have biases (all False in the released models).

Within a packed row the window counts positions within a text, and the rotary positions restart at each
text, so a packed text's outputs equal those of the text alone. A padding position with no text token
within its window (left padding longer than half the window) gets a zero attention output in a local
layer, as transformers' sdpa path gives it (its eager path differs there, at padding positions only).
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from jaxst.io.hf import KeyMapping, KeyTable, ParamPath
from jaxst.models.attention import AttentionInputs, apply_rotary, attention, rotary_angles, window_mask
from jaxst.models.config import (
    UnsupportedConfigError,
    require_activation,
    require_heads_divide_width,
    require_probabilities,
)
from jaxst.models.encoder import PartitionRules, TransformerEncoder
from jaxst.models.layers import Dense, FusedGatedMLP, LayerNorm, TokenEmbeddings, dropout
from jaxst.models.spec import EncoderSpec

if TYPE_CHECKING:
    from transformers import PreTrainedConfig

GLOBAL, LOCAL = "full_attention", "sliding_attention"  # transformers' layer_types


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModernBertSpec(EncoderSpec):
    """EncoderSpec plus ModernBERT's alternating attention, rotary bases, optional biases and MLP dropout.

    Attributes:
        local_layers: per layer, whether it attends locally (layer_types "sliding_attention").
        half_window: how far a local layer's query sees on either side (local_attention // 2).
        global_rope_theta, local_rope_theta: the rotary bases of the global and the local layers.
        norm_bias, attention_bias, mlp_bias: whether the layer norms, the attention projections and the
            MLP projections have biases.
        mlp_dropout: dropout rate on the MLP's gated activations.
        padding_token_id: the config's pad_token_id, whose embedding row gets no gradient, or None.
    """

    local_layers: tuple[bool, ...]
    half_window: int
    global_rope_theta: float
    local_rope_theta: float
    norm_bias: bool
    attention_bias: bool
    mlp_bias: bool
    mlp_dropout: float
    padding_token_id: int | None

    @property
    def head_dim(self) -> int:
        """The width D = H / N of each attention head."""
        return self.hidden_size // self.num_heads


def _refuse(config: PreTrainedConfig, option: str, value: Any, supported: str) -> UnsupportedConfigError:
    return UnsupportedConfigError(
        f"{config.model_type} config option {option}={value!r} is not supported by jaxst "
        f"(supported: {supported})"
    )


def _rope_theta(config: PreTrainedConfig, layer_type: str) -> float:
    """The rotary base of `layer_type` layers, whose RoPE must be the "default" kind."""
    parameters = dict((config.rope_parameters or {}).get(layer_type) or {})
    rope_type = parameters.get("rope_type", "default")
    if rope_type != "default":
        raise _refuse(config, f"rope_parameters[{layer_type!r}].rope_type", rope_type, "'default'")
    return float(parameters["rope_theta"])


def validate_modernbert_config(config: PreTrainedConfig) -> None:
    """Refuse the ModernBERT config options the encoder does not implement, each by name.

    Implemented: any pattern of "full_attention" and "sliding_attention" layer_types (older configs'
    global_attn_every_n_layers, which transformers turns into layer_types), local_attention, the
    default RoPE with global and local bases, norm_bias / attention_bias / mlp_bias, the three dropout
    rates. Ignored, as they do not change the encoder's numbers: the masked-language-model and
    classifier heads' options (decoder_bias, classifier_*, sparse_prediction, sparse_pred_ignore_index,
    tie_word_embeddings; the head tensors are kept aside and written back), deterministic_flash_attn and
    reference_compile (kernel choices), initializer_cutoff_factor (initialisation only).
    """
    require_activation(config, "hidden_activation")
    require_heads_divide_width(config, config.hidden_size, config.num_attention_heads)
    require_probabilities(config, "attention_dropout", "embedding_dropout", "mlp_dropout")
    layer_types = list(config.layer_types)
    if len(layer_types) != config.num_hidden_layers or set(layer_types) - {GLOBAL, LOCAL}:
        raise _refuse(
            config, "layer_types", layer_types, f"{config.num_hidden_layers} of {GLOBAL!r}, {LOCAL!r}"
        )
    if not isinstance(config.local_attention, int) or config.local_attention < 0:
        raise _refuse(config, "local_attention", config.local_attention, "a window of 0 or more tokens")
    width = config.hidden_size // config.num_attention_heads
    head_dim = getattr(config, "head_dim", None)
    if head_dim not in (None, width):  # transformers' rotary would use it, its attention would not
        raise _refuse(config, "head_dim", head_dim, f"hidden_size / num_attention_heads = {width}")
    for layer_type in (GLOBAL, LOCAL):  # both are read, whether or not a layer of the type exists
        _rope_theta(config, layer_type)


class ModernBertAttention(nnx.Module):
    """Self-attention with one fused query / key / value projection and rotary positions:

    [q, k, v] = x W_qkv + b_qkv (N heads of D each); out = dropout(attention(rope(q), rope(k), v) W_o + b_o),
    the biases only with `use_bias`; the output dropout has the attention-probability dropout's rate.
    """

    def __init__(
        self,
        width: int,
        *,
        num_heads: int,
        use_bias: bool,
        dropout_rate: float,
        dtype: jnp.dtype,
        init_std: float,
        rngs: nnx.Rngs,
    ):
        dense = partial(Dense, dtype=dtype, init_std=init_std, rngs=rngs, use_bias=use_bias)
        self.qkv = dense(width, 3 * width)
        self.output = dense(width, width)
        self.width = width
        self.num_heads = num_heads
        self.dropout_rate = dropout_rate
        self.dtype = dtype

    @staticmethod
    def checkpoint_keys(name: str, path: ParamPath, *, use_bias: bool) -> KeyTable:
        """transformers' `ModernBertAttention` `name` (Wqkv, Wo) -> parameters below `path`."""
        return {
            **Dense.checkpoint_keys(f"{name}.Wqkv", (*path, "qkv"), use_bias=use_bias),
            **Dense.checkpoint_keys(f"{name}.Wo", (*path, "output"), use_bias=use_bias),
        }

    def dropout_shapes(self, batch: int, length: int) -> dict[str, tuple[int, ...]]:
        """The attention-probability and output dropout sites, when the rate is non-zero."""
        if self.dropout_rate == 0.0:
            return {}
        return {
            "attention": (batch, self.num_heads, length, length),
            "attention_output": (batch, length, self.width),
        }

    def __call__(
        self,
        hidden: jax.Array,
        mask: jax.Array,
        rotary: tuple[jax.Array, jax.Array],
        dropout_bits: dict[str, jax.Array] | None = None,
    ) -> jax.Array:
        """hidden [B, T, H] compute dtype; mask bool [B, 1, T, T]; rotary (cos, sin) [B, T, D];
        dropout_bits: the sites' uint32 bits, None in eval mode -> [B, T, H] compute dtype."""
        batch, length, width = hidden.shape
        bits = dropout_bits or {}
        # Wqkv's outputs are the query heads, then the key heads, then the value heads.
        query, key, value = (
            part.reshape(batch, length, self.num_heads, width // self.num_heads)
            for part in jnp.split(self.qkv(hidden), 3, axis=-1)
        )
        context = attention(
            apply_rotary(query, rotary).astype(self.dtype),
            apply_rotary(key, rotary).astype(self.dtype),
            value,
            mask,
            None,
            dropout_rate=self.dropout_rate,
            dropout_bits=bits.get("attention"),
        )
        out = self.output(context.reshape(batch, length, width))
        return dropout(out, self.dropout_rate, bits.get("attention_output"))


class ModernBertLayer(nnx.Module):
    """One pre-norm layer, residual sums in float32 (LN_a absent in layer 0, as in transformers):

    a = h + attention(LN_a(h));  out = a + GeGLU(LN_m(a))
    """

    def __init__(self, spec: ModernBertSpec, index: int, *, dtype: jnp.dtype, rngs: nnx.Rngs):
        """Layer `index` of `spec`: local or global, sizes, biases, epsilon, dropout rates, init scale."""
        width = spec.hidden_size
        norm = partial(LayerNorm, width, eps=spec.layer_norm_eps, use_bias=spec.norm_bias)
        self.attention_norm = norm() if index > 0 else None
        self.attention = ModernBertAttention(
            width,
            num_heads=spec.num_heads,
            use_bias=spec.attention_bias,
            dropout_rate=spec.attention_dropout,
            dtype=dtype,
            init_std=spec.init_std,
            rngs=rngs,
        )
        self.mlp_norm = norm()
        self.mlp = FusedGatedMLP(
            width,
            spec.intermediate_size,
            activation=spec.activation,
            use_bias=spec.mlp_bias,
            dropout_rate=spec.mlp_dropout,
            dtype=dtype,
            init_std=spec.init_std,
            rngs=rngs,
        )
        self.local = spec.local_layers[index]
        self.dtype = dtype

    @staticmethod
    def checkpoint_keys(name: str, path: ParamPath, spec_flags: dict[str, bool], *, first: bool) -> KeyTable:
        """transformers' `ModernBertEncoderLayer` `name` -> parameters below `path`; spec_flags: norm_bias,
        attention_bias, mlp_bias; the first layer has no attn_norm."""
        norm = partial(LayerNorm.checkpoint_keys, use_bias=spec_flags["norm_bias"])
        table = {
            **ModernBertAttention.checkpoint_keys(
                f"{name}.attn", (*path, "attention"), use_bias=spec_flags["attention_bias"]
            ),
            **norm(f"{name}.mlp_norm", (*path, "mlp_norm")),
            **FusedGatedMLP.checkpoint_keys(f"{name}.mlp", (*path, "mlp"), use_bias=spec_flags["mlp_bias"]),
        }
        if not first:
            table.update(norm(f"{name}.attn_norm", (*path, "attention_norm")))
        return table

    def dropout_shapes(self, batch: int, length: int) -> dict[str, tuple[int, ...]]:
        """The attention's sites and the MLP's "mlp" site, those with a non-zero rate."""
        return {**self.attention.dropout_shapes(batch, length), **self.mlp.dropout_shapes(batch, length)}

    def __call__(
        self,
        hidden: jax.Array,
        inputs: AttentionInputs,
        dropout_bits: dict[str, jax.Array] | None = None,
    ) -> jax.Array:
        """hidden [B, T, H] compute dtype; inputs: the global and local masks and rotary angles;
        dropout_bits: site name -> uint32 bits (see `dropout_shapes`), None in eval mode -> [B, T, H]."""
        bits = dropout_bits or {}
        if self.local:
            mask, rotary = inputs.local_mask, inputs.local_rotary
        else:
            mask, rotary = inputs.mask, inputs.rotary
        normed = hidden if self.attention_norm is None else self.attention_norm(hidden).astype(self.dtype)
        attended = self.attention(normed, mask, rotary, bits)
        hidden = hidden.astype(jnp.float32) + attended.astype(jnp.float32)
        expanded = self.mlp(self.mlp_norm(hidden).astype(self.dtype), bits.get("mlp"))
        return (hidden + expanded.astype(jnp.float32)).astype(self.dtype)


class ModernBertEncoder(TransformerEncoder):
    """ModernBERT: normed token embeddings, pre-norm layers alternating global and local attention with
    rotary positions, a final LayerNorm.

    A checkpoint is a `ModernBertModel` (keys "embeddings.tok_embeddings.weight", "layers.0. ...",
    "final_norm.weight") or a model with heads whose body keys carry the prefix "model."
    (`ModernBertForMaskedLM`, whose prediction head and decoder are kept aside and written back).
    """

    uses_token_type_ids = False
    checkpoint_prefix = "model."
    partition_rules: ClassVar[PartitionRules] = (
        (r"embeddings/embedding", ("vocab", "embed")),
        (r"layers/\d+/attention/qkv/kernel", ("embed", "heads")),
        (r"layers/\d+/attention/output/kernel", ("heads", "embed")),
        (r"layers/\d+/mlp/fused_input/kernel", ("embed", "mlp")),
        (r"layers/\d+/mlp/output/kernel", ("mlp", "embed")),
    )
    unused_keys = frozenset(
        (
            "head.dense.weight",
            "head.dense.bias",
            "head.norm.weight",
            "head.norm.bias",
            "decoder.weight",
            "decoder.bias",
            "classifier.weight",
            "classifier.bias",
        )
    )

    def __init__(self, spec: ModernBertSpec, *, dtype: Any = jnp.float32, rngs: nnx.Rngs):
        super().__init__(spec, dtype=dtype)
        self.embeddings = TokenEmbeddings.of_spec(spec, padding_idx=spec.padding_token_id, rngs=rngs)
        norm = partial(LayerNorm, spec.hidden_size, eps=spec.layer_norm_eps, use_bias=spec.norm_bias)
        self.embedding_norm = norm()
        self.layers = nnx.List(
            [ModernBertLayer(spec, index, dtype=self.dtype, rngs=rngs) for index in range(spec.num_layers)]
        )
        self.final_norm = norm()

    @classmethod
    def spec_from_config(cls, config: PreTrainedConfig) -> ModernBertSpec:
        validate_modernbert_config(config)
        return ModernBertSpec.from_config(
            config,
            intermediate_size=config.intermediate_size,
            activation=config.hidden_activation,
            layer_norm_eps=config.norm_eps,
            attention_dropout=float(config.attention_dropout),
            embedding_dropout=float(config.embedding_dropout),
            attention_output_dropout=float(config.attention_dropout),
            local_layers=tuple(kind == LOCAL for kind in config.layer_types),
            half_window=config.local_attention // 2,
            global_rope_theta=_rope_theta(config, GLOBAL),
            local_rope_theta=_rope_theta(config, LOCAL),
            norm_bias=bool(config.norm_bias),
            attention_bias=bool(config.attention_bias),
            mlp_bias=bool(config.mlp_bias),
            mlp_dropout=float(config.mlp_dropout),
            padding_token_id=config.pad_token_id,
        )

    @classmethod
    def key_table(
        cls, num_layers: int, *, norm_bias: bool = False, attention_bias: bool = False, mlp_bias: bool = False
    ) -> KeyTable:
        """The checkpoint keys of `num_layers` layers; the bias flags as the config's (defaults: its
        defaults, without biases)."""
        flags = {"norm_bias": norm_bias, "attention_bias": attention_bias, "mlp_bias": mlp_bias}
        norm = partial(LayerNorm.checkpoint_keys, use_bias=norm_bias)
        table = {
            **TokenEmbeddings.checkpoint_keys("embeddings.tok_embeddings", ("embeddings",)),
            **norm("embeddings.norm", ("embedding_norm",)),
            **norm("final_norm", ("final_norm",)),
        }
        for index in range(num_layers):
            table.update(
                ModernBertLayer.checkpoint_keys(f"layers.{index}", ("layers", index), flags, first=index == 0)
            )
        return table

    @classmethod
    def key_mapping(cls, spec: ModernBertSpec) -> KeyMapping:
        """The key table of the spec's layers and biases."""
        table = cls.key_table(
            spec.num_layers,
            norm_bias=spec.norm_bias,
            attention_bias=spec.attention_bias,
            mlp_bias=spec.mlp_bias,
        )
        return KeyMapping(spec.model_type, table, cls.checkpoint_prefix, cls.unused_keys)

    def embed(
        self, input_ids: jax.Array, token_type_ids: jax.Array | None, position_ids: jax.Array | None
    ) -> jax.Array:
        return self.embedding_norm(self.embeddings(input_ids))

    def attention_inputs(self, mask: jax.Array, positions: jax.Array) -> AttentionInputs:
        """The global mask and rotary angles, and for the local layers the mask within the window and the
        angles of the local base."""
        spec = self.spec
        window = window_mask(positions, before=spec.half_window, after=spec.half_window)
        return AttentionInputs(
            mask,
            rotary=rotary_angles(positions, spec.head_dim, spec.global_rope_theta),
            local_mask=mask & window,
            local_rotary=rotary_angles(positions, spec.head_dim, spec.local_rope_theta),
        )

    def last_hidden_state(self, hidden: jax.Array) -> jax.Array:
        """The final LayerNorm of the last layer's output, in the compute dtype."""
        return self.final_norm(hidden).astype(self.dtype)
