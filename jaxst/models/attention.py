"""Attention shared by the encoders: one mask language, rotary positions, scaled dot-product attention
(with grouped key / value heads), and the grouped-query attention block of the decoder families.

One mask language: every family's attention mask comes from each token's text (segment id) and
position (`text_attention_mask`), so padded and packed rows, bidirectional and causal models, are
described alike, and every attention implementation receives the same description: the XLA path a
dense mask, the fused kernels of `fused_attention` the segment ids themselves (`TextMask`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxst.io.hf import KeyTable, ParamPath
from jaxst.models.fused_attention import FusedKernel, fused_attention, kernel_expresses
from jaxst.models.layers import Dense, RMSNorm, dropout

# The value jax.nn.dot_product_attention gives masked logits, so both attention paths agree exactly.
_MASKED_LOGIT = -0.7 * float(jnp.finfo(jnp.float32).max)


def text_attention_mask(segment_ids: jax.Array, positions: jax.Array, *, causal: bool) -> jax.Array:
    """The attention mask of every family, from each token's text and position: bool [B, 1, T, T].

    segment_ids int [B, T]: a number > 0 per text of a row (padded rows: the attention mask, 1 for the
    text's tokens), 0 for padding. positions int [B, T]: each token's position within its text.
    For query token q and key token k of a row, with their segment ids g and positions p:
    mask[b, 0, q, k] = (g_k != 0) and (g_q == g_k or g_q == 0) and (not causal or p_k <= p_q):
    a token attends the tokens of its own text (at positions up to its own when causal), never padding.
    A padding query attends every token of its row (up to its position when causal), as padding does
    in transformers' padded batches; its output is never used.
    """
    query_text, key_text = segment_ids[:, :, None], segment_ids[:, None, :]
    mask = (key_text != 0) & ((query_text == key_text) | (query_text == 0))
    if causal:
        mask &= positions[:, None, :] <= positions[:, :, None]
    return mask[:, None]


@partial(
    jax.tree_util.register_dataclass,
    data_fields=["segment_ids", "positions"],
    meta_fields=["causal", "kernel"],
)
@dataclasses.dataclass(frozen=True)
class TextMask:
    """The text mask described, not built: what a fused kernel takes in place of `text_attention_mask`.

    segment_ids, positions int [B, T] and causal as for `text_attention_mask`; kernel: the fused kernel
    `attention` runs (static). A dense mask combined with it by `&` (a sliding window) is the dense mask
    `dense() & other`, which `attention` computes on its XLA path.
    """

    segment_ids: jax.Array
    positions: jax.Array
    causal: bool
    kernel: FusedKernel

    def dense(self) -> jax.Array:
        """The mask bool [B, 1, T, T] (`text_attention_mask`)."""
        return text_attention_mask(self.segment_ids, self.positions, causal=self.causal)

    def __and__(self, other: jax.Array) -> jax.Array:
        return self.dense() & other


def window_mask(positions: jax.Array, *, before: int, after: int) -> jax.Array:
    """Local attention: bool [B, 1, T, T], True where key k lies within the query's window.

    positions int [B, T] as for `text_attention_mask`; mask[b, 0, q, k] = -after <= p_q - p_k <= before:
    a query attends at most `before` positions back and `after` ahead (a sliding window). Combined with
    `text_attention_mask` by `&`, so the window counts positions within a packed text, not the row.
    """
    distance = positions[:, :, None] - positions[:, None, :]  # p_q - p_k, [B, T, T]
    return ((distance <= before) & (distance >= -after))[:, None]


def relative_position_buckets(relative: np.ndarray, *, num_buckets: int, max_distance: int) -> np.ndarray:
    """T5's bidirectional relative position buckets, on the host: int64 of relative's shape.

    relative int: key position - query position (transformers' memory minus context position). Half the
    buckets are for keys after the query, half for the others; within a half, a distance |n| below
    max_exact = num_buckets // 4 gets its own bucket, larger distances share log-spaced buckets up to
    `max_distance` (all farther ones the last). The log is taken in float32 and the division by the
    float32 log(max_distance / max_exact) as transformers does, so the buckets agree exactly at the
    rounding boundaries (distances 16, 32, 64 with 32 buckets). T5 and MPNet both bucket this way.
    """
    relative = np.asarray(relative, dtype=np.int64)
    half = num_buckets // 2
    buckets = (relative > 0).astype(np.int64) * half
    distance = np.abs(relative)
    max_exact = half // 2
    with np.errstate(divide="ignore"):
        log_ratio = np.log(distance.astype(np.float32) / np.float32(max_exact))
    scaled = log_ratio / np.float32(math.log(max_distance / max_exact)) * np.float32(half - max_exact)
    large = max_exact + np.where(distance < max_exact, 0, scaled).astype(np.int64)
    return buckets + np.where(distance < max_exact, distance, np.minimum(large, half - 1))


class AttentionInputs(NamedTuple):
    """What every layer's attention gets besides the hidden states, computed once per forward pass.

    mask: bool [B, 1, T, T] (`text_attention_mask`), or its description (`TextMask`) for a fused kernel.
    bias: float32 broadcastable to [B, N, T, T] added to the logits (MPNet's relative bias), or None.
    rotary: (cos, sin) float32 [B, T, D] of the rotary angles (`rotary_angles`), or None.
    local_mask, local_rotary: the same for the local (sliding-window) layers of a family that alternates
        global and local attention (`mask & window_mask(...)`, the local rotary base), or None.
    """

    mask: jax.Array
    bias: jax.Array | None = None
    rotary: tuple[jax.Array, jax.Array] | None = None
    local_mask: jax.Array | None = None
    local_rotary: tuple[jax.Array, jax.Array] | None = None


def rotary_angles(positions: jax.Array, head_dim: int, theta: float) -> tuple[jax.Array, jax.Array]:
    """RoPE's (cos, sin), float32 [B, T, D], of positions int [B, T] (transformers' "default" rope_type).

    Frequency i < D / 2 is f_i = 1 / theta^(2i / D) in float32 as transformers computes it: the power
    rounded correctly (as torch's; numpy's float32 power can be one unit in the last place off), the
    angle of position p then p * f_i, repeated for the two halves of the head (the rotate-half layout).
    """
    exponents = np.arange(0, head_dim, 2, dtype=np.float32) / np.float32(head_dim)
    frequencies = np.float32(1.0) / (float(theta) ** exponents.astype(np.float64)).astype(np.float32)
    angles = positions.astype(jnp.float32)[..., None] * frequencies
    angles = jnp.concatenate([angles, angles], axis=-1)
    return jnp.cos(angles), jnp.sin(angles)


def apply_rotary(x: jax.Array, rotary: tuple[jax.Array, jax.Array]) -> jax.Array:
    """Rotates each head of x [B, T, N, D] by its position's angles: x cos + rotate_half(x) sin, in float32.

    rotate_half(x) = (-x[D/2:], x[:D/2]): dimensions i and i + D/2 form one rotated pair. Query-key
    products then depend on positions only through their difference.
    """
    cos, sin = (angle[:, :, None, :] for angle in rotary)
    x = x.astype(jnp.float32)
    first, second = jnp.split(x, 2, axis=-1)
    return x * cos + jnp.concatenate([-second, first], axis=-1) * sin


def attention(
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    mask: jax.Array | TextMask,
    bias: jax.Array | None,
    *,
    dropout_rate: float,
    dropout_bits: jax.Array | None,
    scale: float | None = None,
) -> jax.Array:
    """Scaled dot-product attention over unmasked keys, optionally with attention-probability dropout.

    query [B, T, N, D] and key, value [B, T, K, D] in the compute dtype, N a multiple of K: with K < N
    (grouped-query attention) query head n uses key / value head n // (N / K), as transformers'
    repeat_kv. mask bool, broadcastable to [B, N, T, T], True where a query may attend a key
    (`text_attention_mask`), or its description (`TextMask`) for a fused kernel; bias float32
    broadcastable to [B, N, T, T] (MPNet's relative position bias) or None; dropout_bits uint32
    [B, N, T, T] (see `dropout`) or None.
    logits = q k^T * scale (default 1 / sqrt(D); T5 uses 1, Gemma 3 its query_pre_attn_scalar^-1/2);
    probs = softmax(logits + bias, masked keys excluded), in float32; out = probs v, [B, T, N, D].
    A query with no key to attend (padding before a left-padded causal text, a row without tokens)
    gets a zero output, as torch's scaled_dot_product_attention gives it.

    The XLA path: without dropout this is `jax.nn.dot_product_attention` with its XLA implementation.
    That function cannot drop attention probabilities, so with dropout bits and a non-zero rate the
    same computation is written out with an explicit float32 softmax, then dropout on the probabilities
    exactly as torch's eager attention does in train mode. Masked logits get the value
    `jax.nn.dot_product_attention` uses, so the two agree when the rate is 0.

    The fused path (a `TextMask` with its kernel, see `fused_attention`): taken when the kernel expresses
    the attention (`kernel_expresses`: no kernel adds a bias, so T5 and MPNet stay on XLA; a sliding
    window arrives as a dense mask; the length must suit a Pallas kernel's blocks, cuDNN needs bfloat16),
    otherwise XLA.
    No fused kernel drops attention probabilities. With dropout (bits and a non-zero rate, i.e. train
    mode): attention_dropout="skip" runs the kernel without it; "exact" takes the XLA path under
    attention_implementation="auto" and is an error under a named kernel. Padding queries' outputs are
    zero on the Pallas paths.

    Raises:
        ValueError: a named fused kernel with attention_dropout="exact" and dropout in train mode.
    """
    scale = query.shape[-1] ** -0.5 if scale is None else scale
    dropping = dropout_bits is not None and dropout_rate != 0.0
    if isinstance(mask, TextMask):
        if _runs_fused(mask.kernel, query, bias, dropout_rate if dropping else 0.0):
            return _fused(query, key, value, mask, scale)
        mask = mask.dense()
    if not dropping:
        out = jax.nn.dot_product_attention(
            query, key, value, bias=bias, mask=mask, scale=scale, implementation="xla"
        )
    else:
        groups = query.shape[2] // key.shape[2]
        key, value = jnp.repeat(key, groups, axis=2), jnp.repeat(value, groups, axis=2)
        logits = jnp.einsum("btnd,bsnd->bnts", query, key, preferred_element_type=jnp.float32) * scale
        if bias is not None:
            logits = logits + bias
        probs = jax.nn.softmax(jnp.where(mask, logits, _MASKED_LOGIT), axis=-1)
        probs = dropout(probs, dropout_rate, dropout_bits)
        out = jnp.einsum("bnts,bsnd->btnd", probs.astype(value.dtype), value)
    return _zero_unattending(out, mask)


def _zero_unattending(out: jax.Array, mask: jax.Array) -> jax.Array:
    """out [B, T, N, D] with zeros for the queries that attend no key under mask [B, N or 1, T, T]."""
    attends = jnp.swapaxes(jnp.any(mask, axis=-1), 1, 2)[..., None]  # [B, T or 1, N or 1, 1]
    return jnp.where(attends, out, jnp.zeros((), out.dtype))


def _runs_fused(kernel: FusedKernel, query: jax.Array, bias: jax.Array | None, dropout_rate: float) -> bool:
    """Whether `attention` runs the fused kernel (see its docstring); dropout_rate 0 in eval mode."""
    if dropout_rate != 0.0 and not kernel.skip_dropout:
        if kernel.chosen:
            raise ValueError(
                f"the {kernel.name} attention kernel has no attention dropout, and this model's rate is "
                f"{dropout_rate}: pass attention_dropout='skip' to train without it, or "
                "attention_implementation='xla' (or 'auto') to keep it exactly"
            )
        return False
    return kernel_expresses(kernel, query.shape[1], query.dtype, has_bias=bias is not None)


def _fused(query: jax.Array, key: jax.Array, value: jax.Array, mask: TextMask, scale: float) -> jax.Array:
    """`fused_attention` with the mask's description; queries that attend nothing (cuDNN: as the XLA
    path) or padding queries (Pallas) get zeros."""
    kernel = mask.kernel
    dense = mask.dense() if kernel.name == "cudnn" else None
    out = fused_attention(
        query, key, value, mask.segment_ids, causal=mask.causal, scale=scale, kernel=kernel, dense_mask=dense
    )
    if dense is not None:
        return _zero_unattending(out, dense)
    return jnp.where(mask.segment_ids[:, :, None, None] != 0, out, jnp.zeros((), out.dtype))


class GroupedQueryAttention(nnx.Module):
    """Self-attention with K <= N key / value heads, every projection without bias (Qwen3, Gemma 3, and
    T5 with K = N):

    q = rope(norm(x W_q)) [N heads of D], k = rope(norm(x W_k)), v = x W_v [K heads of D];
    out = attention(q, k, v, mask, bias, scale) W_o. N * D need not equal H.

    head_norm: D -> the norm over each head's D entries (an `RMSNorm`: Qwen3; an `OffsetRMSNorm`: Gemma 3),
    or None for no norm (T5). rope applies when the inputs carry rotary angles, the bias (T5's relative
    bias) when they carry one. scale: the logit scale, default D^-1/2 (Gemma 3: query_pre_attn_scalar^
    -1/2; T5: 1).
    """

    CHECKPOINT_NAMES = {  # ours -> transformers' (Llama-style) submodule names
        "query": "q_proj",
        "key": "k_proj",
        "value": "v_proj",
        "output": "o_proj",
        "query_norm": "q_norm",
        "key_norm": "k_norm",
    }

    def __init__(
        self,
        width: int,
        *,
        num_heads: int,
        num_kv_heads: int,
        head_dim: int,
        head_norm: Callable[[int], nnx.Module] | None,
        scale: float | None = None,
        dropout_rate: float,
        dtype: jnp.dtype,
        init_std: float,
        rngs: nnx.Rngs,
    ):
        dense = partial(Dense, dtype=dtype, init_std=init_std, rngs=rngs, use_bias=False)
        self.query = dense(width, num_heads * head_dim)
        self.key = dense(width, num_kv_heads * head_dim)
        self.value = dense(width, num_kv_heads * head_dim)
        self.output = dense(num_heads * head_dim, width)
        self.query_norm = None if head_norm is None else head_norm(head_dim)
        self.key_norm = None if head_norm is None else head_norm(head_dim)
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = head_dim
        self.scale = scale
        self.dropout_rate = dropout_rate
        self.dtype = dtype

    @classmethod
    def checkpoint_keys(cls, name: str, path: ParamPath, names: Mapping[str, str] | None = None) -> KeyTable:
        """transformers' attention module `name` -> parameters below `path`; names: ours -> its
        submodules' names (default `CHECKPOINT_NAMES`: q_proj, k_proj, v_proj, o_proj, q_norm, k_norm;
        without the norms for an attention without them)."""
        table: KeyTable = {}
        for ours, theirs in (cls.CHECKPOINT_NAMES if names is None else names).items():
            if ours.endswith("_norm"):
                table.update(RMSNorm.checkpoint_keys(f"{name}.{theirs}", (*path, ours)))
            else:
                table.update(Dense.checkpoint_keys(f"{name}.{theirs}", (*path, ours), use_bias=False))
        return table

    def dropout_shapes(self, batch: int, length: int) -> dict[str, tuple[int, ...]]:
        """The attention-probability dropout site, when its rate is non-zero."""
        return {"attention": (batch, self.num_heads, length, length)} if self.dropout_rate > 0.0 else {}

    def __call__(
        self, hidden: jax.Array, inputs: AttentionInputs, dropout_bits: jax.Array | None = None
    ) -> jax.Array:
        """hidden [B, T, H] compute dtype; inputs: the mask, and the rotary angles or the bias when the
        family has them; dropout_bits uint32 [B, N, T, T] or None -> [B, T, H] compute dtype."""
        batch, length, _ = hidden.shape

        def heads(x: jax.Array, count: int, norm: nnx.Module | None) -> jax.Array:
            x = x.reshape(batch, length, count, self.head_dim)
            x = x if norm is None else norm(x)
            return x if inputs.rotary is None else apply_rotary(x, inputs.rotary)

        context = attention(
            heads(self.query(hidden), self.num_heads, self.query_norm).astype(self.dtype),
            heads(self.key(hidden), self.num_kv_heads, self.key_norm).astype(self.dtype),
            self.value(hidden).reshape(batch, length, self.num_kv_heads, self.head_dim),
            inputs.mask,
            inputs.bias,
            dropout_rate=self.dropout_rate,
            dropout_bits=dropout_bits,
            scale=self.scale,
        )
        return self.output(context.reshape(batch, length, self.num_heads * self.head_dim))
