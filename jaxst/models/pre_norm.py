"""The body of the decoder families (qwen3.py, gemma3.py): token embeddings, then pre-norm residual
layers (a norm before each block, optionally one after it), then a final RMS norm."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from functools import partial
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from jaxst.io.hf import KeyTable, ParamPath
from jaxst.models.attention import AttentionInputs, GroupedQueryAttention
from jaxst.models.encoder import PartitionRules, TransformerEncoder
from jaxst.models.layers import GatedMLP, RMSNorm, TokenEmbeddings
from jaxst.models.spec import EncoderSpec


@dataclasses.dataclass(frozen=True, kw_only=True)
class DecoderSpec(EncoderSpec):
    """EncoderSpec plus the grouped-query heads and the padding token of a decoder family.

    Attributes:
        num_kv_heads: K key / value heads, each shared by N / K query heads.
        head_dim: D, the width of each attention head (N * D need not equal H).
        padding_token_id: the config's pad_token_id, whose embedding row gets no gradient, or None.
    """

    num_kv_heads: int
    head_dim: int
    padding_token_id: int | None


class PreNormLayer(nnx.Module):
    """One pre-norm layer, residual sums in float32:

    a = h + post_a(attention(norm_a(h)));  out = a + post_m(mlp(norm_m(a)))

    post_a, post_m: the norms after the blocks (`attention_output_norm`, `mlp_output_norm`: Gemma 3), or
    the identity when None (Qwen3). The norms return float32; the blocks take and return the compute
    dtype. A local layer attends under the inputs' local (sliding-window) mask and rotary angles.
    """

    NORMS = ("attention_norm", "attention_output_norm", "mlp_norm", "mlp_output_norm")

    def __init__(
        self,
        *,
        attention_norm: nnx.Module,
        attention: GroupedQueryAttention,
        mlp_norm: nnx.Module,
        mlp: GatedMLP,
        attention_output_norm: nnx.Module | None = None,
        mlp_output_norm: nnx.Module | None = None,
        local: bool = False,
        dtype: jnp.dtype,
    ):
        self.attention_norm = attention_norm
        self.attention = attention
        self.attention_output_norm = attention_output_norm
        self.mlp_norm = mlp_norm
        self.mlp = mlp
        self.mlp_output_norm = mlp_output_norm
        self.local = local
        self.dtype = dtype

    @classmethod
    def checkpoint_keys(cls, name: str, path: ParamPath, names: Mapping[str, str]) -> KeyTable:
        """A checkpoint layer `name` -> parameters below `path`.

        names: each submodule the layer has -> its checkpoint name within the layer, e.g.
        "attention_norm" -> "input_layernorm" (an RMS norm's key), "attention" -> "self_attn"
        (`GroupedQueryAttention`'s keys), "mlp" -> "mlp" (`GatedMLP`'s keys).
        """
        table: KeyTable = {}
        for ours, theirs in names.items():
            if ours in cls.NORMS:
                keys = RMSNorm.checkpoint_keys
            else:
                keys = {"attention": GroupedQueryAttention, "mlp": GatedMLP}[ours].checkpoint_keys
            table.update(keys(f"{name}.{theirs}", (*path, ours)))
        return table

    def dropout_shapes(self, batch: int, length: int) -> dict[str, tuple[int, ...]]:
        """The attention-probability dropout site, when the attention's dropout rate is non-zero."""
        return self.attention.dropout_shapes(batch, length)

    def __call__(
        self,
        hidden: jax.Array,
        inputs: AttentionInputs,
        dropout_bits: dict[str, jax.Array] | None = None,
    ) -> jax.Array:
        """hidden [B, T, H] compute dtype; inputs: the mask and rotary angles (and the local ones, for a
        family with local layers); dropout_bits: the "attention" site's uint32 bits (see
        `dropout_shapes`), None in eval mode -> [B, T, H] compute dtype."""
        if self.local:
            inputs = AttentionInputs(inputs.local_mask, rotary=inputs.local_rotary)
        attention_bits = (dropout_bits or {}).get("attention")
        attended = self.attention(self.attention_norm(hidden).astype(self.dtype), inputs, attention_bits)
        hidden = hidden.astype(jnp.float32) + _post(self.attention_output_norm, attended)
        expanded = self.mlp(self.mlp_norm(hidden).astype(self.dtype))
        return (hidden + _post(self.mlp_output_norm, expanded)).astype(self.dtype)


def _post(norm: nnx.Module | None, x: jax.Array) -> jax.Array:
    """norm(x) (float32), or x in float32 without a norm."""
    return x.astype(jnp.float32) if norm is None else norm(x)


class PreNormDecoder(TransformerEncoder):
    """A decoder used as an encoder: `TokenEmbeddings`, spec.num_layers `PreNormLayer`s, a final RMS norm
    (whose output is the last hidden state).

    A checkpoint is the family's base model (keys "embed_tokens.weight", "layers.0. ...", "norm.weight")
    or a model with heads whose keys carry the prefix "model." (`...ForCausalLM`, whose untied
    `lm_head.weight` is kept aside). A family names its layers' submodules in the checkpoint
    (`layer_names`, see `PreNormLayer.checkpoint_keys`; the norms after the blocks exist where it names
    them), picks its `norm_class`, and fills in `attention_inputs` and, where they differ from the
    defaults, `attention_scale` and `layer_is_local`. Its spec is a `DecoderSpec`.
    """

    uses_token_type_ids = False
    checkpoint_prefix = "model."
    unused_keys = frozenset(("lm_head.weight",))
    layer_names: ClassVar[Mapping[str, str]]
    norm_class: ClassVar[type[RMSNorm]] = RMSNorm
    partition_rules: ClassVar[PartitionRules] = (
        (r"embeddings/embedding", ("vocab", "embed")),
        (r"layers/\d+/attention/(query|key|value)/kernel", ("embed", "heads")),
        (r"layers/\d+/attention/output/kernel", ("heads", "embed")),
        (r"layers/\d+/mlp/(gate|up)/kernel", ("embed", "mlp")),
        (r"layers/\d+/mlp/down/kernel", ("mlp", "embed")),
    )

    spec: DecoderSpec

    def __init__(self, spec: DecoderSpec, *, dtype: Any = jnp.float32, rngs: nnx.Rngs):
        super().__init__(spec, dtype=dtype)
        self.embeddings = TokenEmbeddings.of_spec(spec, padding_idx=spec.padding_token_id, rngs=rngs)
        self.layers = nnx.List([self.build_layer(index, rngs) for index in range(spec.num_layers)])
        self.norm = self.norm_class(spec.hidden_size, eps=spec.layer_norm_eps)

    def build_layer(self, index: int, rngs: nnx.Rngs) -> PreNormLayer:
        """Layer `index` of the spec (sizes, grouped heads, activation, norm epsilon, attention dropout
        rate, init scale), computing in `self.dtype`: every norm a `norm_class`, those after the blocks
        only where `layer_names` names them, grouped-query attention with `norm_class` head norms and
        `attention_scale()`, a `GatedMLP`."""
        spec, dtype = self.spec, self.dtype
        width, norm = spec.hidden_size, partial(self.norm_class, eps=spec.layer_norm_eps)
        post_norms = "mlp_output_norm" in self.layer_names
        return PreNormLayer(
            attention_norm=norm(width),
            attention=GroupedQueryAttention(
                width,
                num_heads=spec.num_heads,
                num_kv_heads=spec.num_kv_heads,
                head_dim=spec.head_dim,
                head_norm=norm,
                scale=self.attention_scale(),
                dropout_rate=spec.attention_dropout,
                dtype=dtype,
                init_std=spec.init_std,
                rngs=rngs,
            ),
            attention_output_norm=norm(width) if post_norms else None,
            mlp_norm=norm(width),
            mlp=GatedMLP(
                width,
                spec.intermediate_size,
                activation=spec.activation,
                dtype=dtype,
                init_std=spec.init_std,
                rngs=rngs,
            ),
            mlp_output_norm=norm(width) if post_norms else None,
            local=self.layer_is_local(index),
            dtype=dtype,
        )

    def attention_scale(self) -> float | None:
        """The attention logit scale: None for 1 / sqrt(D)."""
        return None

    def layer_is_local(self, index: int) -> bool:
        """Whether layer `index` attends under the local (sliding-window) mask and rotary angles."""
        del index
        return False

    @classmethod
    def key_table(cls, num_layers: int) -> KeyTable:
        table = {
            **TokenEmbeddings.checkpoint_keys("embed_tokens", ("embeddings",)),
            **cls.norm_class.checkpoint_keys("norm", ("norm",)),
        }
        for index in range(num_layers):
            table.update(PreNormLayer.checkpoint_keys(f"layers.{index}", ("layers", index), cls.layer_names))
        return table

    def embed(
        self, input_ids: jax.Array, token_type_ids: jax.Array | None, position_ids: jax.Array | None
    ) -> jax.Array:
        return self.embeddings(input_ids)

    def last_hidden_state(self, hidden: jax.Array) -> jax.Array:
        """The final RMS norm of the last layer's output, in the compute dtype."""
        return self.norm(hidden).astype(self.dtype)
