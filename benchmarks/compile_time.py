"""Compile time, run time and memory of the encoder's layers in a Python loop against `scan_layers=True`.

For MiniLM's shapes (hidden 384, 12 heads, intermediate 1,536, BERT's vocabulary; random weights) at
several depths, two programs, each compiled and run in a fresh process pinned to one CPU with XLA's CPU
thread pool off (`--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1`):

- encode: the eval-mode forward pass and mean pooling of `--encode-batch` texts of `--length` tokens;
- train step: the value and gradient, with respect to every encoder parameter, of the MNRL loss of
  `--train-batch` (anchor, positive) pairs of `--length` tokens, mean pooled, train-mode dropout on.

Printed per program, in CPU seconds of the worker process (steadier than wall clock on a shared machine:
waiting for the CPU is not counted): tracing + lowering, XLA's compile, and the median run of `--repeats`
calls after one; and the compiled program's temporary buffers (`memory_analysis().temp_size_in_bytes`: the
activations, and under a scan the stacked copy of the layers' parameters).

    python benchmarks/compile_time.py
    python benchmarks/compile_time.py --layers 2 6 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ONE_THREAD_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def machine() -> str:
    """The CPU's model name and the load average, for the results' header."""
    with open("/proc/cpuinfo") as cpuinfo:
        name = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    return f"{name}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"


def measure(layers: int, scan: bool, args: argparse.Namespace) -> dict:
    """One worker's figures for an encoder of `layers` layers (runs in the worker process)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import transformers
    from flax import nnx

    from jaxst.losses.ranking import multiple_negatives_ranking_loss
    from jaxst.models.bert import BertEncoder

    config = transformers.BertConfig(
        hidden_size=384, num_hidden_layers=layers, num_attention_heads=12, intermediate_size=1536
    )
    encoder = BertEncoder(BertEncoder.spec_from_config(config), rngs=nnx.Rngs(0))
    encoder.use_scan_layers(scan)
    graphdef, params = nnx.split(encoder)

    def texts(count: int, seed: int) -> tuple[jax.Array, jax.Array]:
        rng = np.random.default_rng(seed)
        lengths = rng.integers(args.length // 4, args.length + 1, count)
        mask = (np.arange(args.length)[None, :] < lengths[:, None]).astype(np.int32)
        ids = rng.integers(1000, config.vocab_size, (count, args.length)).astype(np.int32) * mask
        return jnp.asarray(ids), jnp.asarray(mask)

    def embed(params, ids, mask, dropout_rng=None):
        tokens = nnx.merge(graphdef, params)(ids, mask, dropout_rng=dropout_rng)
        weights = mask[..., None].astype(tokens.dtype)
        return (tokens * weights).sum(1) / weights.sum(1)

    def train_loss(params, anchors, positives, rng):
        first, second = jax.random.split(rng)
        return multiple_negatives_ranking_loss(
            embed(params, *anchors, dropout_rng=first), embed(params, *positives, dropout_rng=second)
        )

    programs = {
        "encode": (embed, (params, *texts(args.encode_batch, 0))),
        "train": (
            jax.value_and_grad(train_loss),
            (params, texts(args.train_batch, 1), texts(args.train_batch, 2), jax.random.key(0)),
        ),
    }
    figures = {}
    for name, (function, inputs) in programs.items():
        start = time.process_time()
        lowered = jax.jit(function).lower(*inputs)
        traced = time.process_time()
        compiled = lowered.compile()
        done = time.process_time()
        jax.block_until_ready(compiled(*inputs))
        times = []
        for _ in range(args.repeats):
            start_run = time.process_time()
            jax.block_until_ready(compiled(*inputs))
            times.append(time.process_time() - start_run)
        figures[name] = {
            "trace_s": traced - start,
            "compile_s": done - traced,
            "run_s": statistics.median(times),
            "temp_mib": compiled.memory_analysis().temp_size_in_bytes / 2**20,
        }
    return figures


def run_worker(layers: int, scan: bool, args: argparse.Namespace) -> dict:
    """`measure` in a fresh process on one CPU with one XLA thread."""
    env = {
        **os.environ,
        "XLA_FLAGS": ONE_THREAD_FLAGS,
        "JAXST_COMPILATION_CACHE": "off",
        "PYTHONPATH": str(ROOT),
    }
    command = [
        "taskset",
        "-c",
        str(args.cpu),
        sys.executable,
        __file__,
        "--worker",
        json.dumps({"layers": layers, "scan": scan}),
        *sys.argv[1:],
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--layers", type=int, nargs="+", default=[2, 6, 12, 36])
    parser.add_argument("--length", type=int, default=64, help="tokens per text (padded)")
    parser.add_argument("--encode-batch", type=int, default=32)
    parser.add_argument("--train-batch", type=int, default=16, help="pairs per train step")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cpu", type=int, default=0, help="the CPU the workers are pinned to")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        job = json.loads(args.worker)
        print(json.dumps(measure(job["layers"], job["scan"], args)))
        return

    print(f"# {machine()}")
    print(
        f"# encode: {args.encode_batch} x {args.length} tokens; train step: {args.train_batch} pairs x "
        f"{args.length} tokens; median of {args.repeats} runs; one CPU, one XLA thread"
    )
    print("| layers | program | layers run | trace CPU s | compile CPU s | run CPU s | temp MiB |")
    print("|---:|---|---|---:|---:|---:|---:|")
    for layers in args.layers:
        for scan in (False, True):
            figures = run_worker(layers, scan, args)
            for program, row in figures.items():
                print(
                    f"| {layers} | {program} | {'scan' if scan else 'loop'} | {row['trace_s']:.2f} | "
                    f"{row['compile_s']:.2f} | {row['run_s']:.3f} | {row['temp_mib']:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
