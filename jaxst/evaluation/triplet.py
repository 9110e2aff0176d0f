"""Accuracy on (anchor, positive, negative) triplets: is the positive closer than the negative?"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from enum import Enum

import numpy as np

from jaxst.evaluation.base import (
    BaseEvaluator,
    append_csv_row,
    check_same_length,
    csv_file_name,
    example_columns,
    progress_text,
    resolve_progress_bar,
    similarity_name,
)
from jaxst.similarity import PAIRWISE_SIMILARITY_FUNCTIONS

logger = logging.getLogger(__name__)


class TripletEvaluator(BaseEvaluator):
    """Fraction of triplets with `sim(anchor, positive) > sim(anchor, negative) + margin[f]`.

    Anchors are embedded as queries and positives / negatives as documents (`encode_query` /
    `encode_document` when the model has them). Metrics: `{f}_accuracy` for every similarity function f,
    and `max_accuracy` over several. primary_metric: `{main_similarity_function}_accuracy`, else
    `max_accuracy`, else `{f}_accuracy`.

    Args:
        anchors, positives, negatives: the triplets.
        main_similarity_function: similarity function of the primary metric.
        margin: one margin for all functions, or a dict keyed by function name (others 0). Default 0.
        name: prefix of the metric keys and part of `triplet_evaluation[_{name}]_results.csv`.
        batch_size: encoding batch size.
        show_progress_bar: passed to encode (None: on at INFO logging).
        write_csv: append the accuracies to the CSV file under output_path.
        truncate_dim: keep the first `truncate_dim` embedding dimensions.
        similarity_fn_names: similarity functions to evaluate (default: the model's own).

    sentence-transformers' deprecated `main_distance_function` argument is not accepted.
    """

    def __init__(
        self,
        anchors: Sequence[str],
        positives: Sequence[str],
        negatives: Sequence[str],
        main_similarity_function: str | Enum | None = None,
        margin: float | Mapping[str, float] | None = None,
        name: str = "",
        batch_size: int = 16,
        show_progress_bar: bool | None = False,
        write_csv: bool = True,
        truncate_dim: int | None = None,
        similarity_fn_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        check_same_length(anchors=anchors, positives=positives, negatives=negatives)
        self.anchors = anchors
        self.positives = positives
        self.negatives = negatives
        self.name = name
        self.truncate_dim = truncate_dim
        self.main_similarity_function = (
            similarity_name(main_similarity_function) if main_similarity_function else None
        )
        self.similarity_fn_names = [similarity_name(fn_name) for fn_name in similarity_fn_names or []]
        if not self.similarity_fn_names and self.main_similarity_function is not None:
            self.similarity_fn_names = [self.main_similarity_function]
        self.margin = self._margins(margin)
        self.batch_size = batch_size
        self.show_progress_bar = resolve_progress_bar(show_progress_bar, logger)
        self.csv_file = csv_file_name("triplet_evaluation", name)
        self.csv_headers = ["epoch", "steps"]
        self.write_csv = write_csv
        self._append_csv_headers(self.similarity_fn_names)

    @staticmethod
    def _margins(margin: float | Mapping[str, float] | None) -> dict[str, float]:
        names = list(PAIRWISE_SIMILARITY_FUNCTIONS)
        if margin is None:
            return dict.fromkeys(names, 0)
        if isinstance(margin, (int, float)):
            return dict.fromkeys(names, margin)
        if isinstance(margin, Mapping):
            if unknown := sorted(set(margin) - set(names)):
                raise ValueError(f"`margin` got unexpected keys {unknown}, expected keys in {names}.")
            return {**dict.fromkeys(names, 0), **margin}
        raise ValueError(f"`margin` should be a float or a dictionary with keys in {names}.")

    def _append_csv_headers(self, similarity_fn_names: list[str]) -> None:
        self.csv_headers += [f"accuracy_{fn_name}" for fn_name in similarity_fn_names]

    @classmethod
    def from_input_examples(cls, examples, **kwargs) -> TripletEvaluator:
        """From examples with `.texts` = (anchor, positive, negative)."""
        return cls(*example_columns(examples, 3, with_labels=False), **kwargs)

    def __call__(
        self, model, output_path: str | None = None, epoch: int = -1, steps: int = -1
    ) -> dict[str, float]:
        logger.info(
            f"TripletEvaluator: Evaluating the model on the {self.name} dataset"
            f"{progress_text(epoch, steps, self.truncate_dim)}:"
        )
        anchors = self.embed_inputs(model, self.anchors, role="query")
        positives = self.embed_inputs(model, self.positives, role="document")
        negatives = self.embed_inputs(model, self.negatives, role="document")
        self.use_model_similarity(model)

        metrics = {}
        for fn_name in self.similarity_fn_names:
            pairwise = PAIRWISE_SIMILARITY_FUNCTIONS[fn_name]
            positive_scores = np.asarray(pairwise(anchors, positives))
            negative_scores = np.asarray(pairwise(anchors, negatives))
            correct = positive_scores > negative_scores + np.float32(self.margin[fn_name])
            metrics[f"{fn_name}_accuracy"] = correct.astype(np.float32).mean()
            logger.info(f"Accuracy {fn_name.capitalize()} Similarity:\t{metrics[f'{fn_name}_accuracy']:.2%}")

        if output_path is not None and self.write_csv:
            row = [epoch, steps, *(float(value) for value in metrics.values())]
            append_csv_row(output_path, self.csv_file, self.csv_headers, row)

        if len(self.similarity_fn_names) > 1:
            metrics["max_accuracy"] = max(metrics.values())
        if self.main_similarity_function:
            self.primary_metric = f"{self.main_similarity_function}_accuracy"
        elif len(self.similarity_fn_names) > 1:
            self.primary_metric = "max_accuracy"
        else:
            self.primary_metric = f"{self.similarity_fn_names[0]}_accuracy"
        return self.prefix_name_to_metrics(metrics, self.name)
