"""The base of jaxst's evaluators: sentence-transformers' evaluator protocol, metric names and CSV files.

An evaluator is called as `evaluator(model, output_path=None, epoch=-1, steps=-1) -> dict[str, float]`
(the training loop's `evaluator=`); `primary_metric` names the entry used to select checkpoints and
`greater_is_better` says which way is better. Metric keys carry the evaluator's `name` as a prefix
(`"sts_dev_spearman_cosine"`), exactly as in sentence-transformers.

Unlike sentence-transformers, evaluators do not write into a model card (jaxst models have none).
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from enum import Enum

import numpy as np

from jaxst.similarity import SIMILARITY_FUNCTIONS
from jaxst.util.encoding import encode_texts


def similarity_name(similarity: str | Enum) -> str:
    """The similarity function name ("cosine", "dot", "euclidean", "manhattan") of a name or enum member."""
    name = similarity.value if isinstance(similarity, Enum) else similarity
    if name not in SIMILARITY_FUNCTIONS:
        raise ValueError(
            f"Unknown similarity function {name!r}; expected one of {list(SIMILARITY_FUNCTIONS)}."
        )
    return name


def resolve_progress_bar(show_progress_bar: bool | None, logger: logging.Logger) -> bool:
    """`show_progress_bar`, or when None whether `logger` logs at INFO or DEBUG (sentence-transformers)."""
    if show_progress_bar is None:
        return logger.getEffectiveLevel() in (logging.INFO, logging.DEBUG)
    return show_progress_bar


def progress_text(epoch: int, steps: int, truncate_dim: int | None = None) -> str:
    """The " after epoch 2" / " in epoch 2 after 100 steps" suffix of the evaluators' log lines."""
    if epoch == -1:
        text = ""
    elif steps == -1:
        text = f" after epoch {epoch}"
    else:
        text = f" in epoch {epoch} after {steps} steps"
    return text + (f" (truncated to {truncate_dim})" if truncate_dim is not None else "")


def append_csv_row(
    output_path: str, csv_file: str, headers: Sequence[str], row: Sequence, lineterminator: str = "\r\n"
) -> None:
    """Append `row` to output_path/csv_file, writing `headers` first when the file is new.

    sentence-transformers writes with `csv.writer` (lines end in "\\r\\n") except for information retrieval,
    which joins with "," and ends lines in "\\n"; `lineterminator` reproduces either.
    """
    os.makedirs(output_path, exist_ok=True)
    csv_path = os.path.join(output_path, csv_file)
    is_new = not os.path.isfile(csv_path)
    with open(csv_path, newline="", mode="w" if is_new else "a", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator=lineterminator)
        if is_new:
            writer.writerow(headers)
        writer.writerow(row)


def check_same_length(**columns: Sequence) -> None:
    """Raises ValueError naming the columns and their lengths unless they all have the same length."""
    names, lengths = list(columns), [len(column) for column in columns.values()]
    if len(set(lengths)) > 1:
        raise ValueError(
            f"{', '.join(names[:-1])} and {names[-1]} must have the same length, got "
            f"{', '.join(map(str, lengths[:-1]))} and {lengths[-1]}."
        )


def csv_file_name(kind: str, *qualifiers: str | None) -> str:
    """`{kind}[_{qualifier}...]_results.csv`, empty qualifiers left out, as sentence-transformers names it."""
    return "_".join([kind, *(q for q in qualifiers if q)]) + "_results.csv"


def example_columns(examples: Sequence, num_texts: int, with_labels: bool) -> list[list]:
    """The first `num_texts` text columns of InputExamples, then (with_labels) their labels."""
    columns = [[example.texts[i] for example in examples] for i in range(num_texts)]
    return columns + [[example.label for example in examples]] if with_labels else columns


class BaseEvaluator:
    """Base of all evaluators: `__call__(model, output_path, epoch, steps)` returns a dict of metrics.

    Attributes:
        greater_is_better: whether a higher primary metric is better.
        primary_metric: key (with the name prefix) of the metric used for model selection.
    """

    def __init__(self) -> None:
        self.greater_is_better = True
        self.primary_metric: str | None = None

    def __call__(
        self, model, output_path: str | None = None, epoch: int = -1, steps: int = -1
    ) -> dict[str, float]:
        """Evaluate `model`, writing a CSV row under `output_path` if given (epoch / steps -1: the end)."""
        raise NotImplementedError

    def prefix_name_to_metrics(self, metrics: dict[str, float], name: str) -> dict[str, float]:
        """`{name}_{key}` for every metric (as Python floats); primary_metric gets the same prefix."""
        if not name:
            return {key: float(value) for key, value in metrics.items()}
        if self.primary_metric is not None and not self.primary_metric.startswith(name + "_"):
            self.primary_metric = f"{name}_{self.primary_metric}"
        return {f"{name}_{key}": float(value) for key, value in metrics.items()}

    def use_model_similarity(self, model) -> None:
        """Without `similarity_fn_names` given, evaluate the model's own similarity function (and add its
        CSV columns). For the evaluators with `similarity_fn_names` and `_append_csv_headers`."""
        if not self.similarity_fn_names:
            self.similarity_fn_names = [similarity_name(model.similarity_fn_name)]
            self._append_csv_headers(self.similarity_fn_names)

    def embed_inputs(self, model, sentences: Sequence[str], **kwargs) -> np.ndarray:
        """[N, D] float32 embeddings with the evaluator's `batch_size`, `show_progress_bar`, `truncate_dim`.

        Every evaluator that embeds sets those three attributes.
        """
        return encode_texts(
            model,
            sentences,
            batch_size=self.batch_size,
            show_progress_bar=self.show_progress_bar,
            truncate_dim=self.truncate_dim,
            **kwargs,
        )


# The name sentence-transformers used before BaseEvaluator.
SentenceEvaluator = BaseEvaluator
