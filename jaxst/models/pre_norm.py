"""The pre-norm residual layer of the decoder families (qwen3.py, gemma3.py): a norm before each block,
optionally one after it (Gemma 3), the residual sums in float32."""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
from flax import nnx

from jaxst.io.hf import KeyTable, ParamPath
from jaxst.models.attention import AttentionInputs, GroupedQueryAttention
from jaxst.models.layers import GatedMLP, RMSNorm


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
