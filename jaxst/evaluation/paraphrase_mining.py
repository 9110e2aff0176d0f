"""Paraphrase mining: find the most similar pairs of a set of sentences and score them against gold pairs."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Hashable, Iterable, Mapping

import numpy as np

from jaxst.evaluation.base import EmbeddingEvaluator
from jaxst.util.mining import paraphrase_mining

logger = logging.getLogger(__name__)


def duplicate_pairs(
    known_ids: Iterable[Hashable],
    duplicates_list: Iterable[tuple[Hashable, Hashable]] | None,
    duplicates_dict: Mapping[Hashable, Mapping[Hashable, bool]] | None,
    add_transitive_closure: bool,
) -> set[frozenset]:
    """The gold duplicate pairs {id1, id2} whose ids are both known.

    Pairs come from duplicates_dict (`[id1][id2]` true) and from duplicates_list (only pairs of known ids,
    as sentence-transformers adds them). With add_transitive_closure, every two ids connected by a chain
    of those pairs (through any id, known or not) form a pair. An id paired with itself ({id1}) counts, as
    in sentence-transformers, though mining never finds it.
    """
    known = set(known_ids)
    edges = [
        (id1, id2)
        for id1, row in (duplicates_dict or {}).items()
        for id2, is_duplicate in row.items()
        if is_duplicate
    ]
    edges += [(id1, id2) for id1, id2 in duplicates_list or () if id1 in known and id2 in known]
    if add_transitive_closure:
        edges += [
            pair
            for component in _connected_components(edges)
            for pair in itertools.combinations(component, 2)
        ]
    return {frozenset(pair) for pair in edges if pair[0] in known and pair[1] in known}


def _connected_components(edges: list[tuple[Hashable, Hashable]]) -> list[list[Hashable]]:
    """The connected components of an undirected graph given by its edges (union-find)."""
    parent: dict[Hashable, Hashable] = {}

    def root(node: Hashable) -> Hashable:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for a, b in edges:
        parent[root(a)] = root(b)
    components: dict[Hashable, list[Hashable]] = {}
    for node in list(parent):
        components.setdefault(root(node), []).append(node)
    return list(components.values())


class ParaphraseMiningEvaluator(EmbeddingEvaluator):
    """Average precision and best F1 of the mined pairs, ranked by score, against the gold duplicates.

    `jaxst.util.paraphrase_mining` returns candidate pairs by decreasing cosine similarity. Walking down
    that list, a cut is considered after each group of equal scores that adds a correct pair; with c
    correct among n extracted and G gold pairs, precision = c / n and recall = c / G there, and
    AP = sum over those cuts of precision * (correct pairs the group adds) / G. The best F1 cut gives
    `f1`, `precision`, `recall` and `threshold` (the midpoint of its last score and the next).
    Metrics: `average_precision` (primary), `f1`, `precision`, `recall`, `threshold`.

    Args:
        sentences_map: sentence id -> sentence.
        duplicates_list: gold (id1, id2) pairs; pairs naming an id outside sentences_map are ignored.
        duplicates_dict: gold pairs as `[id1][id2] -> True` (either direction counts).
        add_transitive_closure: also count as duplicates every two ids linked by a chain of gold pairs.
        query_chunk_size, corpus_chunk_size, max_pairs, top_k: passed to `paraphrase_mining`.
        show_progress_bar: passed to encode (None: on at INFO logging).
        batch_size: encoding batch size.
        name: prefix of the metric keys and part of `paraphrase_mining_evaluation[_{name}]_results.csv`.
        write_csv: append the metrics to the CSV file under output_path.
        truncate_dim: keep the first `truncate_dim` embedding dimensions.
    """

    log_title = "Paraphrase Mining Evaluation of the model"
    csv_kind = "paraphrase_mining_evaluation"

    def __init__(
        self,
        sentences_map: Mapping[Hashable, str],
        duplicates_list: Iterable[tuple[Hashable, Hashable]] | None = None,
        duplicates_dict: Mapping[Hashable, Mapping[Hashable, bool]] | None = None,
        add_transitive_closure: bool = False,
        query_chunk_size: int = 5000,
        corpus_chunk_size: int = 100000,
        max_pairs: int = 500000,
        top_k: int = 100,
        show_progress_bar: bool | None = False,
        batch_size: int = 16,
        name: str = "",
        write_csv: bool = True,
        truncate_dim: int | None = None,
    ) -> None:
        if len(sentences_map) < 2:
            raise ValueError(
                f"sentences_map needs at least 2 sentences to mine pairs, got {len(sentences_map)}."
            )
        super().__init__(name, batch_size, show_progress_bar, write_csv, truncate_dim)
        self.ids = list(sentences_map)
        self.sentences = [sentences_map[sentence_id] for sentence_id in self.ids]
        self.add_transitive_closure = add_transitive_closure
        self.duplicates = duplicate_pairs(self.ids, duplicates_list, duplicates_dict, add_transitive_closure)
        self.total_num_duplicates = len(self.duplicates)
        self.query_chunk_size = query_chunk_size
        self.corpus_chunk_size = corpus_chunk_size
        self.max_pairs = max_pairs
        self.top_k = top_k
        self.primary_metric = "average_precision"

    def csv_columns(self) -> list[str]:
        return ["precision", "recall", "f1", "threshold", "average_precision"]

    def compute(self, model, output_path: str | None) -> tuple[dict[str, float], list]:
        pairs = paraphrase_mining(
            model,
            self.sentences,
            show_progress_bar=self.show_progress_bar,
            batch_size=self.batch_size,
            query_chunk_size=self.query_chunk_size,
            corpus_chunk_size=self.corpus_chunk_size,
            max_pairs=self.max_pairs,
            top_k=self.top_k,
            truncate_dim=self.truncate_dim,
        )
        logger.info(f"Number of candidate pairs: {len(pairs)}")
        scores = np.array([score for score, _, _ in pairs], dtype=np.float64)
        correct = np.array([frozenset((self.ids[i], self.ids[j])) in self.duplicates for _, i, j in pairs])
        metrics = self.ranking_metrics(scores, correct)
        logger.info(f"Average Precision: {metrics['average_precision'] * 100:.2f}")
        logger.info(f"Optimal threshold: {metrics['threshold']:.4f}")
        logger.info(f"Precision: {metrics['precision'] * 100:.2f}")
        logger.info(f"Recall: {metrics['recall'] * 100:.2f}")
        logger.info(f"F1: {metrics['f1'] * 100:.2f}\n")
        return metrics, [metrics[column] for column in self.csv_columns()]

    def ranking_metrics(self, scores: np.ndarray, correct: np.ndarray) -> dict[str, float]:
        """AP and the best-F1 cut of pairs [n] sorted by decreasing score; `correct` [n] marks gold pairs."""
        metrics = dict.fromkeys(["average_precision", "f1", "precision", "recall", "threshold"], 0.0)
        if len(scores) == 0 or self.total_num_duplicates == 0:
            return metrics
        group_ends = np.flatnonzero(np.append(scores[1:] != scores[:-1], True))
        n_correct = np.cumsum(correct)[group_ends]
        added = np.diff(n_correct, prepend=0)
        cuts = group_ends[added > 0]
        if len(cuts) == 0:
            return metrics
        precision = n_correct[added > 0] / (cuts + 1)
        recall = n_correct[added > 0] / self.total_num_duplicates
        f1 = 2 * precision * recall / (precision + recall)
        best = int(np.argmax(f1))
        next_score = scores[min(cuts[best] + 1, len(scores) - 1)]
        return {
            "average_precision": float(np.sum(precision * added[added > 0]) / self.total_num_duplicates),
            "f1": float(f1[best]),
            "precision": float(precision[best]),
            "recall": float(recall[best]),
            "threshold": float((scores[cuts[best]] + next_score) / 2),
        }
