"""Fine-tune a model on a data file with any jaxst loss; writes the model, metrics.jsonl and a PNG plot.

Options come from flags or from a JSON / YAML --config whose keys are the flag names with
underscores (model, train, loss, loss_args, epochs, batch_size, lr, warmup_ratio, warmup_steps, seed,
max_seq_length, eval, evaluator, evaluation_steps, output, text_columns, label_column, train_split,
eval_split); flags given on the command line win. A config value must have the flag's type: a batch
size of "3" or 3.0 is an error.
Training and evaluation data: .tsv / .csv / .jsonl with a header (optionally .gz), or a saved Hugging
Face dataset folder; a column named label or score holds the labels, the other columns are the texts,
in order, unless --text-columns and --label-column name them (for --train and --eval alike);
--train-split and --eval-split keep the rows of one split of a file with a `split` column.
"""

from __future__ import annotations

import argparse
import inspect
import json
from pathlib import Path
from typing import Any

from jaxst.cli.data_files import Columns, add_column_arguments, read_examples
from jaxst.cli.errors import CliError, load_model, set_max_seq_length
from jaxst.cli.evaluators import FILE_KINDS, file_evaluator
from jaxst.cli.files import output_folder, read_text
from jaxst.cli.options import COUNT, FRACTION, NON_NEGATIVE_COUNT, POSITIVE, Number, json_object

DEFAULTS: dict[str, Any] = {
    "model": None,
    "train": None,
    "loss": "MultipleNegativesRankingLoss",
    "loss_args": {},
    "epochs": 1,
    "batch_size": 16,
    "lr": 2e-5,
    "warmup_ratio": 0.1,
    "warmup_steps": None,
    "seed": 42,
    "max_seq_length": None,
    "eval": None,
    "evaluator": "sts",
    "evaluation_steps": 0,
    "output": None,
    "text_columns": None,
    "label_column": None,
    "train_split": None,
    "eval_split": None,
}
NUMBER_OPTIONS: dict[str, Number] = {
    "epochs": COUNT,
    "batch_size": COUNT,
    "lr": POSITIVE,
    "warmup_ratio": FRACTION,
    "warmup_steps": NON_NEGATIVE_COUNT,
    "seed": NON_NEGATIVE_COUNT,
    "max_seq_length": COUNT,
    "evaluation_steps": NON_NEGATIVE_COUNT,
}
PLOT_FILE = "training.png"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="JSON or YAML file of options (keys: the flag names, underscores)")
    parser.add_argument("--model", help="model folder to start from")
    parser.add_argument(
        "--train", help="training data: .tsv/.csv/.jsonl (or .gz) file or saved dataset folder"
    )
    parser.add_argument("--loss", help="loss class name, e.g. CosineSimilarityLoss (default MNRL)")
    parser.add_argument(
        "--loss-args", type=json_object, help="loss keyword arguments as JSON, e.g. '{\"scale\": 20}'"
    )
    parser.add_argument("--epochs", type=NUMBER_OPTIONS["epochs"], help="training epochs (default 1)")
    parser.add_argument(
        "--batch-size", type=NUMBER_OPTIONS["batch_size"], help="examples per batch (default 16)"
    )
    parser.add_argument("--lr", type=NUMBER_OPTIONS["lr"], help="peak learning rate, > 0 (default 2e-5)")
    parser.add_argument(
        "--warmup-ratio",
        type=NUMBER_OPTIONS["warmup_ratio"],
        help="warmup as a fraction of all steps (default 0.1)",
    )
    parser.add_argument(
        "--warmup-steps", type=NUMBER_OPTIONS["warmup_steps"], help="warmup steps (overrides --warmup-ratio)"
    )
    parser.add_argument("--seed", type=NUMBER_OPTIONS["seed"], help="shuffling and dropout seed (default 42)")
    parser.add_argument(
        "--max-seq-length", type=NUMBER_OPTIONS["max_seq_length"], help="truncate texts to this many tokens"
    )
    parser.add_argument("--eval", help="evaluation data file, evaluated after each epoch")
    parser.add_argument("--evaluator", choices=FILE_KINDS, help="kind of --eval data (default sts)")
    parser.add_argument(
        "--evaluation-steps",
        type=NUMBER_OPTIONS["evaluation_steps"],
        help="also evaluate every N steps (default 0: off)",
    )
    parser.add_argument("--output", help="output folder: model, metrics.jsonl, training.png")
    add_column_arguments(parser, "--train and --eval")
    parser.add_argument("--train-split", help="train only on the rows whose 'split' column holds this value")
    parser.add_argument(
        "--eval-split", help="evaluate only on the rows whose 'split' column holds this value"
    )


