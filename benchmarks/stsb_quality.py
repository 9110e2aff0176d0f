"""Fine-tuning quality: all-MiniLM-L6-v2 on STS-B train, jaxst against PyTorch sentence-transformers.

Both frameworks run the same recipe through their own `fit` (sentence-transformers' training_stsbenchmark
example): CosineSimilarityLoss on the 5,749 STS-B train pairs (gold scores / 5, so labels in [0, 1]),
batch size 16, shuffled, AdamW lr 2e-5, weight decay 0.01, WarmupLinear schedule with 10% of the steps as
warm-up (ceil(0.1 * epochs * len(dataloader)) = 144 steps for 4 epochs), grad-norm clipping at 1,
dropout on, float32. Each is scored before and after with its own EmbeddingSimilarityEvaluator on the
STS-B test split: Spearman correlation of the cosine similarities with the gold scores, x100 (the
published figure of the untrained model is 82.03).

The two runs shuffle with their own random generators and draw their own dropout masks, so they differ
by training noise; the goal is that jaxst lands within 0.5 points of sentence-transformers.

Known difference: sentence-transformers trains the last, smaller batch of each epoch too (360 steps per
epoch here, its schedule over 4 x 360 steps), while jaxst trains full batches only (359 steps per epoch,
its schedule over 4 x 359 steps).

    python benchmarks/stsb_quality.py                     # both frameworks, one after the other
    python benchmarks/stsb_quality.py --framework jaxst   # one of them
    taskset -c 1 python benchmarks/stsb_quality.py --framework sentence-transformers  # on one CPU
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import math
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_model import minilm_path  # noqa: E402

from jaxst.data import load_stsb  # noqa: E402

PUBLISHED_BEFORE = 82.03


def load_average() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def machine() -> str:
    return (
        f"{datetime.date.today()} | {platform.machine()}, {os.cpu_count()} CPUs | "
        f"load average at start {load_average()}"
    )


def warmup_steps(num_batches: int, epochs: int, ratio: float) -> int:
    """sentence-transformers' example: ceil(ratio * epochs * batches per epoch)."""
    return math.ceil(num_batches * epochs * ratio)


def train_pairs(args: argparse.Namespace) -> list[tuple[str, str, float]]:
    """The STS-B train pairs (the first `--train-pairs` of them, for a quick try)."""
    return load_stsb("train")[: args.train_pairs]


def run_jaxst(args: argparse.Namespace) -> dict[str, float]:
    import jaxst
    from jaxst.evaluation import EmbeddingSimilarityEvaluator

    train = [jaxst.InputExample(texts=[a, b], label=score) for a, b, score in train_pairs(args)]
    test = load_stsb("test")
    evaluator = EmbeddingSimilarityEvaluator(*zip(*test, strict=True), name="sts-test", write_csv=False)
    model = jaxst.SentenceTransformer(minilm_path())
    loader = jaxst.DataLoader(train, shuffle=True, batch_size=args.batch_size, seed=args.seed)
    loss = jaxst.losses.CosineSimilarityLoss(model)
    return train_and_score(
        lambda: evaluator(model)["sts-test_spearman_cosine"],
        lambda: model.fit(
            train_objectives=[(loader, loss)],
            epochs=args.epochs,
            warmup_steps=warmup_steps(len(loader), args.epochs, args.warmup_ratio),
            optimizer_params={"lr": args.lr},
            show_progress_bar=args.progress,
            seed=args.seed,
        ),
    )


def run_sentence_transformers(args: argparse.Namespace) -> dict[str, float]:
    import torch
    from sentence_transformers import InputExample, SentenceTransformer
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator
    from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss
    from torch.utils.data import DataLoader

    torch.set_num_threads(len(os.sched_getaffinity(0)))  # the CPUs this process may use, as XLA does
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    train = [InputExample(texts=[a, b], label=score) for a, b, score in train_pairs(args)]
    test = load_stsb("test")
    evaluator = EmbeddingSimilarityEvaluator(*zip(*test, strict=True), name="sts-test", write_csv=False)
    model = SentenceTransformer(minilm_path(), device="cpu")
    loader = DataLoader(train, shuffle=True, batch_size=args.batch_size)
    loss = CosineSimilarityLoss(model)

    def fit() -> None:
        with tempfile.TemporaryDirectory() as workdir:  # the Trainer's default output folder lands here
            cwd = os.getcwd()
            os.chdir(workdir)
            try:
                sentence_transformers_fit(model)(
                    train_objectives=[(loader, loss)],
                    epochs=args.epochs,
                    warmup_steps=warmup_steps(len(loader), args.epochs, args.warmup_ratio),
                    optimizer_params={"lr": args.lr},
                    show_progress_bar=args.progress,
                )
            finally:
                os.chdir(cwd)

    return train_and_score(lambda: evaluator(model)["sts-test_spearman_cosine"], fit)


def sentence_transformers_fit(model: Any) -> Callable[..., None]:
    """`model.fit` (a Hugging Face Trainer underneath, which needs `accelerate` and `datasets`), else
    `model.old_fit`.

    old_fit is sentence-transformers' own pre-v3 training loop with the same arguments and recipe
    (AdamW with the same parameter groups, the same schedulers, clipping, round robin); it needs no
    `accelerate`.
    """
    missing = [name for name in ("accelerate", "datasets") if importlib.util.find_spec(name) is None]
    if not missing:
        print("sentence-transformers: SentenceTransformer.fit", flush=True)
        return model.fit
    print(f"sentence-transformers: SentenceTransformer.old_fit (fit needs {', '.join(missing)})", flush=True)
    return model.old_fit


def train_and_score(score: Callable[[], float], fit: Callable[[], object]) -> dict[str, float]:
    """Spearman x100 before and after `fit`, the training's wall time and the load average around it."""
    before = 100 * score()
    load_before = load_average()
    start = time.perf_counter()
    fit()
    seconds = time.perf_counter() - start
    return {
        "before": before,
        "after": 100 * score(),
        "train_seconds": seconds,
        "load": f"{load_before} -> {load_average()}",
    }


RUNNERS = {"jaxst": run_jaxst, "sentence-transformers": run_sentence_transformers}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--framework", choices=["both", *RUNNERS], default="both")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--warmup-ratio", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--train-pairs", type=int, default=None, help="train on the first N pairs only")
    parser.add_argument("--progress", action="store_true", help="show the training progress bars")
    args = parser.parse_args()

    print(machine(), flush=True)
    print(
        f"STS-B train, CosineSimilarityLoss, batch {args.batch_size}, lr {args.lr}, {args.epochs} epochs, "
        f"{args.warmup_ratio:.0%} warm-up; STS-B test Spearman(cosine) x100 "
        f"(published before: {PUBLISHED_BEFORE})",
        flush=True,
    )
    names = list(RUNNERS) if args.framework == "both" else [args.framework]
    results = {}
    for name in names:
        results[name] = result = RUNNERS[name](args)
        print(
            f"{name}: before {result['before']:.2f}, after {result['after']:.2f} "
            f"({result['after'] - result['before']:+.2f}); training {result['train_seconds']:.0f} s, "
            f"load average {result['load']}",
            flush=True,
        )
    if len(results) == 2:
        gap = results["jaxst"]["after"] - results["sentence-transformers"]["after"]
        print(f"jaxst - sentence-transformers after training: {gap:+.2f} points (goal: within 0.5)")


if __name__ == "__main__":
    main()
