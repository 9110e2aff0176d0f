"""Binary classification of sentence pairs (similar / dissimilar) by thresholding embedding similarity."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from jaxst.evaluation.classification_metrics import (
    average_precision,
    find_best_acc_and_threshold,
    find_best_f1_and_threshold,
    matthews_corrcoef,
)
from jaxst.evaluation.pairwise import MetricNames, PairwiseSimilarityEvaluator, check_same_length
from jaxst.similarity import PAIRWISE_SIMILARITY_FUNCTIONS

logger = logging.getLogger(__name__)

# Similarities are used as they are; distances (negated euclidean / manhattan similarities) are smaller
# for more similar pairs.
HIGHER_IS_MORE_SIMILAR = {"cosine": True, "dot": True, "euclidean": False, "manhattan": False}
CSV_METRICS = ("accuracy", "accuracy_threshold", "f1", "precision", "recall", "f1_threshold", "ap", "mcc")


class BinaryClassificationEvaluator(PairwiseSimilarityEvaluator):
    """Accuracy, F1, precision, recall, average precision and MCC of pairs labelled 1 (similar) or 0.

    For each similarity function f (default: the model's own) the score is the similarity (cosine, dot)
    or the distance (euclidean, manhattan); accuracy and F1 use their best thresholds, precision / recall
    / MCC the F1 threshold. Metrics: `{f}_accuracy`, `{f}_accuracy_threshold`, `{f}_f1`,
    `{f}_f1_threshold`, `{f}_precision`, `{f}_recall`, `{f}_ap`, `{f}_mcc`, and `max_*` of each over
    several functions. primary_metric: `{f}_ap` or `max_ap`. `from_input_examples(examples, **kwargs)`
    takes the pairs from `.texts` and the labels from `.label`.

    Args:
        sentences1, sentences2: the pairs.
        labels: 1 for similar pairs, 0 for dissimilar ones.
        name: prefix of the metric keys and part of `binary_classification_evaluation[_{name}]_results.csv`.
        batch_size: encoding batch size.
        show_progress_bar: passed to encode (None: on at INFO logging).
        write_csv: append the metrics to the CSV file under output_path.
        truncate_dim: keep the first `truncate_dim` embedding dimensions.
        similarity_fn_names: similarity functions to evaluate.
    """

    log_title = "Binary Accuracy Evaluation of the model"
    csv_kind = "binary_classification_evaluation"
    example_texts = 2
    example_has_label = True
    names = MetricNames(
        key="{fn}_{metric}", csv_column="{fn}_{metric}", csv_metrics=CSV_METRICS, primary="ap"
    )

    def __init__(
        self,
        sentences1: Sequence[str],
        sentences2: Sequence[str],
        labels: Sequence[int],
        name: str = "",
        batch_size: int = 32,
        show_progress_bar: bool | None = False,
        write_csv: bool = True,
        truncate_dim: int | None = None,
        similarity_fn_names: Sequence[str] | None = None,
    ) -> None:
        check_same_length(sentences1=sentences1, sentences2=sentences2, labels=labels)
        if bad := [i for i, label in enumerate(labels) if label not in (0, 1)]:
            raise ValueError(f"labels must be 0 or 1; positions {bad[:10]} are not ({len(bad)} in all).")
        super().__init__(
            similarity_fn_names, None, name, batch_size, show_progress_bar, write_csv, truncate_dim
        )
        self.sentences1 = sentences1
        self.sentences2 = sentences2
        self.labels = labels

    def embed(self, model) -> tuple[np.ndarray, np.ndarray]:
        """The embeddings of sentences1 and of sentences2 (every distinct sentence is embedded once)."""
        sentences = list(dict.fromkeys([*self.sentences1, *self.sentences2]))
        embeddings = self.embed_inputs(model, sentences)
        row_of = {sentence: row for row, sentence in enumerate(sentences)}
        embeddings1 = embeddings[[row_of[sentence] for sentence in self.sentences1]]
        embeddings2 = embeddings[[row_of[sentence] for sentence in self.sentences2]]
        return embeddings1, embeddings2

    def score(self, fn_name: str, embeddings: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
        labels = np.asarray(self.labels)
        higher_is_similar = HIGHER_IS_MORE_SIMILAR[fn_name]
        similarity = np.asarray(PAIRWISE_SIMILARITY_FUNCTIONS[fn_name](*embeddings))
        scores = similarity if higher_is_similar else -similarity
        accuracy, accuracy_threshold = find_best_acc_and_threshold(scores, labels, higher_is_similar)
        f1, precision, recall, f1_threshold = find_best_f1_and_threshold(scores, labels, higher_is_similar)
        predicted = scores >= f1_threshold if higher_is_similar else scores <= f1_threshold
        ap, mcc = average_precision(labels, similarity), matthews_corrcoef(labels, predicted)
        logger.info(
            f"{fn_name}: accuracy {accuracy * 100:.2f} (threshold {accuracy_threshold:.4f}), "
            f"F1 {f1 * 100:.2f} (threshold {f1_threshold:.4f}), precision {precision * 100:.2f}, "
            f"recall {recall * 100:.2f}, AP {ap * 100:.2f}, MCC {mcc * 100:.2f}"
        )
        return {
            "accuracy": accuracy,
            "accuracy_threshold": accuracy_threshold,
            "f1": f1,
            "f1_threshold": f1_threshold,
            "precision": precision,
            "recall": recall,
            "ap": ap,
            "mcc": mcc,
        }
