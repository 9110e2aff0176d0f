"""semantic_search: jaxst (jit-compiled chunked top-k) against sentence-transformers (torch), on this CPU.

Random float32 embeddings (seeded), 10,000 queries x 200,000 corpus rows, dimension 384, cosine similarity,
top_k=10, both libraries at their default chunk sizes (100 queries x 500,000 corpus rows per chunk).
Each library runs in its own process, so that its peak memory (ru_maxrss) is its own:

- time: one warm-up search of 100 queries (jaxst compiles there), then the timed full search;
- peak memory: the process's peak resident memory during the timed search (Linux VmHWM, reset just
  before it through /proc/self/clear_refs) above its resident memory at the start of the search, i.e.
  what the search itself needed (jaxst's includes its device copy of the corpus);
- jaxst also runs with a fifth of the queries: the same peak shows that memory is bounded by the chunk
  sizes, not by queries x corpus (10,000 x 200,000 float32 scores would be 8 GB).

Both result sets are compared: every hit's score within 1e-5 and the same corpus ids (except where
float32 rounding swaps near-equal scores).

    python benchmarks/search.py [--queries 10000] [--corpus 200000] [--dim 384]

Measured (2 shared CPU cores, load average ~9 from other jobs, so times are noisy; jax 0.10.2, torch 2.13.0):

    run                                        seconds   peak MB above inputs
    sentence-transformers, 10,000 queries       108.02                    465
    jaxst, 10,000 queries                        82.17                    217
    jaxst, 2,000 queries                         17.40                    218
    speed-up of jaxst over sentence-transformers: 1.31x; same hits: True
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import psutil


def embeddings(n: int, dim: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim), dtype=np.float32)


def peak_resident_mb() -> float:
    """VmHWM, the peak resident memory since the last `reset_peak_resident()`, in MiB."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def reset_peak_resident() -> None:
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def run_worker(library: str, n_queries: int, n_corpus: int, dim: int, output: str) -> None:
    """Search in this process and write {seconds, peak_mb} and the hits (scores, ids) to `output`."""
    if library == "jaxst":
        from jaxst.util import semantic_search

        convert = np.asarray
    else:
        import torch
        from sentence_transformers.util import semantic_search

        torch.set_num_threads(os.cpu_count())
        convert = torch.from_numpy
    queries, corpus = convert(embeddings(n_queries, dim, 1)), convert(embeddings(n_corpus, dim, 2))
    semantic_search(queries[:100], corpus)  # warm-up (and jaxst's compile)
    reset_peak_resident()
    resident_mb = psutil.Process().memory_info().rss / 2**20
    start = time.perf_counter()
    hits = semantic_search(queries, corpus)
    seconds = time.perf_counter() - start
    peak_mb = peak_resident_mb()
    np.savez(
        output,
        seconds=seconds,
        peak_above_inputs_mb=peak_mb - resident_mb,
        scores=np.array([[hit["score"] for hit in query] for query in hits]),
        ids=np.array([[hit["corpus_id"] for hit in query] for query in hits]),
    )


def run_in_subprocess(library: str, n_queries: int, n_corpus: int, dim: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        output = os.path.join(folder, "result.npz")
        command = [sys.executable, __file__, "--worker", library, "--queries", str(n_queries)]
        command += ["--corpus", str(n_corpus), "--dim", str(dim), "--output", output]
        subprocess.run(command, check=True)
        with np.load(output) as result:
            return {key: result[key] for key in result.files}


def same_hits(ours: dict, theirs: dict) -> bool:
    """Scores within 1e-5 rank by rank; ids equal wherever the score is apart (> 2e-5) from its neighbours."""
    if not np.allclose(ours["scores"], theirs["scores"], atol=1e-5):
        return False
    gaps = np.abs(np.diff(ours["scores"], axis=1)) > 2e-5
    apart = np.ones_like(ours["ids"], dtype=bool)
    apart[:, 1:] &= gaps
    apart[:, :-1] &= gaps
    return bool(np.array_equal(ours["ids"][apart], theirs["ids"][apart]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=10000)
    parser.add_argument("--corpus", type=int, default=200000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--worker", choices=["jaxst", "sentence-transformers"])
    parser.add_argument("--output")
    args = parser.parse_args()
    if args.worker:
        run_worker(args.worker, args.queries, args.corpus, args.dim, args.output)
        return

    theirs = run_in_subprocess("sentence-transformers", args.queries, args.corpus, args.dim)
    ours = run_in_subprocess("jaxst", args.queries, args.corpus, args.dim)
    fewer = run_in_subprocess("jaxst", args.queries // 5, args.corpus, args.dim)
    rows = [
        (f"sentence-transformers, {args.queries:,} queries", theirs),
        (f"jaxst, {args.queries:,} queries", ours),
        (f"jaxst, {args.queries // 5:,} queries", fewer),
    ]
    print(f"semantic_search, corpus {args.corpus:,} x {args.dim}, top_k=10, cosine, {os.cpu_count()} CPUs")
    print(f"{'run':<40} {'seconds':>9} {'peak MB above inputs':>22}")
    for label, result in rows:
        print(f"{label:<40} {float(result['seconds']):>9.2f} {float(result['peak_above_inputs_mb']):>22.0f}")
    ratio = float(theirs["seconds"]) / float(ours["seconds"])
    print(f"speed-up of jaxst over sentence-transformers: {ratio:.2f}x")
    print(f"same hits: {same_hits(ours, theirs)}")
    print(json.dumps({"speedup": round(ratio, 3), "same_hits": same_hits(ours, theirs)}))


if __name__ == "__main__":
    main()
