"""Building blocks shared by the encoders: dense, embeddings, norms, dropout, the gated feed-forward block.

Conventions (all encoders):
- Parameters are float32 `nnx.Param`s; dense kernels are stored `[in, out]` (the transpose of a torch
  `Linear.weight`), so a forward pass never transposes a weight. Each block's `checkpoint_keys` names
  the torch module's state-dict keys its parameters load from.
- Matmuls and activations run in the module's compute `dtype` (float32 or bfloat16); layer and RMS
  norms, residual sums and softmax run in float32.
- Dropout is inverted dropout as torch's train mode, applied only when a `jax.random` key is passed;
  with `None` the call is deterministic (eval mode). The key is an argument, never module state, so the
  call stays a pure function under `jax.jit`, `jax.grad` and `jax.pmap`. All random bits of one forward
  pass come from a single `jax.random.bits` call (`draw_dropout_bits`): XLA compiles every threefry
  call separately and slowly on CPU, and one key per dropout site made a tiny BERT's train-mode
  forward take over ten times longer to compile than its eval forward.

Attention (the mask, rotary positions, the attention blocks) is in `attention.py`; the post-LN layer of
the BERT-style families in `post_norm.py`.
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


class Dense(nnx.Module):
    """y = x @ kernel + bias in the compute dtype; kernel [in, out] and bias [out] stored in float32.

    With `use_bias=False` there is no bias (y = x @ kernel), as in a torch `Linear(bias=False)`.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        dtype: jnp.dtype,
        init_std: float,
        rngs: nnx.Rngs,
        use_bias: bool = True,
    ):
        self.kernel = nnx.Param(init_std * jax.random.normal(rngs.params(), (in_features, out_features)))
        self.bias = nnx.Param(jnp.zeros((out_features,))) if use_bias else None
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        """x [..., in] in the compute dtype -> [..., out] in the compute dtype."""
        y = x @ self.kernel[...].astype(self.dtype)
        return y if self.bias is None else y + self.bias[...].astype(self.dtype)

    @staticmethod
    def checkpoint_keys(name: str, path: ParamPath, *, use_bias: bool = True) -> KeyTable:
        """torch `Linear` `name`: weight [out, in] (transposed), bias [out] -> kernel, bias below `path`."""
        table: KeyTable = {f"{name}.weight": ((*path, "kernel"), True)}
        if use_bias:
            table[f"{name}.bias"] = ((*path, "bias"), False)
        return table


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


class TokenEmbeddings(Embedding):
    """The token table of a model whose positions enter its attention (rotary), not its embeddings.

    As torch's `Embedding(padding_idx=...)`, the row of `padding_idx` (None: no such row) gets no
    gradient: decoder tokenizers often pad with a token that also ends every text (Qwen3's
    <|endoftext|>), so the row is used, and training it would differ from torch.

    Attributes:
        max_length: the longest sequence the model takes (its config's max_position_embeddings).
    """

    def __init__(
        self,
        num_embeddings: int,
        features: int,
        *,
        max_length: int,
        padding_idx: int | None,
        init_std: float,
        rngs: nnx.Rngs,
    ):
        super().__init__(num_embeddings, features, init_std=init_std, rngs=rngs)
        self.max_length = max_length
        self.padding_idx = padding_idx

    @classmethod
    def of_spec(cls, spec: EncoderSpec, *, padding_idx: int | None, rngs: nnx.Rngs) -> TokenEmbeddings:
        """The table of `spec`: vocab_size rows of hidden_size, max_positions long, init_std."""
        return cls(
            spec.vocab_size,
            spec.hidden_size,
            max_length=spec.max_positions,
            padding_idx=padding_idx,
            init_std=spec.init_std,
            rngs=rngs,
        )

    def __call__(self, ids: jax.Array) -> jax.Array:
        """ids [B, T] int -> [B, T, features] float32."""
        vectors = super().__call__(ids)
        if self.padding_idx is None:
            return vectors
        return jnp.where((ids == self.padding_idx)[..., None], jax.lax.stop_gradient(vectors), vectors)


