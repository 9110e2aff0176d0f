"""Retrieval of relevant documents for queries: accuracy, precision, recall, MRR, nDCG and MAP at k."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Hashable, Mapping, Sequence
from enum import Enum

import jax
import numpy as np

from jaxst.evaluation.base import EmbeddingEvaluator, similarity_name
from jaxst.evaluation.retrieval_metrics import relevance_matrix, retrieval_metrics
from jaxst.similarity import SIMILARITY_FUNCTIONS
from jaxst.util.search import top_k_search

logger = logging.getLogger(__name__)

METRIC_CSV_NAMES = {"mrr@k": "MRR", "ndcg@k": "NDCG", "map@k": "MAP"}


class InformationRetrievalEvaluator(EmbeddingEvaluator):
    """Rank the corpus for every query (exact jit-compiled top-k) and score the ranking against qrels.

    Queries without relevant documents are left out. Hits are ranked by score, ties by ascending corpus id
    (the corpus is embedded in sorted-id order, so the search's lower-index tie rule is the id order), as
    in sentence-transformers. Relevant ids missing from the corpus are kept, as sentence-transformers
    does: they can never be retrieved, so they lower recall, nDCG and MAP; a warning names them.

    Metrics, for each score function name f: `{f}_accuracy@k`, `{f}_precision@k`, `{f}_recall@k`,
    `{f}_ndcg@k`, `{f}_mrr@k`, `{f}_map@k` (see `retrieval_metrics`). primary_metric:
    `{main_score_function}_ndcg@{max ndcg k}`, else that of the best f.

    Args:
        queries: query id -> text.
        corpus: document id -> text (not empty).
        relevant_docs: query id -> set of relevant document ids.
        corpus_chunk_size: corpus rows scored at once.
        mrr_at_k, ndcg_at_k, accuracy_at_k, precision_recall_at_k, map_at_k: cut-offs (positive).
        show_progress_bar: passed to encode (None: on at INFO logging).
        batch_size: encoding batch size.
        name: prefix of the metric keys and part of `Information-Retrieval_evaluation[_{name}]_results.csv`.
        write_csv: append the metrics to that CSV file under output_path.
        truncate_dim: keep the first `truncate_dim` embedding dimensions.
        score_functions: name -> JAX-traceable `(queries [Q, D], corpus [C, D]) -> [Q, C]`, e.g.
            `{"cosine": jaxst.util.cos_sim}`; default: the model's `similarity_fn_name`, at every call.
        main_score_function: score function name of the primary metric.
        query_prompt, query_prompt_name, corpus_prompt, corpus_prompt_name: prompts for encoding.
        write_predictions: write the ranked hits per query to
            `Information-Retrieval_evaluation[_{name}]_predictions_{f}.jsonl` under output_path.
    """

    log_title = "Information Retrieval Evaluation of the model"
    csv_kind = "Information-Retrieval_evaluation"
    csv_lineterminator = "\n"

    def __init__(
        self,
        queries: Mapping[Hashable, str],
        corpus: Mapping[Hashable, str],
        relevant_docs: Mapping[Hashable, set],
        corpus_chunk_size: int = 50000,
        mrr_at_k: Sequence[int] = (10,),
        ndcg_at_k: Sequence[int] = (10,),
        accuracy_at_k: Sequence[int] = (1, 3, 5, 10),
        precision_recall_at_k: Sequence[int] = (1, 3, 5, 10),
        map_at_k: Sequence[int] = (100,),
        show_progress_bar: bool | None = False,
        batch_size: int = 32,
        name: str = "",
        write_csv: bool = True,
        truncate_dim: int | None = None,
        score_functions: Mapping[str, Callable[[jax.Array, jax.Array], jax.Array]] | None = None,
        main_score_function: str | Enum | None = None,
        query_prompt: str | None = None,
        query_prompt_name: str | None = None,
        corpus_prompt: str | None = None,
        corpus_prompt_name: str | None = None,
        write_predictions: bool = False,
    ) -> None:
        super().__init__(name, batch_size, show_progress_bar, write_csv, truncate_dim)
        self.queries_ids = [qid for qid in queries if len(relevant_docs.get(qid, ())) > 0]
        if not self.queries_ids:
            raise ValueError("No query has relevant documents: relevant_docs names none of the query ids.")
        if not corpus:
            raise ValueError("The corpus is empty: there is nothing to retrieve.")
        self.queries = [queries[qid] for qid in self.queries_ids]
        self.corpus_ids = sorted(corpus)
        self.corpus = [corpus[cid] for cid in self.corpus_ids]
        self.relevant_docs = relevant_docs
        self._warn_missing_documents(set(corpus))
        self.k_values = {
            "accuracy@k": list(accuracy_at_k),
            "precision@k": list(precision_recall_at_k),
            "recall@k": list(precision_recall_at_k),
            "ndcg@k": list(ndcg_at_k),
            "mrr@k": list(mrr_at_k),
            "map@k": list(map_at_k),
        }
        if bad := sorted({k for ks in self.k_values.values() for k in ks if k < 1}):
            raise ValueError(f"Every cut-off k must be at least 1, got {bad}.")
        self.corpus_chunk_size = corpus_chunk_size
        self.score_functions = dict(score_functions) if score_functions else {}
        self.score_function_names = sorted(self.score_functions)
        self._score_functions_from_model = not score_functions
        self.main_score_function = similarity_name(main_score_function) if main_score_function else None
        self.query_prompt = query_prompt
        self.query_prompt_name = query_prompt_name
        self.corpus_prompt = corpus_prompt
        self.corpus_prompt_name = corpus_prompt_name
        self.write_predictions = write_predictions

    def _warn_missing_documents(self, corpus_ids: set) -> None:
        missing = {
            (qid, cid) for qid in self.queries_ids for cid in self.relevant_docs[qid] if cid not in corpus_ids
        }
        if missing:
            examples = sorted(missing, key=repr)[:5]
            logger.warning(
                f"relevant_docs names {len(missing)} (query id, document id) pairs whose document is not in "
                f"the corpus, e.g. {examples}; they count as relevant but can never be retrieved."
            )

    def csv_metric_keys(self) -> list[tuple[str, str]]:
        """(CSV column, metric key) of every CSV value, in column order: for each score function f,
        `f-Accuracy@k`, then `f-Precision@k` and `f-Recall@k` by k, then MRR, NDCG and MAP."""
        pairs = []
        for fn_name in self.score_function_names:
            pairs += [
                (f"{fn_name}-Accuracy@{k}", f"{fn_name}_accuracy@{k}") for k in self.k_values["accuracy@k"]
            ]
            for k in self.k_values["precision@k"]:
                pairs += [
                    (f"{fn_name}-Precision@{k}", f"{fn_name}_precision@{k}"),
                    (f"{fn_name}-Recall@{k}", f"{fn_name}_recall@{k}"),
                ]
            for metric, csv_name in METRIC_CSV_NAMES.items():
                pairs += [
                    (f"{fn_name}-{csv_name}@{k}", f"{fn_name}_{metric.replace('@k', f'@{k}')}")
                    for k in self.k_values[metric]
                ]
        return pairs

    def csv_columns(self) -> list[str]:
        return [column for column, _ in self.csv_metric_keys()]

    def compute(self, model, output_path: str | None) -> tuple[dict[str, float], list]:
        if self._score_functions_from_model:
            fn_name = similarity_name(model.similarity_fn_name)
            self.score_functions = {fn_name: SIMILARITY_FUNCTIONS[fn_name]}
            if self.score_function_names != [fn_name]:
                self.score_function_names = [fn_name]
                self.primary_metric = None
        scores = self.compute_metrics(model, output_path)
        metrics = {
            f"{fn_name}_{metric.replace('@k', f'@{k}')}": value
            for fn_name, values in scores.items()
            for metric, per_k in values.items()
            for k, value in per_k.items()
        }
        return metrics, [metrics[key] for _, key in self.csv_metric_keys()]

    def choose_primary_metric(self, metrics: dict[str, float]) -> str:
        """Kept once chosen, until the model's similarity function changes the score functions."""
        if self.primary_metric:
            return self.primary_metric
        ndcg = f"ndcg@{max(self.k_values['ndcg@k'])}"
        best = self.main_score_function or max(
            self.score_function_names, key=lambda fn_name: metrics[f"{fn_name}_{ndcg}"]
        )
        return f"{best}_{ndcg}"

    def compute_metrics(
        self, model, output_path: str | None = None
    ) -> dict[str, dict[str, dict[int, float]]]:
        """Metrics per score function name: {"accuracy@k": {k: value}, ...}."""
        depth = max(k for ks in self.k_values.values() for k in ks)
        query_embeddings = self.embed_inputs(
            model, self.queries, role="query", prompt_name=self.query_prompt_name, prompt=self.query_prompt
        )
        corpus_embeddings = self.embed_inputs(
            model,
            self.corpus,
            role="document",
            prompt_name=self.corpus_prompt_name,
            prompt=self.corpus_prompt,
        )
        relevant = [self.relevant_docs[qid] for qid in self.queries_ids]
        n_relevant = np.array([len(docs) for docs in relevant])
        output = {}
        for fn_name, score_function in self.score_functions.items():
            hit_scores, hit_rows = top_k_search(
                query_embeddings,
                corpus_embeddings,
                depth,
                corpus_chunk_size=self.corpus_chunk_size,
                score_function=score_function,
            )
            ranked_ids = [[self.corpus_ids[row] for row in rows] for rows in hit_rows.tolist()]
            if self.write_predictions and output_path is not None:
                self._write_predictions(output_path, fn_name, ranked_ids, hit_scores)
            relevance = relevance_matrix(ranked_ids, relevant, depth)
            output[fn_name] = retrieval_metrics(relevance, n_relevant, self.k_values)
            logger.info(f"Score-Function: {fn_name}: {output[fn_name]}")
        return output

    @property
    def predictions_file(self) -> str:
        """The CSV file's name with `_predictions.jsonl` for `_results.csv` (a file per score function
        adds `_{f}` before `.jsonl`)."""
        return self.csv_file.removesuffix("_results.csv") + "_predictions.jsonl"

    def _write_predictions(
        self, output_path: str, fn_name: str, ranked_ids: list[list], hit_scores: np.ndarray
    ) -> None:
        os.makedirs(output_path, exist_ok=True)
        path = os.path.join(output_path, self.predictions_file.replace(".jsonl", f"_{fn_name}.jsonl"))
        with open(path, mode="w", encoding="utf-8") as f:
            for qid, query, ids, scores in zip(
                self.queries_ids, self.queries, ranked_ids, hit_scores.tolist(), strict=True
            ):
                results = [{"corpus_id": cid, "score": score} for cid, score in zip(ids, scores, strict=True)]
                f.write(json.dumps({"query_id": qid, "query": query, "results": results}) + "\n")
