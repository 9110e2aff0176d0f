"""The Trainer API: all-MiniLM-L6-v2 fine-tuned on an STS-B train slice for one epoch, jaxst's
SentenceTransformerTrainer against sentence-transformers' own (a Hugging Face Trainer; needs accelerate).

Both run the same script but for the import: a `datasets.Dataset` of (sentence1, sentence2, score / 5),
CosineSimilarityLoss, and SentenceTransformerTrainingArguments(num_train_epochs=1,
per_device_train_batch_size=16, learning_rate=2e-5, warmup_steps=0.1, seed=42, save_strategy="no",
report_to="none"), the rest at their defaults (linear schedule, weight decay 0, AdamW betas (0.9, 0.999),
clipping at 1, dropout on). Each scores STS-B test before and after with its own
EmbeddingSimilarityEvaluator (Spearman of cosine x100). The runs shuffle with their own generators and
draw their own dropout masks, so they differ by training noise; the goal is within 1.0 point.

Known difference: sentence-transformers also trains the last, smaller batch of the epoch; jaxst trains
full batches only.

    python benchmarks/trainer_stsb.py                        # the first 1,600 train pairs (100 steps)
    python benchmarks/trainer_stsb.py --train-pairs 5749     # all of STS-B train
    python benchmarks/trainer_stsb.py --framework jaxst      # one of them
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_model import minilm_path  # noqa: E402
from stsb_quality import machine, train_and_score  # noqa: E402

from jaxst.data import load_stsb  # noqa: E402


def stsb_dataset(split: str, n: int | None = None) -> Any:
    """An STS-B split as the sentence-transformers/stsb dataset has it: scores in [0, 1]."""
    import datasets

    rows = load_stsb(split)[:n]
    return datasets.Dataset.from_dict(
        {
            "sentence1": [a for a, _, _ in rows],
            "sentence2": [b for _, b, _ in rows],
            "score": [score for _, _, score in rows],
        }
    )


def trainer_run(module: Any, args: argparse.Namespace, model: Any, output_dir: str) -> dict[str, float]:
    """The script both frameworks run; `module` holds the framework's classes."""
    train_dataset = stsb_dataset("train", args.train_pairs)
    test_dataset = stsb_dataset("test")
    evaluator = module.EmbeddingSimilarityEvaluator(
        test_dataset["sentence1"], test_dataset["sentence2"], test_dataset["score"], name="sts-test"
    )
    training_args = module.SentenceTransformerTrainingArguments(
        output_dir=output_dir,
        num_train_epochs=1,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr,
        warmup_steps=args.warmup_ratio,
        seed=args.seed,
        save_strategy="no",
        report_to="none",
        disable_tqdm=not args.progress,
    )
    trainer = module.SentenceTransformerTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        loss=module.CosineSimilarityLoss(model),
    )
    return train_and_score(lambda: evaluator(model)["sts-test_spearman_cosine"], trainer.train)


def run_jaxst(args: argparse.Namespace, output_dir: str) -> dict[str, float]:
    from types import SimpleNamespace

    import jaxst
    from jaxst.evaluation import EmbeddingSimilarityEvaluator
    from jaxst.losses import CosineSimilarityLoss

    module = SimpleNamespace(
        EmbeddingSimilarityEvaluator=EmbeddingSimilarityEvaluator,
        SentenceTransformerTrainingArguments=jaxst.SentenceTransformerTrainingArguments,
        SentenceTransformerTrainer=jaxst.SentenceTransformerTrainer,
        CosineSimilarityLoss=CosineSimilarityLoss,
    )
    return trainer_run(module, args, jaxst.SentenceTransformer(minilm_path()), output_dir)


def run_sentence_transformers(args: argparse.Namespace, output_dir: str) -> dict[str, float]:
    from types import SimpleNamespace

    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator
    from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss
    from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments

    torch.set_num_threads(len(os.sched_getaffinity(0)))  # the CPUs this process may use, as XLA does
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    module = SimpleNamespace(
        EmbeddingSimilarityEvaluator=EmbeddingSimilarityEvaluator,
        SentenceTransformerTrainingArguments=SentenceTransformerTrainingArguments,
        SentenceTransformerTrainer=SentenceTransformerTrainer,
        CosineSimilarityLoss=CosineSimilarityLoss,
    )
    return trainer_run(module, args, SentenceTransformer(minilm_path(), device="cpu"), output_dir)


RUNNERS = {"jaxst": run_jaxst, "sentence-transformers": run_sentence_transformers}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--framework", choices=["both", *RUNNERS], default="both")
    parser.add_argument("--train-pairs", type=int, default=1600)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--warmup-ratio", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--progress", action="store_true", help="show the training progress bars")
    args = parser.parse_args()

    print(machine(), flush=True)
    print(
        f"STS-B train[:{args.train_pairs}], one epoch with each framework's SentenceTransformerTrainer, "
        f"CosineSimilarityLoss, batch {args.batch_size}, lr {args.lr}, {args.warmup_ratio:.0%} warm-up; "
        "STS-B test Spearman(cosine) x100",
        flush=True,
    )
    names = list(RUNNERS) if args.framework == "both" else [args.framework]
    results = {}
    for name in names:
        with tempfile.TemporaryDirectory() as output_dir:
            results[name] = result = RUNNERS[name](args, output_dir)
        print(
            f"{name}: before {result['before']:.2f}, after {result['after']:.2f} "
            f"({result['after'] - result['before']:+.2f}); training {result['train_seconds']:.0f} s, "
            f"load average {result['load']}",
            flush=True,
        )
    if len(results) == 2:
        gap = results["jaxst"]["after"] - results["sentence-transformers"]["after"]
        print(f"jaxst - sentence-transformers after training: {gap:+.2f} points (goal: within 1.0)")


if __name__ == "__main__":
    main()
