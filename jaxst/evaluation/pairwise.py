"""The base of the evaluators that score embeddings with each of several similarity functions."""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence
from enum import Enum
from typing import Any, ClassVar, Self

import numpy as np

from jaxst.evaluation.base import EmbeddingEvaluator, similarity_name


def check_same_length(**columns: Sequence) -> None:
    """Raises ValueError naming the columns and their lengths unless they all have the same length."""
    names, lengths = list(columns), [len(column) for column in columns.values()]
    if len(set(lengths)) > 1:
        raise ValueError(
            f"{', '.join(names[:-1])} and {names[-1]} must have the same length, got "
            f"{', '.join(map(str, lengths[:-1]))} and {lengths[-1]}."
        )


@dataclasses.dataclass(frozen=True)
class MetricNames:
    """How an evaluator names the metric m of similarity function f, as sentence-transformers does.

    Attributes:
        key: the metric key, a pattern of `{fn}` and `{metric}` ("{fn}_{metric}": "cosine_accuracy").
        csv_column: the CSV column, likewise.
        csv_metrics: the metrics in the CSV file, in their column order, for each function in turn.
        primary: the metric of primary_metric.
    """

    key: str
    csv_column: str
    csv_metrics: tuple[str, ...]
    primary: str


class PairwiseSimilarityEvaluator(EmbeddingEvaluator):
    """Metrics of embeddings compared by each similarity function f in `similarity_fn_names`.

    `embed` embeds the texts once per call; `score(f, embeddings)` gives f's metrics {m: value}. Without
    similarity_fn_names (nor main_similarity) the model's own function is used, fixed at the first call.

    Metrics: `names.key` of every f and each of its metrics m, and with several functions the same keys
    with f = "max": the maximum over the functions. CSV columns: `names.csv_column` of every f and each m
    of `names.csv_metrics`. primary_metric: the key of `names.primary` for f = main_similarity, else "max"
    with several functions, else the one f.

    Args:
        similarity_fn_names: similarity functions to evaluate (default: [main_similarity], else the
            model's own).
        main_similarity: similarity function of the primary metric, or None.
        *options: EmbeddingEvaluator's, in its order: name, batch_size, show_progress_bar, write_csv,
            truncate_dim.
    """

    names: ClassVar[MetricNames]
    # How `from_input_examples` reads an InputExample: the number of `.texts`, then `.label` if true.
    example_texts: ClassVar[int]
    example_has_label: ClassVar[bool]

    def __init__(
        self,
        similarity_fn_names: Sequence[str | Enum] | None,
        main_similarity: str | Enum | None,
        *options: Any,
    ) -> None:
        super().__init__(*options)
        self.main_similarity = similarity_name(main_similarity) if main_similarity else None
        self.similarity_fn_names = [similarity_name(fn_name) for fn_name in similarity_fn_names or []]
        if not self.similarity_fn_names and self.main_similarity is not None:
            self.similarity_fn_names = [self.main_similarity]

    @classmethod
    def from_input_examples(cls, examples: Sequence, **kwargs) -> Self:
        """From examples with `.texts` (the text columns in order) and, if the evaluator has one, `.label`."""
        columns = [[example.texts[i] for example in examples] for i in range(cls.example_texts)]
        if cls.example_has_label:
            columns.append([example.label for example in examples])
        return cls(*columns, **kwargs)

    @abc.abstractmethod
    def embed(self, model) -> tuple[np.ndarray, ...]:
        """The float32 embedding matrices that `score` compares, [N, D] each."""

    @abc.abstractmethod
    def score(self, fn_name: str, embeddings: tuple[np.ndarray, ...]) -> dict[str, float]:
        """The metrics of similarity function `fn_name` on `embed`'s embeddings, {metric: value}."""

    def csv_columns(self) -> list[str]:
        return [
            self.names.csv_column.format(fn=fn_name, metric=metric)
            for fn_name in self.similarity_fn_names
            for metric in self.names.csv_metrics
        ]

    def compute(self, model, output_path: str | None) -> tuple[dict[str, float], list]:
        embeddings = self.embed(model)
        if not self.similarity_fn_names:
            self.similarity_fn_names = [similarity_name(model.similarity_fn_name)]
        scores = {fn_name: self.score(fn_name, embeddings) for fn_name in self.similarity_fn_names}
        metrics = {
            self.names.key.format(fn=fn_name, metric=metric): value
            for fn_name, values in scores.items()
            for metric, value in values.items()
        }
        if len(self.similarity_fn_names) > 1:
            metrics |= {
                self.names.key.format(fn="max", metric=metric): max(
                    values[metric] for values in scores.values()
                )
                for metric in next(iter(scores.values()))
            }
        csv_values = [
            scores[fn_name][metric]
            for fn_name in self.similarity_fn_names
            for metric in self.names.csv_metrics
        ]
        return metrics, csv_values

    def choose_primary_metric(self, metrics: dict[str, float]) -> str:
        several = len(self.similarity_fn_names) > 1
        fn_name = self.main_similarity or ("max" if several else self.similarity_fn_names[0])
        return self.names.key.format(fn=fn_name, metric=self.names.primary)