class LayerNorm(nnx.Module):
    """torch.nn.LayerNorm over the last axis in float32: (x - mean) / sqrt(var + eps) * scale + bias, the
    bias only with `use_bias` (torch's `bias=False`, ModernBERT's norm_bias=False norms)."""

    def __init__(self, features: int, *, eps: float, use_bias: bool = True):
        self.scale = nnx.Param(jnp.ones((features,)))
        self.bias = nnx.Param(jnp.zeros((features,))) if use_bias else None
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        """x [..., features] any float dtype -> float32 [..., features] (biased variance, as torch)."""
        x = x.astype(jnp.float32)
        centered = x - jnp.mean(x, axis=-1, keepdims=True)
        variance = jnp.mean(jnp.square(centered), axis=-1, keepdims=True)
        normed = centered * jax.lax.rsqrt(variance + self.eps) * self.scale[...]
        return normed if self.bias is None else normed + self.bias[...]

    @staticmethod
    def checkpoint_keys(name: str, path: ParamPath, *, use_bias: bool = True) -> KeyTable:
        """torch `LayerNorm` `name`: weight (and bias) [features] -> scale (and bias) below `path`."""
        table: KeyTable = {f"{name}.weight": ((*path, "scale"), False)}
        if use_bias:
            table[f"{name}.bias"] = ((*path, "bias"), False)
        return table


class RMSNorm(nnx.Module):
    """RMS norm over the last axis in float32 (T5, Llama, Qwen3): x / sqrt(mean(x^2) + eps) * scale."""

    def __init__(self, features: int, *, eps: float):
        self.scale = nnx.Param(jnp.ones((features,)))
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        """x [..., features] any float dtype -> float32 [..., features]."""
        x = x.astype(jnp.float32)
        return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + self.eps) * self.scale[...]

    @staticmethod
    def checkpoint_keys(name: str, path: ParamPath) -> KeyTable:
        """transformers' RMSNorm `name`: weight [features] -> scale below `path`."""
        return {f"{name}.weight": ((*path, "scale"), False)}


# Folded into a forward pass's dropout key to seed the modules' own dropout keys (`seed_dropout_keys`).
MODULE_DROPOUT_STREAM = 2**31 - 3


class DropoutKey(nnx.Variable):
    """A module's own dropout key (uint32 [2]) for one forward pass, for dropout sites that the layers'
    bits (`draw_dropout_bits`) do not reach: a LoRA adapter's input dropout. The encoder sets it at the
    start of each forward pass (`seed_dropout_keys`); it is no parameter (nothing trains or saves it)."""


def seed_dropout_keys(root: nnx.Module, dropout_rng: jax.Array | None) -> None:
    """Sets every module of `root` that holds a `dropout_key` for this forward pass: in train mode (a
    `dropout_rng`) the i-th such module in graph order gets key fold_in(fold_in(dropout_rng,
    MODULE_DROPOUT_STREAM), i) and `dropout_active` True; in eval mode `dropout_active` False."""
    modules = [
        node
        for _, node in nnx.iter_graph(root)
        if isinstance(node, nnx.Module) and isinstance(getattr(node, "dropout_key", None), DropoutKey)
    ]
    stream = None if dropout_rng is None else jax.random.fold_in(dropout_rng, MODULE_DROPOUT_STREAM)
    for index, module in enumerate(modules):
        module.dropout_active = stream is not None
        if stream is not None:
            key = jax.random.fold_in(stream, index)
            if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
                key = jax.random.key_data(key)
            # A new variable rather than an update: the one merged in may belong to an outer trace (the
            # frozen part of a train state), which this trace cannot mutate.
            module.dropout_key = DropoutKey(key)


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


