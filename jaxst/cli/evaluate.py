"""Evaluate a model with sentence-transformers' evaluators on data files and print the metrics."""

from __future__ import annotations

import argparse
import json

from jaxst.cli.errors import CliError, load_model
from jaxst.cli.evaluators import file_evaluator, format_metrics, ir_evaluator


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a sentence-transformers or Hugging Face model folder")
    parser.add_argument("--sts", help="pairs with a similarity score (text, text, score): Pearson/Spearman")
    parser.add_argument("--binary", help="pairs with a 0/1 label (text, text, label): accuracy, F1, AP")
    parser.add_argument("--triplets", help="(anchor, positive, negative) rows: triplet accuracy")
    parser.add_argument(
        "--ir",
        nargs=3,
        metavar=("QUERIES", "CORPUS", "QRELS"),
        help="retrieval: queries (id, text), corpus (id, text), qrels (query id, corpus id)",
    )
    parser.add_argument("--batch-size", type=int, default=32, help="encode batch size (default 32)")
    parser.add_argument("--json", dest="json_path", help="also write the metrics to this JSON file")


def run(args: argparse.Namespace) -> int:
    chosen = [(kind, getattr(args, kind)) for kind in ("sts", "binary", "triplets") if getattr(args, kind)]
    if args.ir:
        chosen.append(("ir", args.ir))
    if len(chosen) != 1:
        raise CliError("give exactly one of --sts, --binary, --triplets, --ir")
    kind, source = chosen[0]
    evaluator = ir_evaluator(*source) if kind == "ir" else file_evaluator(kind, source)
    evaluator.batch_size = args.batch_size
    model = load_model(args.model)
    metrics = evaluator(model)
    print(format_metrics(metrics))
    print(f"primary metric: {evaluator.primary_metric}")
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump({k: float(v) for k, v in metrics.items()}, f, indent=2)
    return 0
