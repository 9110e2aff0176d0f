"""Binary classification of sentence pairs (similar / dissimilar) by thresholding embedding similarity."""

from __future__ import annotations

import logging
from collections.abc import Sequence

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
from jaxst.evaluation.classification_metrics import (
    average_precision,
    find_best_acc_and_threshold,
    find_best_f1_and_threshold,
    matthews_corrcoef,
)
from jaxst.similarity import PAIRWISE_SIMILARITY_FUNCTIONS

logger = logging.getLogger(__name__)

CSV_METRICS = ("accuracy", "accuracy_threshold", "f1", "precision", "recall", "f1_threshold", "ap", "mcc")
# Similarities are used as they are; distances (negated euclidean / manhattan similarities) are smaller
# for more similar pairs.
HIGHER_IS_MORE_SIMILAR = {"cosine": True, "dot": True, "euclidean": False, "manhattan": False}


class BinaryClassificationEvaluator(BaseEvaluator):
    """Accuracy, F1, precision, recall, average precision and MCC of pairs labelled 1 (similar) or 0.

    For each similarity function f (default: the model's own) the score is the similarity (cosine, dot)
    or the distance (euclidean, manhattan); accuracy and F1 use their best thresholds, precision / recall
    / MCC the F1 threshold. Metrics: `{f}_accuracy`, `{f}_accuracy_threshold`, `{f}_f1`,
    `{f}_f1_threshold`, `{f}_precision`, `{f}_recall`, `{f}_ap`, `{f}_mcc`, and `max_*` of each over
    several functions. primary_metric: `{f}_ap` or `max_ap`.

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
        super().__init__()
        check_same_length(sentences1=sentences1, sentences2=sentences2, labels=labels)
        if bad := [i for i, label in enumerate(labels) if label not in (0, 1)]:
            raise ValueError(f"labels must be 0 or 1; positions {bad[:10]} are not ({len(bad)} in all).")
        self.sentences1 = sentences1
        self.sentences2 = sentences2
        self.labels = labels
        self.truncate_dim = truncate_dim
        self.similarity_fn_names = [similarity_name(fn_name) for fn_name in similarity_fn_names or []]
        self.write_csv = write_csv
        self.name = name
        self.batch_size = batch_size
        self.show_progress_bar = resolve_progress_bar(show_progress_bar, logger)
        self.csv_file = csv_file_name("binary_classification_evaluation", name)
        self.csv_headers = ["epoch", "steps"]
        self._append_csv_headers(self.similarity_fn_names)

    def _append_csv_headers(self, similarity_fn_names: list[str]) -> None:
        self.csv_headers += [
            f"{fn_name}_{metric}" for fn_name in similarity_fn_names for metric in CSV_METRICS
        ]

    @classmethod
    def from_input_examples(cls, examples, **kwargs) -> BinaryClassificationEvaluator:
        """From examples with `.texts` (two sentences) and `.label` (0 or 1)."""
        return cls(*example_columns(examples, 2, with_labels=True), **kwargs)

    def __call__(
        self, model, output_path: str | None = None, epoch: int = -1, steps: int = -1
    ) -> dict[str, float]:
        logger.info(
            f"Binary Accuracy Evaluation of the model on the {self.name} dataset"
            f"{progress_text(epoch, steps, self.truncate_dim)}:"
        )
        self.use_model_similarity(model)
        scores = self.compute_metrics(model)

        if output_path is not None and self.write_csv:
            row = [epoch, steps]
            for header in self.csv_headers[2:]:
                fn_name, metric = header.split("_", maxsplit=1)
                if fn_name in scores:
                    row.append(scores[fn_name][metric])
            append_csv_row(output_path, self.csv_file, self.csv_headers, row)

        metrics = {
            f"{fn_name}_{metric}": value
            for fn_name, values in scores.items()
            for metric, value in values.items()
        }
        if len(self.similarity_fn_names) > 1:
            metric_names = next(iter(scores.values()))
            metrics.update(
                {
                    f"max_{metric}": max(values[metric] for values in scores.values())
                    for metric in metric_names
                }
            )
            self.primary_metric = "max_ap"
        else:
            self.primary_metric = f"{self.similarity_fn_names[0]}_ap"
        return self.prefix_name_to_metrics(metrics, self.name)

    def compute_metrics(self, model) -> dict[str, dict[str, float]]:
        """Metrics per similarity function name (every distinct sentence is embedded once)."""
        sentences = list(dict.fromkeys([*self.sentences1, *self.sentences2]))
        embeddings = self.embed_inputs(model, sentences)
        row_of = {sentence: row for row, sentence in enumerate(sentences)}
        embeddings1 = embeddings[[row_of[sentence] for sentence in self.sentences1]]
        embeddings2 = embeddings[[row_of[sentence] for sentence in self.sentences2]]
        labels = np.asarray(self.labels)

        output = {}
        for fn_name in self.similarity_fn_names:
            higher_is_similar = HIGHER_IS_MORE_SIMILAR[fn_name]
            similarity = np.asarray(PAIRWISE_SIMILARITY_FUNCTIONS[fn_name](embeddings1, embeddings2))
            scores = similarity if higher_is_similar else -similarity
            accuracy, accuracy_threshold = find_best_acc_and_threshold(scores, labels, higher_is_similar)
            f1, precision, recall, f1_threshold = find_best_f1_and_threshold(
                scores, labels, higher_is_similar
            )
            predicted = scores >= f1_threshold if higher_is_similar else scores <= f1_threshold
            output[fn_name] = {
                "accuracy": accuracy,
                "accuracy_threshold": accuracy_threshold,
                "f1": f1,
                "f1_threshold": f1_threshold,
                "precision": precision,
                "recall": recall,
                "ap": average_precision(labels, similarity),
                "mcc": matthews_corrcoef(labels, predicted),
            }
            logger.info(
                f"{fn_name}: accuracy {accuracy * 100:.2f} (threshold {accuracy_threshold:.4f}), "
                f"F1 {f1 * 100:.2f} (threshold {f1_threshold:.4f}), precision {precision * 100:.2f}, "
                f"recall {recall * 100:.2f}, AP {output[fn_name]['ap'] * 100:.2f}, "
                f"MCC {output[fn_name]['mcc'] * 100:.2f}"
            )
        return output