class GatedMLP(nnx.Module):
    """The gated feed-forward block of decoder families: out = (act(x W_gate) * (x W_up)) W_down,
    projections without bias (SwiGLU with silu: Llama, Qwen; GeGLU with gelu: Gemma)."""

    CHECKPOINT_NAMES = {"gate": "gate_proj", "up": "up_proj", "down": "down_proj"}

    def __init__(
        self,
        width: int,
        intermediate_size: int,
        *,
        activation: str,
        dtype: jnp.dtype,
        init_std: float,
        rngs: nnx.Rngs,
    ):
        dense = partial(Dense, dtype=dtype, init_std=init_std, rngs=rngs, use_bias=False)
        self.gate = dense(width, intermediate_size)
        self.up = dense(width, intermediate_size)
        self.down = dense(intermediate_size, width)
        self.activation = activation

    @classmethod
    def checkpoint_keys(cls, name: str, path: ParamPath) -> KeyTable:
        """transformers' MLP module `name` (gate_proj, up_proj, down_proj) -> parameters below `path`."""
        table: KeyTable = {}
        for ours, theirs in cls.CHECKPOINT_NAMES.items():
            table.update(Dense.checkpoint_keys(f"{name}.{theirs}", (*path, ours), use_bias=False))
        return table

    def __call__(self, x: jax.Array) -> jax.Array:
        """x [..., H] compute dtype -> [..., H] compute dtype."""
        return self.down(ACTIVATIONS[self.activation](self.gate(x)) * self.up(x))


class FusedGatedMLP(nnx.Module):
    """A gated feed-forward block with one fused input projection (ModernBERT's GeGLU):

    [u, g] = x W_i + b_i (W_i [H, 2I], u its first I outputs, g the last I);
    out = dropout(act(u) * g) W_o + b_o, the biases only with `use_bias`.
    The dropout site "mlp" [B, T, I] exists when `dropout_rate` is non-zero.
    """

    def __init__(
        self,
        width: int,
        intermediate_size: int,
        *,
        activation: str,
        use_bias: bool,
        dropout_rate: float,
        dtype: jnp.dtype,
        init_std: float,
        rngs: nnx.Rngs,
    ):
        dense = partial(Dense, dtype=dtype, init_std=init_std, rngs=rngs, use_bias=use_bias)
        self.fused_input = dense(width, 2 * intermediate_size)
        self.output = dense(intermediate_size, width)
        self.intermediate_size = intermediate_size
        self.activation = activation
        self.dropout_rate = dropout_rate

    @staticmethod
    def checkpoint_keys(
        name: str, path: ParamPath, *, use_bias: bool, input_name: str = "Wi", output_name: str = "Wo"
    ) -> KeyTable:
        """The MLP module `name` (its fused input and output Linears, ModernBERT's "Wi" and "Wo") ->
        parameters below `path`."""
        return {
            **Dense.checkpoint_keys(f"{name}.{input_name}", (*path, "fused_input"), use_bias=use_bias),
            **Dense.checkpoint_keys(f"{name}.{output_name}", (*path, "output"), use_bias=use_bias),
        }

    def dropout_shapes(self, batch: int, length: int) -> dict[str, tuple[int, ...]]:
        """The "mlp" site on the gated activations, when the rate is non-zero."""
        return {"mlp": (batch, length, self.intermediate_size)} if self.dropout_rate > 0.0 else {}

    def __call__(self, x: jax.Array, dropout_bits: jax.Array | None = None) -> jax.Array:
        """x [..., H] compute dtype; dropout_bits uint32 [..., I] or None -> [..., H] compute dtype."""
        activated, gate = jnp.split(self.fused_input(x), 2, axis=-1)
        gated = ACTIVATIONS[self.activation](activated) * gate
        return self.output(dropout(gated, self.dropout_rate, dropout_bits))


class OffsetRMSNorm(RMSNorm):
    """RMS norm whose stored weight is an offset from the scale (Gemma): x / sqrt(mean(x^2) + eps) *
    (offset + weight), all in float32, the weight initialised to zeros (a scale of `offset`).

    The sum offset + weight is formed in float32 before multiplying, as Gemma's reference (not
    x_normed * weight + x_normed, which rounds differently). Loads from the same key as `RMSNorm`.
    """

    def __init__(self, features: int, *, eps: float, offset: float = 1.0):
        super().__init__(features, eps=eps)
        self.scale = nnx.Param(jnp.zeros((features,)))
        self.offset = offset

    def __call__(self, x: jax.Array) -> jax.Array:
        """x [..., features] any float dtype -> float32 [..., features]."""
        x = x.astype(jnp.float32)
        normed = x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + self.eps)
        return normed * (self.offset + self.scale[...])
