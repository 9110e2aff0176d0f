"""The base of jaxst's evaluators: sentence-transformers' evaluator protocol, metric names and CSV files.

An evaluator is called as `evaluator(model, output_path=None, epoch=-1, steps=-1) -> dict[str, float]`
(the training loop's `evaluator=`); `primary_metric` names the entry used to select checkpoints and
`greater_is_better` says which way is better. Metric keys carry the evaluator's `name` as a prefix
(`"sts_dev_spearman_cosine"`), exactly as in sentence-transformers.

`BaseEvaluator` is that protocol alone. `EmbeddingEvaluator` is sentence-transformers' `__call__` written
once (the log line, the CSV file, the primary metric, the name prefix); an evaluator built on it says only
how it computes its metrics and which CSV columns it writes.

Unlike sentence-transformers, evaluators do not write into a model card (jaxst models have none).
"""

from __future__ import annotations

import abc
import csv
import logging
import os
from collections.abc import Sequence
from enum import Enum
from typing import ClassVar

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


def csv_file_name(kind: str, *qualifiers: str | None) -> str:
    """`{kind}[_{qualifier}...]_results.csv`, empty qualifiers left out, as sentence-transformers names it."""
    return "_".join([kind, *(q for q in qualifiers if q)]) + "_results.csv"


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
    output_path: str, csv_file: str, headers: Sequence[str], row: Sequence, lineterminator: str
) -> None:
    """Append `row` to output_path/csv_file, writing `headers` first when the file is new."""
    os.makedirs(output_path, exist_ok=True)
    csv_path = os.path.join(output_path, csv_file)
    is_new = not os.path.isfile(csv_path)
    with open(csv_path, newline="", mode="w" if is_new else "a", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator=lineterminator)
        if is_new:
            writer.writerow(headers)
        writer.writerow(row)


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


class EmbeddingEvaluator(BaseEvaluator, abc.ABC):
    """An evaluator that embeds texts with the model and appends one CSV row per call.

    A call, sentence-transformers' `__call__` written once:
    1. logs `"{log_title} on the {name} dataset{progress}:"` (see `progress_text`) to the logger of the
       subclass's module;
    2. gets the metrics and the CSV values from `compute`;
    3. when output_path is given and write_csv, appends `[epoch, steps, *values]` to
       output_path/csv_file, writing `csv_headers` first when the file is new;
    4. sets primary_metric to `choose_primary_metric(metrics)`;
    5. returns the metrics as Python floats, their keys (and primary_metric) prefixed with `{name}_`
       when name is set.

    A subclass sets `log_title` and `csv_kind` (the CSV file is `{csv_kind}[_{name}]_results.csv` unless
    it overrides `csv_file`) and defines `csv_columns` and `compute`.

    Args:
        name: prefix of the metric keys.
        batch_size: encoding batch size.
        show_progress_bar: passed to encode (None: on when the subclass's logger logs at INFO or DEBUG).
        write_csv: append the metrics to `csv_file` under output_path.
        truncate_dim: keep the first `truncate_dim` embedding dimensions.
    """

    log_title: ClassVar[str]
    csv_kind: ClassVar[str]
    # sentence-transformers writes with `csv.writer` (lines end in "\r\n") except for information
    # retrieval, which joins with "," and ends lines in "\n".
    csv_lineterminator: ClassVar[str] = "\r\n"

    def __init__(
        self,
        name: str,
        batch_size: int,
        show_progress_bar: bool | None,
        write_csv: bool,
        truncate_dim: int | None,
    ) -> None:
        super().__init__()
        self.name = name
        self.batch_size = batch_size
        if show_progress_bar is None:
            show_progress_bar = self._logger().getEffectiveLevel() in (logging.INFO, logging.DEBUG)
        self.show_progress_bar = show_progress_bar
        self.write_csv = write_csv
        self.truncate_dim = truncate_dim

    def _logger(self) -> logging.Logger:
        return logging.getLogger(type(self).__module__)

    @property
    def csv_file(self) -> str:
        """`{csv_kind}[_{name}]_results.csv`, the CSV file's name."""
        return csv_file_name(self.csv_kind, self.name)

    @property
    def csv_headers(self) -> list[str]:
        """The CSV header: "epoch", "steps", then `csv_columns()`."""
        return ["epoch", "steps", *self.csv_columns()]

    @abc.abstractmethod
    def csv_columns(self) -> list[str]:
        """The CSV columns after "epoch" and "steps", one per value `compute` returns for the file."""

    @abc.abstractmethod
    def compute(self, model, output_path: str | None) -> tuple[dict[str, float], list]:
        """(metrics without the name prefix, the CSV row's values after epoch and steps).

        output_path is where evaluators with more files than the CSV (predictions) write them, or None.
        """

    def choose_primary_metric(self, metrics: dict[str, float]) -> str | None:
        """The primary metric after a call that returned `metrics` (no name prefix needed).

        By default primary_metric as it is: evaluators with a fixed one set it at construction.
        """
        return self.primary_metric

    def __call__(
        self, model, output_path: str | None = None, epoch: int = -1, steps: int = -1
    ) -> dict[str, float]:
        """Evaluate `model`, writing a CSV row under `output_path` if given (epoch / steps -1: the end)."""
        self._logger().info(
            f"{self.log_title} on the {self.name} dataset{progress_text(epoch, steps, self.truncate_dim)}:"
        )
        metrics, csv_values = self.compute(model, output_path)
        if output_path is not None and self.write_csv:
            row = [epoch, steps, *csv_values]
            append_csv_row(output_path, self.csv_file, self.csv_headers, row, self.csv_lineterminator)
        self.primary_metric = self.choose_primary_metric(metrics)
        return self.prefix_name_to_metrics(metrics, self.name)

    def embed_inputs(self, model, sentences: Sequence[str], **kwargs) -> np.ndarray:
        """[N, D] float32 embeddings of `sentences` with this evaluator's batch_size, show_progress_bar and
        truncate_dim; `kwargs` (role, prompt, normalize_embeddings, ...) go to `encode_texts` and take
        precedence."""
        options = {
            "batch_size": self.batch_size,
            "show_progress_bar": self.show_progress_bar,
            "truncate_dim": self.truncate_dim,
        }
        return encode_texts(model, sentences, **(options | kwargs))


# The name sentence-transformers used before BaseEvaluator.
SentenceEvaluator = BaseEvaluator
