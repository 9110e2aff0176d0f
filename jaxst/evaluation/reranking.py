"""Re-ranking: order each query's candidate documents by similarity; MAP, MRR@k and nDCG@k of the order."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import jax
import numpy as np
from tqdm import tqdm

from jaxst.evaluation.base import EmbeddingEvaluator
from jaxst.evaluation.classification_metrics import average_precision
from jaxst.similarity import cos_sim

logger = logging.getLogger(__name__)


def reciprocal_rank(relevant: np.ndarray, scores: np.ndarray, k: int) -> float:
    """1 / (1 + rank of the first relevant document among the k best scores), else 0.

    relevant [n] bool, scores [n]; equal scores keep the documents' order.
    """
    ranked = relevant[np.argsort(-scores, kind="stable")[:k]]
    return 1.0 / (1 + int(ranked.argmax())) if ranked.any() else 0.0


def ndcg_at_k(relevant: np.ndarray, scores: np.ndarray, k: int) -> float:
    """nDCG@k with binary gains, equal scores sharing their mean gain (scikit-learn's `ndcg_score`).

    DCG@k = sum over groups g of equal scores, best first, of mean(gain in g) * sum_{i in g, i < k}
    1 / log2(i + 2), i the rank; IDCG@k is the DCG of the ideal order. relevant [n] bool, scores [n].
    """
    discount = np.where(np.arange(len(scores)) < k, 1.0 / np.log2(np.arange(len(scores)) + 2), 0.0)
    distinct, group, counts = np.unique(-scores, return_inverse=True, return_counts=True)
    mean_gain = np.bincount(group, weights=relevant.astype(np.float64), minlength=len(distinct)) / counts
    discount_of_group = np.diff(np.cumsum(discount)[np.cumsum(counts) - 1], prepend=0.0)
    ideal = np.sum(np.sort(relevant)[::-1] * discount)
    return float(np.sum(mean_gain * discount_of_group) / ideal) if ideal > 0 else 0.0


class RerankingEvaluator(EmbeddingEvaluator):
    """Scores every (query, candidate) pair of each sample and measures the ranking of the positives.

    A sample is {"query": text, "positive": texts or one text, "negative": texts or one text}; samples
    with no positive or no negative are left out. The score of a candidate is
    `similarity_fct(query [1, D], candidates [n, D])`; per sample MAP is the average precision of those
    scores (ties grouped, as scikit-learn), MRR@k the reciprocal rank of the first positive among the k
    best, nDCG@k as `ndcg_at_k`; the metrics `map`, `mrr@{at_k}`, `ndcg@{at_k}` (primary) are their means.
    Queries are embedded with the model's query encoding, candidates with its document encoding.

    Args:
        samples: the samples, a list or a dict whose values are the samples.
        at_k: cut-off of MRR and nDCG.
        name: prefix of the metric keys and part of `RerankingEvaluator[_{name}]_results_@{at_k}.csv`.
        write_csv: append the metrics to the CSV file under output_path.
        similarity_fct: JAX-traceable `(queries [Q, D], documents [N, D]) -> [Q, N]` (jaxst.util.cos_sim).
        batch_size: encoding batch size.
        show_progress_bar: passed to encode (None: on at INFO logging).
        use_batched_encoding: embed all queries, then all candidates, at once; else sample by sample
            (less memory).
        truncate_dim: keep the first `truncate_dim` embedding dimensions.
        mrr_at_k: deprecated name of at_k (a warning); it wins over at_k when given.
    """

    log_title = "RerankingEvaluator: Evaluating the model"
    csv_kind = "RerankingEvaluator"

    def __init__(
        self,
        samples: Sequence[Mapping] | Mapping[object, Mapping],
        at_k: int = 10,
        name: str = "",
        write_csv: bool = True,
        similarity_fct: Callable[[jax.Array, jax.Array], jax.Array] = cos_sim,
        batch_size: int = 64,
        show_progress_bar: bool | None = False,
        use_batched_encoding: bool = True,
        truncate_dim: int | None = None,
        mrr_at_k: int | None = None,
    ) -> None:
        super().__init__(name, batch_size, show_progress_bar, write_csv, truncate_dim)
        if mrr_at_k is not None:
            logger.warning(
                f"The `mrr_at_k` parameter has been deprecated; please use `at_k={mrr_at_k}` instead."
            )
            at_k = mrr_at_k
        if at_k < 1:
            raise ValueError(f"at_k must be at least 1, got {at_k}.")
        self.at_k = at_k
        self.similarity_fct = similarity_fct
        self.use_batched_encoding = use_batched_encoding
        samples = list(samples.values()) if isinstance(samples, Mapping) else list(samples)
        self.samples = [self._as_lists(index, sample) for index, sample in enumerate(samples)]
        self.samples = [sample for sample in self.samples if sample["positive"] and sample["negative"]]
        if not self.samples:
            raise ValueError(
                "No sample has both a positive and a negative document: there is nothing to rank."
            )
        self.primary_metric = f"ndcg@{at_k}"

    @staticmethod
    def _as_lists(index: int, sample: Mapping) -> dict:
        """The sample with its positive and negative documents as lists."""
        if missing := [key for key in ("query", "positive", "negative") if key not in sample]:
            raise ValueError(
                f"Sample {index} has no {missing} key; a sample has query, positive and negative."
            )
        return {
            **sample,
            **{
                key: [sample[key]] if isinstance(sample[key], str) else list(sample[key])
                for key in ("positive", "negative")
            },
        }

    @property
    def csv_file(self) -> str:
        """`RerankingEvaluator[_{name}]_results_@{at_k}.csv`."""
        return super().csv_file.replace("_results.csv", f"_results_@{self.at_k}.csv")

    def csv_columns(self) -> list[str]:
        return ["MAP", f"MRR@{self.at_k}", f"NDCG@{self.at_k}"]

    def compute(self, model, output_path: str | None) -> tuple[dict[str, float], list]:
        per_sample = np.array(
            [
                [average_precision(relevant, scores), *self._rank_metrics(relevant, scores)]
                for relevant, scores in self.sample_scores(model)
            ]
        )
        mean_ap, mean_mrr, mean_ndcg = (float(value) for value in per_sample.mean(axis=0))
        positives = [len(sample["positive"]) for sample in self.samples]
        negatives = [len(sample["negative"]) for sample in self.samples]
        logger.info(
            f"Queries: {len(self.samples)} \t Positives: Min {np.min(positives):.1f}, "
            f"Mean {np.mean(positives):.1f}, Max {np.max(positives):.1f} \t "
            f"Negatives: Min {np.min(negatives):.1f}, Mean {np.mean(negatives):.1f}, "
            f"Max {np.max(negatives):.1f}"
        )
        logger.info(f"MAP: {mean_ap * 100:.2f}")
        logger.info(f"MRR@{self.at_k}: {mean_mrr * 100:.2f}")
        logger.info(f"NDCG@{self.at_k}: {mean_ndcg * 100:.2f}")
        metrics = {"map": mean_ap, f"mrr@{self.at_k}": mean_mrr, f"ndcg@{self.at_k}": mean_ndcg}
        return metrics, [mean_ap, mean_mrr, mean_ndcg]

    def _rank_metrics(self, relevant: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
        return reciprocal_rank(relevant, scores, self.at_k), ndcg_at_k(relevant, scores, self.at_k)

    def sample_scores(self, model) -> list[tuple[np.ndarray, np.ndarray]]:
        """(relevant [n] bool: positives then negatives, scores [n]) of every sample."""
        if self.use_batched_encoding:
            queries = self.embed_inputs(model, [sample["query"] for sample in self.samples], role="query")
            documents = self.embed_inputs(
                model,
                [doc for sample in self.samples for doc in sample["positive"] + sample["negative"]],
                role="document",
            )
            starts = np.cumsum([0] + [len(s["positive"]) + len(s["negative"]) for s in self.samples])
            candidates = [documents[start:end] for start, end in zip(starts[:-1], starts[1:], strict=True)]
        else:
            queries, candidates = [], []
            for sample in tqdm(self.samples, disable=not self.show_progress_bar, desc="Samples"):
                query = self.embed_inputs(model, [sample["query"]], role="query", show_progress_bar=False)
                documents = sample["positive"] + sample["negative"]
                queries.append(query[0])
                candidates.append(
                    self.embed_inputs(model, documents, role="document", show_progress_bar=False)
                )
        similarity = jax.jit(self.similarity_fct)
        output = []
        for sample, query, documents in zip(self.samples, queries, candidates, strict=True):
            # Zero rows pad the candidates to a power of two, so that the jit-compiled similarity function
            # sees a few shapes (a few compiles) however the candidate counts vary; their scores are dropped.
            padded = np.zeros((1 << (len(documents) - 1).bit_length(), documents.shape[1]), np.float32)
            padded[: len(documents)] = documents
            scores = np.asarray(similarity(query[None, :], padded), dtype=np.float32)[0]
            relevant = np.arange(len(documents)) < len(sample["positive"])
            output.append((relevant, scores[: len(documents)]))
        return output
