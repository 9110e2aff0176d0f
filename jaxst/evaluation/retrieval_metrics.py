"""Ranking metrics of retrieval results, as sentence-transformers' InformationRetrievalEvaluator has them.

All metrics are means over queries of a per-query value computed from the ranked hits (best first) and the
set R of relevant documents; `rel_i` is 1 when the hit at rank i (from 0) is in R:

- accuracy@k: 1 if any of the first k hits is relevant;
- precision@k: (relevant among the first k) / k;  recall@k: (relevant among the first k) / |R|;
- MRR@k: 1 / (1 + rank of the first relevant hit among the first k), else 0;
- nDCG@k: sum_{i<k} rel_i / log2(i + 2), divided by the same sum for |R| relevant hits in front;
- MAP@k: sum_{i<k} rel_i * (relevant among the first i + 1) / (i + 1), divided by min(k, |R|).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np


def relevance_matrix(
    ranked_ids: Sequence[Sequence[Hashable]], relevant_docs: Sequence[set], depth: int
) -> np.ndarray:
    """[n_queries, depth] bool: whether the hit at each rank is relevant (False past the last hit)."""
    relevance = np.zeros((len(ranked_ids), depth), dtype=bool)
    for row, (hits, relevant) in enumerate(zip(ranked_ids, relevant_docs, strict=True)):
        relevance[row, : len(hits)] = [hit in relevant for hit in hits[:depth]]
    return relevance


def _discounted_gain(relevance: np.ndarray) -> np.ndarray:
    """sum_i relevance[..., i] / log2(i + 2) along the last axis."""
    return np.sum(relevance / np.log2(np.arange(relevance.shape[-1]) + 2), axis=-1)


def retrieval_metrics(
    relevance: np.ndarray, n_relevant: np.ndarray, k_values: Mapping[str, Sequence[int]]
) -> dict[str, dict[int, float]]:
    """The metrics at their cut-offs: {"accuracy@k": {k: value}, "precision@k": ..., "recall@k": ...,
    "ndcg@k": ..., "mrr@k": ..., "map@k": ...}.

    Args:
        relevance: [n_queries, depth] bool from `relevance_matrix`, depth >= every k >= 1.
        n_relevant: [n_queries] |R| of each query (> 0).
        k_values: the cut-offs of each metric, keyed as the result.
    """
    correct_so_far = np.cumsum(relevance, axis=1)
    ranks = np.arange(1, relevance.shape[1] + 1)
    first_hit = np.where(relevance.any(axis=1), relevance.argmax(axis=1), relevance.shape[1])

    def correct_at(k: int) -> np.ndarray:
        return correct_so_far[:, k - 1]

    ideal = np.arange(relevance.shape[1])[None, :] < n_relevant[:, None]
    return {
        "accuracy@k": {k: float(np.mean(correct_at(k) > 0)) for k in k_values["accuracy@k"]},
        "precision@k": {k: float(np.mean(correct_at(k) / k)) for k in k_values["precision@k"]},
        "recall@k": {k: float(np.mean(correct_at(k) / n_relevant)) for k in k_values["recall@k"]},
        "ndcg@k": {
            k: float(np.mean(_discounted_gain(relevance[:, :k]) / _discounted_gain(ideal[:, :k])))
            for k in k_values["ndcg@k"]
        },
        "mrr@k": {
            k: float(np.mean(np.where(first_hit < k, 1.0 / (first_hit + 1), 0.0))) for k in k_values["mrr@k"]
        },
        "map@k": {
            k: float(
                np.mean(
                    np.sum(relevance[:, :k] * correct_so_far[:, :k] / ranks[:k], axis=1)
                    / np.minimum(k, n_relevant)
                )
            )
            for k in k_values["map@k"]
        },
    }
