"""Pearson and Spearman correlation of embedding similarities with gold scores (e.g. STS-B)."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from enum import Enum

import numpy as np

from jaxst.evaluation.base import csv_file_name
from jaxst.evaluation.pairwise import MetricNames, PairwiseSimilarityEvaluator, check_same_length
from jaxst.quantization import PRECISIONS, quantize_embeddings
from jaxst.similarity import PAIRWISE_SIMILARITY_FUNCTIONS

logger = logging.getLogger(__name__)


class EmbeddingSimilarityEvaluator(PairwiseSimilarityEvaluator):
    """Correlation of `similarity(embed(sentences1[i]), embed(sentences2[i]))` with `scores[i]`.

    For every similarity function f in `similarity_fn_names` (default: the model's own), the metrics are
    `pearson_{f}` and `spearman_{f}`, plus `pearson_max` / `spearman_max` over several functions.
    primary_metric: `spearman_{main_similarity}`, else `spearman_max`, else `spearman_{f}`.
    `from_input_examples(examples, **kwargs)` takes the pairs from `.texts` and the scores from `.label`.

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

    log_title = "EmbeddingSimilarityEvaluator: Evaluating the model"
    csv_kind = "similarity_evaluation"
    example_texts = 2
    example_has_label = True
    names = MetricNames(
        key="{metric}_{fn}",
        csv_column="{fn}_{metric}",
        csv_metrics=("pearson", "spearman"),
        primary="spearman",
    )

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
        super().__init__(
            similarity_fn_names, main_similarity, name, batch_size, show_progress_bar, write_csv, truncate_dim
        )
        self.sentences1 = sentences1
        self.sentences2 = sentences2
        self.scores = scores
        self.precision = precision

    @property
    def csv_file(self) -> str:
        """`similarity_evaluation[_{name}][_{precision}]_results.csv`."""
        return csv_file_name(self.csv_kind, self.name, self.precision)

    def embed(self, model) -> tuple[np.ndarray, np.ndarray]:
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

    def score(self, fn_name: str, embeddings: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
        from scipy.stats import pearsonr, spearmanr  # here: importing scipy.stats takes ~0.7 s at start-up

        similarities = np.asarray(PAIRWISE_SIMILARITY_FUNCTIONS[fn_name](*embeddings))
        pearson, spearman = pearsonr(self.scores, similarities)[0], spearmanr(self.scores, similarities)[0]
        logger.info(f"{fn_name.capitalize()}-Similarity:\tPearson: {pearson:.4f}\tSpearman: {spearman:.4f}")
        return {"pearson": pearson, "spearman": spearman}
