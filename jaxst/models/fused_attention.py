"""Fused attention kernels for GPU and TPU, which store no [B, N, T, T] logits or probabilities; the
Pallas kernels take the mask's description (segment ids, causality) instead of a dense mask.

The kernels (all ship with JAX; chosen by `choose_kernel` from the encoder's options and the backend):
- "pallas_gpu": Pallas' GPU flash attention (`jax.experimental.pallas.ops.gpu.attention.mha`), Triton.
- "pallas_tpu": Pallas' TPU splash attention (`jax.experimental.pallas.ops.tpu.splash_attention`).
- "cudnn": cuDNN's flash attention through `jax.nn.dot_product_attention(implementation="cudnn")`.

Both Pallas kernels take the segment ids of `attention.text_attention_mask` and a causal flag: key k is
attended by query q when their segment ids are equal (and k <= q when causal). That is the text mask for
every token of a text when each text's tokens lie together in order of position, as padded and packed
rows lay them (causality by token order then equals causality by position). Padding queries (segment 0)
differ: they attend the row's padding here, its tokens in the text mask; their outputs are never used,
and `attention.attention` sets them to zero. Key / value heads are repeated for grouped-query attention.
No kernel here adds a bias (T5's and MPNet's relative position bias) or drops attention probabilities;
both Pallas kernels need the length T to be a multiple of a block size (GPU: 16, TPU: 128).

cuDNN: `jax.nn.dot_product_attention`'s query_seq_lengths / key_value_seq_lengths describe only rows of
one right-padded text, while jaxst's rows may be packed or left-padded (decoder tokenizers pad left),
which is data, not shape. So jaxst passes cuDNN the text mask bool [B, 1, T, T] (`cudnn_arguments`),
which cuDNN adds to the logits as a bias of that shape inside the kernel: every mask is expressed,
without [B, N, T, T] probabilities. cuDNN computes in bfloat16 / float16 only.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

ATTENTION_IMPLEMENTATIONS = ("auto", "xla", "pallas", "cudnn")
ATTENTION_DROPOUT_CHOICES = ("exact", "skip")
# Block sizes tried, largest first, for the query and key tiles; the length must be a multiple of one.
# The GPU kernel's backward pass uses tiles of at most 32 (JAX's defaults for it).
_GPU_BLOCKS = (128, 64, 32, 16)
_GPU_BACKWARD_BLOCK = 32
_TPU_BLOCKS = (512, 256, 128)


class FusedKernel(NamedTuple):
    """Which fused kernel attention runs (static: part of the mask's description, hashed by jit).

    name: "pallas_gpu", "pallas_tpu" or "cudnn".
    chosen: the user named the implementation (not "auto"): then exact attention dropout at a non-zero
        rate in train mode is an error instead of a fall back to the XLA path.
    skip_dropout: attention_dropout="skip": train without attention-probability dropout.
    interpret: run a Pallas kernel in Pallas' interpret mode (on CPU: slow, for tests).
    """

    name: str
    chosen: bool = True
    skip_dropout: bool = False
    interpret: bool = False


def check_attention_options(attention_implementation: str, attention_dropout: str) -> None:
    """Raises ValueError naming an unknown `attention_implementation` or `attention_dropout` value."""
    for option, value, known in (
        ("attention_implementation", attention_implementation, ATTENTION_IMPLEMENTATIONS),
        ("attention_dropout", attention_dropout, ATTENTION_DROPOUT_CHOICES),
    ):
        if value not in known:
            raise ValueError(f"{option} must be one of {', '.join(map(repr, known))}, got {value!r}")


def choose_kernel(attention_implementation: str, attention_dropout: str, backend: str) -> FusedKernel | None:
    """The fused kernel of the encoder's options on a JAX backend ("cpu", "gpu", "tpu"), or None for XLA.

    "xla": None. "auto": Pallas on GPU and TPU, None elsewhere (CPU). "pallas": the backend's Pallas
    kernel; elsewhere the GPU kernel in interpret mode (slow; for tests). "cudnn": cuDNN, on GPU only.

    Raises:
        ValueError: an unknown option value, or "cudnn" on a backend without cuDNN (naming it).
    """
    check_attention_options(attention_implementation, attention_dropout)
    skip_dropout = attention_dropout == "skip"
    if attention_implementation == "xla":
        return None
    if attention_implementation == "cudnn":
        if backend != "gpu":
            raise ValueError(
                f"attention_implementation='cudnn' needs a CUDA GPU, but JAX's backend is {backend!r}: "
                "choose 'auto', 'xla' or 'pallas'"
            )
        return FusedKernel("cudnn", skip_dropout=skip_dropout)
    pallas = {"gpu": "pallas_gpu", "tpu": "pallas_tpu"}.get(backend)
    if attention_implementation == "auto":
        return None if pallas is None else FusedKernel(pallas, chosen=False, skip_dropout=skip_dropout)
    if pallas is None:
        return FusedKernel("pallas_gpu", skip_dropout=skip_dropout, interpret=True)
    return FusedKernel(pallas, skip_dropout=skip_dropout)


def kernel_expresses(kernel: FusedKernel, length: int, dtype: jnp.dtype, *, has_bias: bool) -> bool:
    """Whether `kernel` computes attention over T = `length` tokens in `dtype` (with a bias when
    `has_bias`); if not, attention takes the XLA path."""
    if has_bias:
        return False
    if kernel.name == "cudnn":
        return jnp.dtype(dtype) in (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))
    return _block_size(kernel, length) is not None


def _block_size(kernel: FusedKernel, length: int) -> int | None:
    """The largest block of the kernel's sizes that divides `length`, or None."""
    sizes = _TPU_BLOCKS if kernel.name == "pallas_tpu" else _GPU_BLOCKS
    return next((size for size in sizes if length % size == 0), None)


def cudnn_arguments(mask: jax.Array) -> dict[str, jax.Array]:
    """The mask keywords of `jax.nn.dot_product_attention` for cuDNN: mask bool [B, 1, T, T], the text mask
    (see the module docstring)."""
    return {"mask": mask}


def fused_attention(
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    segment_ids: jax.Array,
    *,
    causal: bool,
    scale: float,
    kernel: FusedKernel,
    dense_mask: jax.Array | None = None,
) -> jax.Array:
    """softmax(q k^T * scale + mask) v by a fused kernel: query [B, T, N, D], key, value [B, T, K, D] with N
    a multiple of K; segment_ids int [B, T] (0 for padding); for cuDNN the dense text mask bool [B, 1, T, T]
    -> out [B, T, N, D] in the query dtype (padding queries: see the module docstring).
    """
    if kernel.name == "cudnn":
        return jax.nn.dot_product_attention(
            query, key, value, **cudnn_arguments(dense_mask), scale=scale, implementation="cudnn"
        )
    groups = query.shape[2] // key.shape[2]
    key, value = jnp.repeat(key, groups, axis=2), jnp.repeat(value, groups, axis=2)
    segment_ids = segment_ids.astype(jnp.int32)
    block = _block_size(kernel, query.shape[1])
    if kernel.name == "pallas_tpu":
        return _splash_attention(query, key, value, segment_ids, causal, scale, block, kernel.interpret)
    from jax.experimental.pallas.ops.gpu import attention as gpu_attention

    backward = min(block, _GPU_BACKWARD_BLOCK)
    blocks = gpu_attention.BlockSizes(
        block_q=block,
        block_k=block,
        block_q_dkv=backward,
        block_kv_dkv=backward,
        block_q_dq=backward,
        block_kv_dq=backward,
    )
    return gpu_attention.mha(
        query,
        key,
        value,
        segment_ids,
        sm_scale=scale,
        causal=causal,
        block_sizes=blocks,
        interpret=kernel.interpret,
    )


def _splash_attention(
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    segment_ids: jax.Array,
    causal: bool,
    scale: float,
    block: int,
    interpret: bool,
) -> jax.Array:
    """Splash attention over each row: it takes [N, T, D] per row and no logit scale (q is scaled first)."""
    from jax.experimental.pallas.ops.tpu import splash_attention as splash

    _, length, heads, _ = query.shape
    splash_kernel = _splash_kernel(heads, length, causal, block, interpret)
    heads_first = functools.partial(jnp.swapaxes, axis1=1, axis2=2)  # [B, T, N, D] <-> [B, N, T, D]
    scaled = (query * jnp.asarray(scale, query.dtype)).astype(query.dtype)
    out = jax.vmap(splash_kernel)(
        heads_first(scaled),
        heads_first(key),
        heads_first(value),
        segment_ids=splash.SegmentIds(q=segment_ids, kv=segment_ids),
    )
    return heads_first(out)


@functools.cache
def _splash_kernel(heads: int, length: int, causal: bool, block: int, interpret: bool):
    """The splash kernel of N = `heads` heads over T = `length` tokens; its mask tables are built on the
    host once per shape."""
    from jax.experimental.pallas.ops.tpu import splash_attention as splash

    head_mask = splash.CausalMask((length, length)) if causal else splash.FullMask((length, length))
    sizes = dict.fromkeys(
        ("block_q", "block_kv", "block_kv_compute", "block_q_dkv", "block_kv_dkv", "block_kv_dkv_compute"),
        block,
    )
    return splash.make_splash_mha_single_device(
        splash.MultiHeadMask([head_mask] * heads),
        block_sizes=splash.BlockSizes(**sizes, block_q_dq=block, block_kv_dq=block),
        interpret=interpret,
    )