def read_config(path: str) -> dict[str, Any]:
    text = read_text(path, "config file")
    if path.endswith((".yaml", ".yml")):
        import yaml

        try:
            config = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise CliError(f"{path}: not valid YAML ({error})") from None
    else:
        try:
            config = json.loads(text)
        except json.JSONDecodeError as error:
            raise CliError(f"{path}: not valid JSON ({error.msg}, line {error.lineno})") from None
    if not isinstance(config, dict):
        raise CliError(f"{path}: the config must be a mapping of option names to values")
    unknown = sorted(set(config) - set(DEFAULTS))
    if unknown:
        raise CliError(f"{path}: unknown config key(s) {', '.join(unknown)}; known: {', '.join(DEFAULTS)}")
    for key, value in config.items():
        problem = None if value is None and DEFAULTS[key] is None else config_problem(key, value)
        if problem:
            raise CliError(f"{path}: {key} {problem}")
    return config


def config_problem(key: str, value: Any) -> str | None:
    """None when a config value has the type (and range) its flag takes, else what is wrong."""
    if key in NUMBER_OPTIONS:
        return NUMBER_OPTIONS[key].problem(value)
    if key == "loss_args":
        return None if isinstance(value, dict) else f"must be a mapping of keyword arguments, got {value!r}"
    if key == "text_columns":
        names = isinstance(value, list) and value and all(isinstance(v, str) for v in value)
        return None if names else f"must be a list of column names, got {value!r}"
    if key == "evaluator" and value not in FILE_KINDS:
        return f"must be one of {', '.join(FILE_KINDS)}, got {value!r}"
    return None if isinstance(value, str) else f"must be a string, got {value!r}"


def resolve_options(args: argparse.Namespace) -> dict[str, Any]:
    options = dict(DEFAULTS)
    if args.config:
        options.update(read_config(args.config))
    options.update({k: v for k, v in vars(args).items() if k in DEFAULTS and v is not None})
    for required in ("model", "train", "output"):
        if not options[required]:
            raise CliError(f"missing option: --{required.replace('_', '-')} (or {required!r} in --config)")
    return options


def loss_class(name: str) -> type:
    """The jaxst loss class called `name`, or a CliError listing the known ones."""
    from jaxst import losses

    known = sorted(
        n
        for n in losses.__all__
        if inspect.isclass(getattr(losses, n))
        and issubclass(getattr(losses, n), losses.Loss)
        and getattr(losses, n) is not losses.Loss
    )
    if name not in known:
        raise CliError(f"unknown loss {name!r}; known losses: {', '.join(known)}")
    return getattr(losses, name)


def plot(metrics_file: Path, png: Path) -> None:
    """Training loss per step, and the evaluation's primary score per step on a second axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(line) for line in metrics_file.read_text().splitlines()]
    steps = [r["step"] for r in records if "loss" in r]
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.plot(steps, [r["loss"] for r in records if "loss" in r], color="tab:blue", label="training loss")
    axis.set_xlabel("step")
    axis.set_ylabel("training loss", color="tab:blue")
    evaluations = [r for r in records if "eval" in r]
    if evaluations:
        score = axis.twinx()
        last_step = steps[-1] if steps else 0
        x = [r["step"] if r["step"] >= 0 else last_step for r in evaluations]
        key = next(iter(evaluations[0]["eval"]))
        score.plot(x, [r["eval"][key] for r in evaluations], "o-", color="tab:orange")
        score.set_ylabel(key, color="tab:orange")
    figure.tight_layout()
    figure.savefig(png, dpi=100)
    plt.close(figure)


def run(args: argparse.Namespace) -> int:
    from jaxst import DataLoader

    options = resolve_options(args)
    output = output_folder(options["output"], "--output")
    make_loss = loss_class(options["loss"])
    texts = tuple(options["text_columns"]) if options["text_columns"] else None
    examples = read_examples(
        options["train"], Columns(texts, options["label_column"], options["train_split"])
    )
    evaluator = None
    if options["eval"]:
        columns = Columns(texts, options["label_column"], options["eval_split"])
        evaluator = file_evaluator(options["evaluator"], options["eval"], columns)
    model = load_model(options["model"])
    if options["max_seq_length"] is not None:
        set_max_seq_length(model, options["max_seq_length"])
    try:
        loss = make_loss(model, **options["loss_args"])
    except (TypeError, ValueError) as error:
        raise CliError(f"bad arguments for {options['loss']}: {error}") from None
    loader = DataLoader(examples, batch_size=options["batch_size"], shuffle=True, seed=options["seed"])
    steps = max(1, len(examples) // options["batch_size"]) * options["epochs"]
    warmup = (
        options["warmup_steps"]
        if options["warmup_steps"] is not None
        else int(steps * options["warmup_ratio"])
    )
    try:
        result = model.fit(
            train_objectives=[(loader, loss)],
            evaluator=evaluator,
            epochs=options["epochs"],
            warmup_steps=warmup,
            optimizer_params={"lr": options["lr"]},
            evaluation_steps=options["evaluation_steps"],
            output_path=str(output),
            save_best_model=False,
            seed=options["seed"],
        )
    except ValueError as error:
        raise CliError(str(error)) from None
    plot(output / "metrics.jsonl", output / PLOT_FILE)
    print(f"trained {result['global_step']} steps, mean training loss {result['training_loss']:.4f}")
    print(f"wrote the model, metrics.jsonl and {PLOT_FILE} to {output}")
    return 0
