"""The fused attention kernels on this machine's backend against the XLA path: error and speed.

For MiniLM's and BERT-base's attention shapes, padded and packed rows, bidirectional and causal masks,
each fused kernel that the backend runs (`jaxst.models.fused_attention`: Pallas on GPU / TPU, cuDNN on
GPU in bfloat16) computes attention's output and the gradient of a weighted sum of it with respect to
q, k, v; the script prints the largest difference from the XLA path on the text tokens (float32 XLA as the
reference) and the time of one forward + backward, median of `--repeats`. The tests check the kernels in
Pallas' interpret mode on CPU; this is the check on the hardware itself, run first by benchmarks/gpu.sh.

    python3 benchmarks/attention_kernels.py [--batch 32] [--length 128] [--repeats 20]

On a CPU (no fused kernel runs there) it checks the GPU kernel in interpret mode at a small size, so that
the script itself is tested: `--batch 2 --length 16`.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxst.models.attention import TextMask, attention, text_attention_mask
from jaxst.models.fused_attention import FusedKernel

# name -> (query heads, key / value heads, head size)
SHAPES = {"minilm": (12, 12, 32), "bert-base": (12, 12, 64), "qwen3-0.6b": (16, 8, 128)}


def rows(batch: int, length: int, causal: bool) -> tuple[jax.Array, jax.Array]:
    """(segment ids, positions) int [B, T]: even rows one padded text (left-padded when causal), odd rows
    three packed texts then padding."""
    segments, positions = np.zeros((batch, length), np.int32), np.zeros((batch, length), np.int32)
    for row in range(batch):
        if row % 2 == 0:
            used = length - (row % 7) * length // 16
            span = slice(length - used, length) if causal else slice(0, used)
            segments[row, span], positions[row, span] = 1, np.arange(used)
        else:
            start = 0
            for text, size in enumerate((length // 4, length // 3, length // 5), start=1):
                segments[row, start : start + size], positions[row, start : start + size] = (
                    text,
                    np.arange(size),
                )
                start += size
    return jnp.asarray(segments), jnp.asarray(positions)


def kernels(backend: str) -> list[tuple[str, FusedKernel, jnp.dtype]]:
    """The kernels to check on `backend`, each with its compute dtype."""
    if backend == "gpu":
        return [
            ("pallas_gpu f32", FusedKernel("pallas_gpu"), jnp.float32),
            ("pallas_gpu bf16", FusedKernel("pallas_gpu"), jnp.bfloat16),
            ("cudnn bf16", FusedKernel("cudnn"), jnp.bfloat16),
        ]
    if backend == "tpu":
        return [("pallas_tpu f32", FusedKernel("pallas_tpu"), jnp.float32)]
    return [("pallas_gpu interpret f32", FusedKernel("pallas_gpu", interpret=True), jnp.float32)]


def make_step(mask, segments: jax.Array, weights: jax.Array):
    """A compiled (q, k, v) -> (output on text tokens, (dq, dk, dv)) for one mask."""
    text_tokens = (segments != 0)[:, :, None, None]

    @jax.jit
    def step(query, key, value):
        def outputs(q, k, v):
            out = attention(q, k, v, mask, None, dropout_rate=0.0, dropout_bits=None)
            return jnp.where(text_tokens, out.astype(jnp.float32), 0.0)

        out, pullback = jax.vjp(outputs, query, key, value)
        return out, pullback(weights)

    return step


def median_seconds(step, inputs, repeats: int) -> float:
    jax.block_until_ready(step(*inputs))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(step(*inputs))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def largest_difference(actual, expected) -> float:
    return max(
        float(jnp.max(jnp.abs(a.astype(jnp.float32) - e)))
        for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    backend = jax.default_backend()
    print(f"backend {backend}: {jax.devices()[0].device_kind}; batch {args.batch}, length {args.length}")
    print(f"{'shape':11} {'mask':14} {'kernel':24} {'max |diff|':>11} {'kernel ms':>10} {'xla ms':>8}")
    for shape, (heads, kv_heads, head_dim) in SHAPES.items():
        keys = jax.random.split(jax.random.key(0), 4)
        inputs = [
            jax.random.normal(keys[0], (args.batch, args.length, heads, head_dim)),
            *(jax.random.normal(k, (args.batch, args.length, kv_heads, head_dim)) for k in keys[1:3]),
        ]
        weights = jax.random.normal(keys[3], inputs[0].shape)
        for causal in (False, True):
            segments, positions = rows(args.batch, args.length, causal)
            dense = text_attention_mask(segments, positions, causal=causal)
            reference = make_step(dense, segments, weights)
            expected = reference(*inputs)
            mask_name = "causal" if causal else "bidirectional"
            for name, kernel, dtype in kernels(backend):
                cast = [x.astype(dtype) for x in inputs]
                fused = make_step(TextMask(segments, positions, causal, kernel), segments, weights)
                xla = make_step(dense, segments, weights)
                try:
                    difference = largest_difference(fused(*cast), expected)
                    kernel_ms = 1e3 * median_seconds(fused, cast, args.repeats)
                except Exception as error:  # a kernel that fails on this card is a finding, not the end
                    print(
                        f"{shape:11} {mask_name:14} {name:24} failed: {type(error).__name__}: {error}"[:300]
                    )
                    continue
                xla_ms = 1e3 * median_seconds(xla, cast, args.repeats)
                print(
                    f"{shape:11} {mask_name:14} {name:24} {difference:11.2e} {kernel_ms:10.3f} {xla_ms:8.3f}"
                )


if __name__ == "__main__":
    main()
