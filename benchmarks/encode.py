"""Encode speed (and memory) of jaxst against PyTorch sentence-transformers, same model, same texts.

Speed: both encode the STS-B sentences of a split with the same batch size; after one warm-up pass each
(jaxst compiles its bucket programs there; that cold pass is reported too), they alternate for
`--rounds` timed passes, so that a changing machine load hits both alike. Printed: sentences per
wall-clock second and per CPU-second of the process (all its threads; steadier on a shared machine)
of each pass, the medians, and the ratios of the medians (jaxst / sentence-transformers).

On a GPU jaxst computes in bfloat16 and sentence-transformers runs its fastest setting there (float16
weights, SDPA attention); on CPU both use float32.

Memory (`--memory`): jaxst alone encodes `--texts` texts (STS-B sentences, cycled); printed is the
rise of the process's peak resident memory over what it used with the model loaded, against the size
of the returned embeddings (the goal: at most 2x). Linux only (reads /proc/self/status).

    python benchmarks/encode.py                      # speed, STS-B test split, batch size 32
    python benchmarks/encode.py --memory --texts 100000
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from bench_model import minilm_path  # noqa: E402

from jaxst import SentenceTransformer  # noqa: E402
from tests.shared_data import stsb_sentences  # noqa: E402


def machine() -> str:
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    device = jax.devices()[0].device_kind
    return (
        f"{datetime.date.today()} | {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {load} | jax {jax.__version__} on {jax.default_backend()} ({device})"
    )


def throughput(encode, texts: list[str]) -> tuple[float, float]:
    """(sentences per wall-clock second, sentences per CPU-second of this process, all threads)."""
    wall, cpu = time.perf_counter(), time.process_time()
    encode(texts)
    return len(texts) / (time.perf_counter() - wall), len(texts) / (time.process_time() - cpu)


def speed(args: argparse.Namespace) -> None:
    import torch
    from sentence_transformers import SentenceTransformer as TorchSentenceTransformer

    on_gpu = jax.default_backend() == "gpu"
    texts = stsb_sentences(args.split)
    ours = SentenceTransformer(args.model, dtype=jnp.bfloat16 if on_gpu else jnp.float32)
    if on_gpu:
        theirs = TorchSentenceTransformer(
            args.model, device="cuda", model_kwargs={"dtype": torch.float16, "attn_implementation": "sdpa"}
        )
    else:
        theirs = TorchSentenceTransformer(args.model, device="cpu")
    print(machine())
    setting = "GPU: jaxst bfloat16, ST float16" if on_gpu else "CPU float32"
    print(
        f"torch {torch.__version__} with {torch.get_num_threads()} threads; {len(texts)} STS-B {args.split} "
        f"sentences, batch size {args.batch_size}, {setting}"
    )

    def encode_ours(batch):
        return ours.encode(batch, batch_size=args.batch_size)

    def encode_theirs(batch):
        return theirs.encode(batch, batch_size=args.batch_size)

    cold, _ = throughput(encode_ours, texts)
    print(f"jaxst cold pass (compiles {ours.compile_count} programs): {cold:.0f} sentences/s")
    throughput(encode_theirs, texts)
    ours_runs, theirs_runs = [], []
    for round_index in range(args.rounds):
        theirs_runs.append(throughput(encode_theirs, texts))
        ours_runs.append(throughput(encode_ours, texts))
        print(
            f"round {round_index + 1}: sentence-transformers {theirs_runs[-1][0]:.0f}, jaxst "
            f"{ours_runs[-1][0]:.0f} sentences/s (ratio {ours_runs[-1][0] / theirs_runs[-1][0]:.2f}); per "
            f"CPU-second {theirs_runs[-1][1]:.0f} vs {ours_runs[-1][1]:.0f} (ratio "
            f"{ours_runs[-1][1] / theirs_runs[-1][1]:.2f})"
        )
    for index, unit in enumerate(("sentences/s", "sentences per CPU-second")):
        ours_median = statistics.median(run[index] for run in ours_runs)
        theirs_median = statistics.median(run[index] for run in theirs_runs)
        print(
            f"median {unit}: sentence-transformers {theirs_median:.0f}, jaxst {ours_median:.0f}; "
            f"ratio {ours_median / theirs_median:.2f}x"
        )


def resident_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory(args: argparse.Namespace) -> None:
    pool = stsb_sentences("train") + stsb_sentences("dev") + stsb_sentences("test")
    texts = [pool[i % len(pool)] for i in range(args.texts)]
    ours = SentenceTransformer(args.model)
    print(machine())
    loaded = resident_kib("VmRSS")
    ours.encode(["warm-up"])  # JAX / XLA initialise on a first compile: a one-time cost of the process
    warmed = resident_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current resident size
    start = time.perf_counter()
    embeddings = ours.encode(texts, batch_size=args.batch_size)
    seconds = time.perf_counter() - start
    peak = resident_kib("VmHWM")
    print(
        f"{len(texts)} texts in {seconds:.0f} s ({len(texts) / seconds:.0f} sentences/s, "
        f"{ours.compile_count} programs compiled); embeddings {embeddings.nbytes / 2**20:.1f} MiB"
    )
    for name, base in (("the loaded model", loaded), ("the model after a one-text warm-up", warmed)):
        rise = (peak - base) * 1024
        print(
            f"peak memory rise over {name}: {rise / 2**20:.1f} MiB = {rise / embeddings.nbytes:.2f}x the "
            "embeddings (goal: <= 2x)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--split", default="test", choices=["train", "dev", "test"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--memory", action="store_true", help="measure peak memory instead of speed")
    parser.add_argument("--texts", type=int, default=100_000, help="texts for --memory")
    parser.add_argument("--model", help="model folder (default: all-MiniLM-L6-v2; see bench_model.py)")
    args = parser.parse_args()
    args.model = args.model or minilm_path()
    memory(args) if args.memory else speed(args)


if __name__ == "__main__":
    main()
