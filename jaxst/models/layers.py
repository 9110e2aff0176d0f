"""Blocks shared by the encoders: dense, embedding, layer norm, dropout, attention, a post-LN layer.

Conventions (all encoders):
- Parameters are float32 `nnx.Param`s; dense kernels are stored `[in, out]` (the transpose of a torch
  `Linear.weight`), so a forward pass never transposes a weight. Each block's `checkpoint_keys` names
  the torch module's state-dict keys its parameters load from.
- Matmuls and activations run in the module's compute `dtype` (float32 or bfloat16); layer norm,
  residual sums and softmax run in float32.
- Dropout is inverted dropout as torch's train mode, applied only when a `jax.random` key is passed;
  with `None` the call is deterministic (eval mode). The key is an argument, never module state, so the
  call stays a pure function under `jax.jit`, `jax.grad` and `jax.pmap`. All random bits of one forward
  pass come from a single `jax.random.bits` call (`draw_dropout_bits`): XLA compiles every threefry
  call separately and slowly on CPU, and one key per dropout site made a tiny BERT's train-mode
  forward take over ten times longer to compile than its eval forward.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxst.io.hf import KeyTable, ParamPath
from jaxst.models.spec import EncoderSpec

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    # transformers' ACT2FN names: "gelu" is the exact erf form, the others the tanh approximation
    # 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) written with different constants' roundings.
    "gelu": partial(jax.nn.gelu, approximate=False),
    "gelu_python": partial(jax.nn.gelu, approximate=False),
    "gelu_new": partial(jax.nn.gelu, approximate=True),
    "gelu_pytorch_tanh": partial(jax.nn.gelu, approximate=True),
    "gelu_python_tanh": partial(jax.nn.gelu, approximate=True),
    "gelu_accurate": partial(jax.nn.gelu, approximate=True),
    "gelu_fast": partial(jax.nn.gelu, approximate=True),
    "quick_gelu": lambda x: x * jax.nn.sigmoid(1.702 * x),
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "tanh": jnp.tanh,
}

# The value jax.nn.dot_product_attention gives masked logits, so both attention paths agree exactly.
_MASKED_LOGIT = -0.7 * float(jnp.finfo(jnp.float32).max)


class Dense(nnx.Module):
    """y = x @ kernel + bias in the compute dtype; kernel [in, out] and bias [out] stored in float32."""

    def __init__(
        self, in_features: int, out_features: int, *, dtype: jnp.dtype, init_std: float, rngs: nnx.Rngs
    ):
        self.kernel = nnx.Param(init_std * jax.random.normal(rngs.params(), (in_features, out_features)))
        self.bias = nnx.Param(jnp.zeros((out_features,)))
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        """x [..., in] in the compute dtype -> [..., out] in the compute dtype."""
        return x @ self.kernel[...].astype(self.dtype) + self.bias[...].astype(self.dtype)

    @staticmethod
    def checkpoint_keys(name: str, path: ParamPath) -> KeyTable:
        """torch `Linear` `name`: weight [out, in] (transposed), bias [out] -> kernel, bias below `path`."""
        return {f"{name}.weight": ((*path, "kernel"), True), f"{name}.bias": ((*path, "bias"), False)}


class Embedding(nnx.Module):
    """Lookup table [num_embeddings, features] in float32; out-of-range ids give NaN rows (jnp.take fill)."""

    def __init__(self, num_embeddings: int, features: int, *, init_std: float, rngs: nnx.Rngs):
        self.embedding = nnx.Param(init_std * jax.random.normal(rngs.params(), (num_embeddings, features)))

    def __call__(self, ids: jax.Array) -> jax.Array:
        """ids [...] int -> [..., features] float32."""
        return jnp.take(self.embedding[...], ids, axis=0)

    @staticmethod
    def checkpoint_keys(name: str, path: ParamPath) -> KeyTable:
        """torch `Embedding` `name`: weight [num_embeddings, features] -> embedding below `path`."""
        return {f"{name}.weight": ((*path, "embedding"), False)}


class LayerNorm(nnx.Module):
    """torch.nn.LayerNorm over the last axis in float32: (x - mean) / sqrt(var + eps) * scale + bias."""

    def __init__(self, features: int, *, eps: float):
        self.scale = nnx.Param(jnp.ones((features,)))
        self.bias = nnx.Param(jnp.zeros((features,)))
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        """x [..., features] any float dtype -> float32 [..., features] (biased variance, as torch)."""
        x = x.astype(jnp.float32)
        centered = x - jnp.mean(x, axis=-1, keepdims=True)
        variance = jnp.mean(jnp.square(centered), axis=-1, keepdims=True)
        return centered * jax.lax.rsqrt(variance + self.eps) * self.scale[...] + self.bias[...]

    @staticmethod
    def checkpoint_keys(name: str, path: ParamPath) -> KeyTable:
        """torch `LayerNorm` `name`: weight and bias [features] -> scale, bias below `path`."""
        return {f"{name}.weight": ((*path, "scale"), False), f"{name}.bias": ((*path, "bias"), False)}


def draw_dropout_bits(
    rng: jax.Array, shapes: Sequence[Mapping[str, tuple[int, ...]]]
) -> list[dict[str, jax.Array]]:
    """Uniform uint32 bits for every dropout site of a forward pass, from one `jax.random.bits` call.

    shapes: per block (embeddings, then each layer), site name -> the shape of the array it drops.
    Returns the same structure with uint32 arrays of those shapes (independent, as slices of one draw).
    All bits of a pass exist at once: 4 bytes per dropped entry, B * N * T^2 of them per layer for the
    attention probabilities (a backward pass keeps these masks in any case).
    """
    sizes = [math.prod(shape) for block in shapes for shape in block.values()]
    flat = jax.random.bits(rng, (sum(sizes),), jnp.uint32)
    drawn, offset = [], 0
    for block in shapes:
        drawn.append({})
        for name, shape in block.items():
            drawn[-1][name] = flat[offset : offset + math.prod(shape)].reshape(shape)
            offset += math.prod(shape)
    return drawn


def dropout(x: jax.Array, rate: float, bits: jax.Array | None) -> jax.Array:
    """torch.nn.functional.dropout in train mode: zero each entry with probability `rate`, scale the rest.

    y = x * keep / (1 - rate) with keep = (bits >= rate * 2^32) for uniform uint32 `bits` of x's shape,
    so P(keep) = 1 - rate (to 2^-32) and E[y] = x. Identity when `bits` is None (eval mode).
    """
    if bits is None or rate == 0.0:
        return x
    keep = bits >= np.uint32(min(round(rate * 2**32), 2**32 - 1))
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))


def attention(
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    mask: jax.Array,
    bias: jax.Array | None,
    *,
    dropout_rate: float,
    dropout_bits: jax.Array | None,
) -> jax.Array:
    """Scaled dot-product attention over unmasked keys, optionally with attention-probability dropout.

    query, key, value [B, T, N, D] in the compute dtype; mask bool, broadcastable to [B, N, T, T], True
    where a query may attend a key ([B, 1, 1, T] for padding, [B, 1, T, T] for packed rows);
    bias float32 broadcastable to [B, N, T, T] (MPNet's relative position bias) or None;
    dropout_bits uint32 [B, N, T, T] (see `dropout`) or None.
    probs = softmax(q k^T / sqrt(D) + bias, masked keys excluded), in float32; out = probs v, [B, T, N, D].

    Without dropout this is `jax.nn.dot_product_attention`, its implementation left to JAX (JAX 0.10
    picks its XLA path on every backend; cuDNN would need an explicit `implementation="cudnn"`).
    That function cannot drop attention probabilities, so with dropout bits and a non-zero rate the
    same computation is written out with an explicit float32 softmax, then dropout on the probabilities
    exactly as torch's eager attention does in train mode. Masked logits get the value
    `jax.nn.dot_product_attention` uses, so the two paths agree when the rate is 0; a row whose keys
    are all masked (a padding row) attends uniformly instead of producing NaN.
    """
    scale = query.shape[-1] ** -0.5
    if dropout_bits is None or dropout_rate == 0.0:
        return jax.nn.dot_product_attention(query, key, value, bias=bias, mask=mask, scale=scale)
    logits = jnp.einsum("btnd,bsnd->bnts", query, key, preferred_element_type=jnp.float32) * scale
    if bias is not None:
        logits = logits + bias
    probs = jax.nn.softmax(jnp.where(mask, logits, _MASKED_LOGIT), axis=-1)
    probs = dropout(probs, dropout_rate, dropout_bits)
    return jnp.einsum("bnts,bsnd->btnd", probs.astype(value.dtype), value)


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
        mask: jax.Array,
        bias: jax.Array | None,
        dropout_bits: Mapping[str, jax.Array] | None = None,
    ) -> jax.Array:
        """hidden [B, T, H] compute dtype; mask bool [B, 1, 1 or T, T] (see `attention`); bias [1, N, T, T]
        or None;
        dropout_bits: site name -> uint32 bits (see `dropout_shapes`), None in eval mode -> [B, T, H]."""
        batch, length, width = hidden.shape
        bits = dropout_bits or {}

        def heads(x: jax.Array) -> jax.Array:
            return x.reshape(batch, length, self.num_heads, width // self.num_heads)

        context = attention(
            heads(self.query(hidden)),
            heads(self.key(hidden)),
            heads(self.value(hidden)),
            mask,
            bias,
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
