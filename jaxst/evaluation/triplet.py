"""Accuracy on (anchor, positive, negative) triplets: is the positive closer than the negative?"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from enum import Enum

import numpy as np

from jaxst.evaluation.pairwise import MetricNames, PairwiseSimilarityEvaluator, check_same_length
from jaxst.similarity import PAIRWISE_SIMILARITY_FUNCTIONS

logger = logging.getLogger(__name__)


class TripletEvaluator(PairwiseSimilarityEvaluator):
    """Fraction of triplets with `sim(anchor, positive) > sim(anchor, negative) + margin[f]`.

    Anchors are embedded as queries and positives / negatives as documents (`encode_query` /
    `encode_document` when the model has them). Metrics: `{f}_accuracy` for every similarity function f,
    and `max_accuracy` over several. primary_metric: `{main_similarity_function}_accuracy`, else
    `max_accuracy`, else `{f}_accuracy`. `from_input_examples(examples, **kwargs)` takes the triplets from
    `.texts`.

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
        main_distance_function: deprecated name of main_similarity_function (a warning), used when
            that is None.
    """

    log_title = "TripletEvaluator: Evaluating the model"
    csv_kind = "triplet_evaluation"
    example_texts = 3
    example_has_label = False
    names = MetricNames(
        key="{fn}_{metric}", csv_column="{metric}_{fn}", csv_metrics=("accuracy",), primary="accuracy"
    )

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
        main_distance_function: str | Enum | None = "deprecated",
    ) -> None:
        check_same_length(anchors=anchors, positives=positives, negatives=negatives)
        if main_distance_function != "deprecated" and main_similarity_function is None:
            logger.warning(
                "The 'main_distance_function' parameter is deprecated. Please use 'main_similarity_function' "
                "instead. 'main_distance_function' will be removed in a future release."
            )
            main_similarity_function = main_distance_function
        super().__init__(
            similarity_fn_names,
            main_similarity_function,
            name,
            batch_size,
            show_progress_bar,
            write_csv,
            truncate_dim,
        )
        self.anchors = anchors
        self.positives = positives
        self.negatives = negatives
        self.margin = self._margins(margin)

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

    def embed(self, model) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Anchors embedded as queries, positives and negatives as documents."""
        anchors = self.embed_inputs(model, self.anchors, role="query")
        positives = self.embed_inputs(model, self.positives, role="document")
        negatives = self.embed_inputs(model, self.negatives, role="document")
        return anchors, positives, negatives

    def score(self, fn_name: str, embeddings: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict[str, float]:
        anchors, positives, negatives = embeddings
        pairwise = PAIRWISE_SIMILARITY_FUNCTIONS[fn_name]
        positive_scores = np.asarray(pairwise(anchors, positives))
        negative_scores = np.asarray(pairwise(anchors, negatives))
        correct = positive_scores > negative_scores + np.float32(self.margin[fn_name])
        accuracy = float(correct.astype(np.float32).mean())
        logger.info(f"Accuracy {fn_name.capitalize()} Similarity:\t{accuracy:.2%}")
        return {"accuracy": accuracy}
