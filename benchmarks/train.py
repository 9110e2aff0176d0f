"""Training speed: pairs/s of jaxst's fit against PyTorch sentence-transformers', same model, data, batch.

Two objectives on all-MiniLM-L6-v2: MultipleNegativesRankingLoss on SNLI (anchor, positive) pairs
(`../shared/data/pairs/snli_triplets.tsv.gz`, both splits) and CosineSimilarityLoss on STS-B train
(scores / 5). Each (framework, loss) trains in its own process, pinned to the same `--threads` CPUs
(XLA and torch size their thread pools from that CPU set; torch also gets `set_num_threads`), through
the framework's own `fit` (sentence-transformers: `fit`, or `old_fit` where `accelerate` is missing),
shuffled, for `--warmup-steps + --steps` steps of `--batch-size` pairs.

Timing: every step's boundary is stamped with the wall clock and the process's CPU time (jaxst: when fit
hands the step's loss to its callbacks, which waits for the step; sentence-transformers: a forward
pre-hook on the loss module, after a CUDA synchronize on a GPU). The first `--warmup-steps` steps are left
out for both; pairs/s = batch size x timed steps / their wall time. Pairs per CPU-second (CPU time of the
whole process, all its threads) is printed too: on a CPU that other jobs share it moves much less with their
load than the wall clock does. jaxst compiles one program per packed batch shape: compile time (JAX's own
compile events) is reported apart, and a timed step in which a compile ran (a batch shape first seen
there) is left out of the rate, and counted in the output.

Precision: float32 on CPU; on a GPU jaxst runs bfloat16 (`use_amp=True`) and sentence-transformers
its fit's mixed precision (`use_amp=True`: float16 autocast).

`--rounds` repeats every pair of processes (sentence-transformers first, then jaxst, so that a changing
load hits both alike) and reports the medians.

    python benchmarks/train.py                                  # both losses, batch 32, 30 timed steps
    python benchmarks/train.py --losses cosine --steps 50 --batch-size 16 --rounds 3
    python benchmarks/train.py --model /tmp/q3/qwen3-0.6b --losses mnrl --batch-size 8 --max-seq-length 64

`--model` takes any sentence-transformers folder (e.g. `bench_model.py qwen3 OUT`'s Qwen3-0.6B-shaped
one); `--max-seq-length` truncates its texts to that many tokens in both frameworks.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS.parent))
sys.path.insert(0, str(BENCHMARKS))

from bench_model import minilm_path  # noqa: E402
from stsb_quality import load_average, machine, sentence_transformers_fit  # noqa: E402

from jaxst.data import load_stsb  # noqa: E402
from tests.shared_data import read_tsv  # noqa: E402

LOSSES = {"mnrl": "MultipleNegativesRankingLoss (SNLI pairs)", "cosine": "CosineSimilarityLoss (STS-B)"}
FRAMEWORKS = ("sentence-transformers", "jaxst")
RESULT_PREFIX = "RESULT "


def training_pairs(loss: str) -> list[tuple[list[str], float | None]]:
    """(texts, label) examples: SNLI (anchor, positive) without labels, or STS-B pairs with score / 5."""
    if loss == "mnrl":
        return [([r["anchor"], r["positive"]], None) for r in read_tsv("pairs/snli_triplets.tsv.gz")]
    return [([a, b], score) for a, b, score in load_stsb("train")]


def rates(
    stamps: list[tuple[float, float]], warmup_steps: int, batch_size: int, compile_ends: list[float]
) -> dict[str, float]:
    """Pairs per second and per CPU-second over the steps after the warm-up.

    Args:
        stamps: (wall clock, process CPU time) at one point of every step; consecutive stamps enclose
            one whole step.
        warmup_steps: stamps before this index are not timed.
        batch_size: pairs per step.
        compile_ends: wall-clock times at which a compile ended; steps enclosing one are left out.
    """
    wall = cpu = 0.0
    steps = left_out = 0
    timed = stamps[warmup_steps:]
    for (wall_start, cpu_start), (wall_end, cpu_end) in zip(timed, timed[1:], strict=False):
        if any(wall_start < end <= wall_end for end in compile_ends):
            left_out += 1
            continue
        wall, cpu, steps = wall + wall_end - wall_start, cpu + cpu_end - cpu_start, steps + 1
    return {
        "pairs_per_second": batch_size * steps / wall,
        "seconds_per_step": wall / steps,
        "pairs_per_cpu_second": batch_size * steps / cpu,
        "steps_left_out": left_out,
    }


def stamp() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def fit_options(args: argparse.Namespace, on_gpu: bool) -> dict[str, Any]:
    steps = args.warmup_steps + args.steps + 1  # + 1: the rate needs a stamp after the last timed step
    return dict(
        epochs=1,
        steps_per_epoch=steps,
        warmup_steps=steps // 10,
        optimizer_params={"lr": 2e-5},
        use_amp=on_gpu,
        show_progress_bar=False,
    )


# ------------------------------------------------------------------------------------------------- workers


def run_jaxst(args: argparse.Namespace) -> dict[str, Any]:
    import jax
    from jax import monitoring

    import jaxst
    from jaxst.training.callbacks import TrainerCallback

    compiles: list[tuple[float, float]] = []  # (time at its end, seconds)

    def on_duration(event: str, seconds: float, **_: Any) -> None:
        if event.startswith("/jax/core/compile/"):
            compiles.append((time.perf_counter(), seconds))

    monitoring.register_event_duration_secs_listener(on_duration)
    stamps: list[tuple[float, float]] = []

    class StepStamps(TrainerCallback):
        def on_step_end(self, run: Any, logs: dict[str, Any]) -> None:
            stamps.append(stamp())  # one call per step, once the step's loss is on the host

    on_gpu = jax.default_backend() == "gpu"
    examples = [jaxst.InputExample(texts=texts, label=label) for texts, label in training_pairs(args.loss)]
    model = jaxst.SentenceTransformer(args.model)
    if args.max_seq_length:
        model.max_seq_length = args.max_seq_length
    loader = jaxst.DataLoader(examples, shuffle=True, batch_size=args.batch_size, seed=0)
    loss = (
        jaxst.losses.MultipleNegativesRankingLoss(model)
        if args.loss == "mnrl"
        else jaxst.losses.CosineSimilarityLoss(model)
    )
    start = time.perf_counter()
    model.fit(train_objectives=[(loader, loss)], **fit_options(args, on_gpu), callbacks=[StepStamps()])
    timed_start = stamps[args.warmup_steps][0]
    return {
        **rates(stamps, args.warmup_steps, args.batch_size, [end for end, _ in compiles]),
        "warmup_seconds": timed_start - start,
        "compile_seconds": sum(s for end, s in compiles if start < end <= timed_start),
        "setting": f"jax {jax.__version__} {jax.default_backend()}, {'bfloat16' if on_gpu else 'float32'}",
    }


def run_sentence_transformers(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from sentence_transformers import InputExample, SentenceTransformer
    from sentence_transformers.sentence_transformer import losses
    from torch.utils.data import DataLoader

    on_gpu = torch.cuda.is_available()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    examples = [InputExample(texts=texts, label=label or 0.0) for texts, label in training_pairs(args.loss)]
    model = SentenceTransformer(args.model, device="cuda" if on_gpu else "cpu")
    if args.max_seq_length:
        model.max_seq_length = args.max_seq_length
    loader = DataLoader(examples, shuffle=True, batch_size=args.batch_size)
    loss = (
        losses.MultipleNegativesRankingLoss(model)
        if args.loss == "mnrl"
        else losses.CosineSimilarityLoss(model)
    )
    stamps: list[tuple[float, float]] = []

    def stamp_step(*_: Any) -> None:
        if on_gpu:
            torch.cuda.synchronize()
        stamps.append(stamp())

    loss.register_forward_pre_hook(stamp_step)
    fit = sentence_transformers_fit(model)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir:  # the Trainer's default output folder lands here
        os.chdir(workdir)
        fit(train_objectives=[(loader, loss)], **fit_options(args, on_gpu))
    return {
        **rates(stamps, args.warmup_steps, args.batch_size, []),
        "warmup_seconds": stamps[args.warmup_steps][0] - start,
        "setting": f"torch {torch.__version__} {'cuda, float16 autocast' if on_gpu else 'cpu, float32'}, "
        f"{torch.get_num_threads()} threads",
    }


WORKERS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "jaxst": run_jaxst,
    "sentence-transformers": run_sentence_transformers,
}


def worker(args: argparse.Namespace) -> None:
    """Runs one (framework, loss) measurement and prints its result as one JSON line."""
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.threads])  # before jax / torch start
    load_before = load_average()
    result = WORKERS[args.worker](args)
    result["load"] = f"{load_before} -> {load_average()}"
    result["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB
    print(RESULT_PREFIX + json.dumps(result), flush=True)


# ------------------------------------------------------------------------------------------------ launcher


def measure(framework: str, loss: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--worker", framework, "--loss", loss]
    for option in ("steps", "warmup_steps", "batch_size", "threads", "model", "max_seq_length"):
        command += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if completed.returncode or not lines:
        sys.exit(f"{framework} / {loss} failed (exit {completed.returncode}):\n{completed.stderr[-3000:]}")
    return json.loads(lines[-1][len(RESULT_PREFIX) :])


def describe(framework: str, result: dict[str, Any]) -> str:
    text = (
        f"  {framework:>21}: {result['pairs_per_second']:7.1f} pairs/s "
        f"({result['seconds_per_step']:.2f} s/step), "
        f"{result['pairs_per_cpu_second']:7.1f} pairs/CPU-s  (warm-up {result['warmup_seconds']:.0f} s"
    )
    if "compile_seconds" in result:
        text += f", of which compiling {result['compile_seconds']:.0f} s"
    if result["steps_left_out"]:
        text += f"; {result['steps_left_out']} timed step(s) with a compile left out"
    return (
        text
        + f"; {result['setting']}; peak RSS {result['peak_rss_gib']:.1f} GiB; load average {result['load']})"
    )


def cpu_model() -> str:
    """The CPU's name as /proc/cpuinfo gives it ("unknown" elsewhere)."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown")


