"""Accuracy of a SoftmaxLoss classifier on labelled sentence pairs (e.g. NLI)."""

from __future__ import annotations

import logging

import numpy as np

from jaxst.evaluation.base import EmbeddingEvaluator
from jaxst.losses.classification import SoftmaxLoss, softmax_logits
from jaxst.training.data import DataLoader

logger = logging.getLogger(__name__)


class LabelAccuracyEvaluator(EmbeddingEvaluator):
    """Fraction of pairs whose label is the argmax of the classifier's logits on their embeddings.

    Every (text a, text b, label) example of `dataloader.dataset` is embedded with the model (batches of
    `dataloader.batch_size`) and classified by `softmax_logits(softmax_model.params, a, b)` with the
    loss' concatenation options; a pair counts as correct when the first largest logit is its label.
    Metric: `accuracy`, the primary metric.

    Args:
        dataloader: a DataLoader (jaxst's, or torch's over InputExamples) of two-text examples with
            integer class labels; only its dataset and batch size are used.
        name: prefix of the metric key and part of `accuracy_evaluation[_{name}]_results.csv`.
        softmax_model: the SoftmaxLoss whose classifier is evaluated; its `params` attribute holds the
            classifier pytree {"kernel": [n * D, C], "bias": [C]} (the trained one, or `init_params`').
        write_csv: append the accuracy to the CSV file under output_path.

    Raises:
        ValueError: no SoftmaxLoss, a loss without classifier params, or a dataloader without a dataset.
    """

    log_title = "Evaluation"
    csv_kind = "accuracy_evaluation"

    def __init__(self, dataloader, name: str = "", softmax_model=None, write_csv: bool = True) -> None:
        if not isinstance(softmax_model, SoftmaxLoss):
            raise ValueError(
                f"softmax_model must be a jaxst SoftmaxLoss (its classifier makes the predictions), got "
                f"{type(softmax_model).__name__}."
            )
        if not hasattr(dataloader, "dataset") or not hasattr(dataloader, "batch_size"):
            raise ValueError(
                f"dataloader must be a DataLoader with a dataset of labelled pairs and a batch_size, got "
                f"{type(dataloader).__name__}."
            )
        batch_size = dataloader.batch_size or 1
        super().__init__(name, batch_size, False, write_csv, None)
        self.dataloader = dataloader
        self.softmax_model = softmax_model
        self.primary_metric = "accuracy"

    def csv_columns(self) -> list[str]:
        return ["accuracy"]

    def compute(self, model, output_path: str | None) -> tuple[dict[str, float], list]:
        classifier = getattr(self.softmax_model, "params", None)
        if classifier is None:
            raise ValueError(
                "softmax_model has no classifier: set softmax_model.params to its parameters "
                '({"kernel": [n * D, C], "bias": [C]}, e.g. softmax_model.init_params(rng, dim)).'
            )
        texts_a, texts_b, labels = [], [], []
        for batch in DataLoader(self.dataloader.dataset, batch_size=self.batch_size):
            label_shape = None if batch.labels is None else batch.labels.shape
            if len(batch.texts) != 2 or label_shape is None or len(label_shape) != 1:
                raise ValueError(
                    "LabelAccuracyEvaluator needs examples of two texts and one class label each, got "
                    f"{len(batch.texts)} texts and labels of shape {label_shape}."
                )
            texts_a += batch.texts[0]
            texts_b += batch.texts[1]
            labels.append(batch.labels)
        logits = softmax_logits(
            classifier,
            self.embed_inputs(model, texts_a),
            self.embed_inputs(model, texts_b),
            **self.softmax_model.concatenation,
        )
        labels = np.concatenate(labels)
        correct = int(np.sum(np.asarray(logits).argmax(axis=1) == labels))
        accuracy = correct / len(labels)
        logger.info(f"Accuracy: {accuracy:.4f} ({correct}/{len(labels)})\n")
        return {"accuracy": accuracy}, [accuracy]
