"""Pearson and Spearman correlation of embedding similarities with gold scores (e.g. STS-B)."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from enum import Enum

import numpy as np
from scipy.stats import pearsonr, spearmanr

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
from jaxst.quantization import PRECISIONS, quantize_embeddings
from jaxst.similarity import PAIRWISE_SIMILARITY_FUNCTIONS

logger = logging.getLogger(__name__)


class EmbeddingSimilarityEvaluator(BaseEvaluator):
    """Correlation of `similarity(embed(sentences1[i]), embed(sentences2[i]))` with `scores[i]`.

    For every similarity function f in `similarity_fn_names` (default: the model's own), the metrics are
    `pearson_{f}` and `spearman_{f}`, plus `pearson_max` / `spearman_max` over several functions.
    primary_metric: `spearman_{main_similarity}`, else `spearman_max`, else `spearman_{f}`.

    Args:
        sentences1, sentences2: the pairs.
        scores: gold similarity of each pair; NaN is an error (scipy would return NaN correlations).
        batch_size: encoding batch size.
        main_similarity: similarity function of the primary metric ("cosine", "dot", "euclidean",
            "manhattan", or an enum member with that value).
        similarity_fn_names: similarity functions to evaluate.
        name: prefix of the metric keys and part of the CSV file name.
        show_progress_bar: passed to encode (None: on at INFO logging).
        write_csv: append the metrics to `similarity_evaluation[_{name}][_{precision}]_results.csv`.
        precision: None, or "float32", "int8", "uint8", "binary", "ubinary": embeddings are L2-normalized,
            quantized (int8 / uint8 with ranges from both columns together) and compared as float32 (the
            binary kinds unpacked to one 0/1 value per bit), as sentence-transformers does.
        truncate_dim: keep the first `truncate_dim` embedding dimensions.
    """

    def __init__(
        self,
        sentences1: Sequence[str],
        sentences2: Sequence[str],
        scores: Sequence[float],
        batch_size: int = 16,
        main_similarity: str | Enum | None = None,
        similarity_fn_names: Sequence[str] | None = None,
        name: str = "",
        show_progress_bar: bool | None = False,
        write_csv: bool = True,
        precision: str | None = None,
        truncate_dim: int | None = None,
    ) -> None:
        super().__init__()
        check_same_length(sentences1=sentences1, sentences2=sentences2, scores=scores)
        nan_positions = [i for i, score in enumerate(scores) if math.isnan(score)]
        if nan_positions:
            raise ValueError(
                f"scores contains NaN at positions {nan_positions[:10]} ({len(nan_positions)} in all)."
            )
        if precision is not None and precision not in PRECISIONS:
            raise ValueError(
                f"precision={precision!r} is not supported; expected None or one of {PRECISIONS}."
            )
        self.sentences1 = sentences1
        self.sentences2 = sentences2
        self.scores = scores
        self.batch_size = batch_size
        self.main_similarity = similarity_name(main_similarity) if main_similarity else None
        self.similarity_fn_names = [similarity_name(fn_name) for fn_name in similarity_fn_names or []]
        if not self.similarity_fn_names and self.main_similarity is not None:
            self.similarity_fn_names = [self.main_similarity]
        self.name = name
        self.show_progress_bar = resolve_progress_bar(show_progress_bar, logger)
        self.write_csv = write_csv
        self.precision = precision
        self.truncate_dim = truncate_dim
        self.csv_file = csv_file_name("similarity_evaluation", name, precision)
        self.csv_headers = ["epoch", "steps"]
        self._append_csv_headers(self.similarity_fn_names)

    def _append_csv_headers(self, similarity_fn_names: list[str]) -> None:
        self.csv_headers += [
            f"{fn_name}_{metric}" for fn_name in similarity_fn_names for metric in ("pearson", "spearman")
        ]

    @classmethod
    def from_input_examples(cls, examples, **kwargs) -> EmbeddingSimilarityEvaluator:
        """From examples with `.texts` (two sentences) and `.label` (the gold score)."""
        return cls(*example_columns(examples, 2, with_labels=True), **kwargs)

    def __call__(
        self, model, output_path: str | None = None, epoch: int = -1, steps: int = -1
    ) -> dict[str, float]:
        logger.info(
            f"EmbeddingSimilarityEvaluator: Evaluating the model on the {self.name} dataset"
            f"{progress_text(epoch, steps, self.truncate_dim)}:"
        )
        embeddings1, embeddings2 = self._embed_pairs(model)
        self.use_model_similarity(model)

        metrics = {}
        for fn_name in self.similarity_fn_names:
            similarities = np.asarray(PAIRWISE_SIMILARITY_FUNCTIONS[fn_name](embeddings1, embeddings2))
            metrics[f"pearson_{fn_name}"] = pearsonr(self.scores, similarities)[0]
            metrics[f"spearman_{fn_name}"] = spearmanr(self.scores, similarities)[0]
            logger.info(
                f"{fn_name.capitalize()}-Similarity:\tPearson: {metrics[f'pearson_{fn_name}']:.4f}\t"
                f"Spearman: {metrics[f'spearman_{fn_name}']:.4f}"
            )

        if output_path is not None and self.write_csv:
            append_csv_row(output_path, self.csv_file, self.csv_headers, [epoch, steps, *metrics.values()])

        if len(self.similarity_fn_names) > 1:
            metrics["pearson_max"] = max(
                metrics[f"pearson_{fn_name}"] for fn_name in self.similarity_fn_names
            )
            metrics["spearman_max"] = max(
                metrics[f"spearman_{fn_name}"] for fn_name in self.similarity_fn_names
            )
        if self.main_similarity:
            self.primary_metric = f"spearman_{self.main_similarity}"
        elif len(self.similarity_fn_names) > 1:
            self.primary_metric = "spearman_max"
        else:
            self.primary_metric = f"spearman_{self.similarity_fn_names[0]}"
        return self.prefix_name_to_metrics(metrics, self.name)

    def _embed_pairs(self, model) -> tuple[np.ndarray, np.ndarray]:
        """Float32 embeddings of both columns, normalized and quantized when `precision` is set."""
        if self.precision is None:
            return self.embed_inputs(model, self.sentences1), self.embed_inputs(model, self.sentences2)
        if self.precision.endswith("int8"):  # one calibration for both columns
            embeddings = self.embed_inputs(
                model, [*self.sentences1, *self.sentences2], normalize_embeddings=True
            )
            quantized = quantize_embeddings(embeddings, self.precision)
            halves = quantized[: len(self.sentences1)], quantized[len(self.sentences1) :]
        else:
            halves = tuple(
                quantize_embeddings(
                    self.embed_inputs(model, sentences, normalize_embeddings=True), self.precision
                )
                for sentences in (self.sentences1, self.sentences2)
            )
        if self.precision == "binary":
            halves = tuple((half.astype(np.int16) + 128).astype(np.uint8) for half in halves)
        if self.precision in ("binary", "ubinary"):
            halves = tuple(np.unpackbits(half, axis=1) for half in halves)
        return halves[0].astype(np.float32), halves[1].astype(np.float32)