def launch(args: argparse.Namespace) -> None:
    print(f"{machine()} | {cpu_model()}")
    print(
        f"{args.model} (max_seq_length {args.max_seq_length or 'as saved'}), batch size {args.batch_size} "
        f"pairs, {args.warmup_steps} warm-up + {args.steps} "
        f"timed steps, {args.threads} threads each, {args.rounds} round(s)"
    )
    for loss in args.losses:
        print(f"{LOSSES[loss]}:", flush=True)
        results: dict[str, list[dict[str, Any]]] = {framework: [] for framework in FRAMEWORKS}
        for _ in range(args.rounds):
            for framework in FRAMEWORKS:
                results[framework].append(measure(framework, loss, args))
                print(describe(framework, results[framework][-1]), flush=True)
        for key, unit in (("pairs_per_second", "pairs/s"), ("pairs_per_cpu_second", "pairs/CPU-s")):
            ours = statistics.median(r[key] for r in results["jaxst"])
            theirs = statistics.median(r[key] for r in results["sentence-transformers"])
            print(
                f"  median: jaxst {ours:.1f}, sentence-transformers {theirs:.1f} {unit}; "
                f"ratio jaxst / sentence-transformers {ours / theirs:.2f}x",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--losses", nargs="+", choices=list(LOSSES), default=list(LOSSES))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30, help="timed steps")
    parser.add_argument("--warmup-steps", type=int, default=5, help="untimed steps first (compiles)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--model", help="model folder (default: all-MiniLM-L6-v2; see bench_model.py)")
    parser.add_argument("--max-seq-length", type=int, default=0, help="truncate texts (0: the model's own)")
    parser.add_argument("--worker", choices=list(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--loss", choices=list(LOSSES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.model = args.model or minilm_path()
    worker(args) if args.worker else launch(args)


if __name__ == "__main__":
    main()
