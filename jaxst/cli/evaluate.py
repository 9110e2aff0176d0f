"""Evaluate a model with sentence-transformers' evaluators on data files and print the metrics.

The --sts, --binary and --triplets files are read like `jaxst fit`'s data (.tsv / .csv / .jsonl,
optionally .gz, or a saved dataset folder); --text-columns, --label-column and --split pick their
columns and rows, e.g. for the STS-B file shipped with jaxst:
`jaxst evaluate MODEL --sts stsbenchmark.tsv.gz --text-columns sentence1 sentence2 --score-column score
--split test`.
"""

from __future__ import annotations

import argparse
import json

from jaxst.cli.data_files import Columns, add_column_arguments
from jaxst.cli.errors import CliError, load_model
from jaxst.cli.evaluators import file_evaluator, format_metrics, ir_evaluator
from jaxst.cli.files import output_path, write_bytes
from jaxst.cli.options import COUNT


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
    add_column_arguments(parser, "the --sts / --binary / --triplets file")
    parser.add_argument(
        "--split", help="evaluate only the rows whose 'split' column holds this value, e.g. test"
    )
    parser.add_argument("--batch-size", type=COUNT, default=32, help="encode batch size (default 32)")
    parser.add_argument("--json", dest="json_path", help="also write the metrics to this JSON file")


def run(args: argparse.Namespace) -> int:
    chosen = [(kind, getattr(args, kind)) for kind in ("sts", "binary", "triplets") if getattr(args, kind)]
    if args.ir:
        chosen.append(("ir", args.ir))
    if len(chosen) != 1:
        raise CliError("give exactly one of --sts, --binary, --triplets, --ir")
    kind, source = chosen[0]
    columns = Columns(tuple(args.text_columns) if args.text_columns else None, args.label_column, args.split)
    if kind == "ir" and columns != Columns():
        raise CliError("--text-columns, --label-column and --split apply to --sts, --binary, --triplets")
    json_path = output_path(args.json_path, "--json") if args.json_path else None
    evaluator = ir_evaluator(*source) if kind == "ir" else file_evaluator(kind, source, columns)
    evaluator.batch_size = args.batch_size
    model = load_model(args.model)
    metrics = evaluator(model)
    print(format_metrics(metrics))
    print(f"primary metric: {evaluator.primary_metric}")
    if json_path:
        values = {k: float(v) for k, v in metrics.items()}
        write_bytes(json_path, json.dumps(values, indent=2).encode())
    return 0
