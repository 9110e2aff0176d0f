"""NanoBEIR: information retrieval on the small BEIR datasets of a local NanoBEIR folder, and their mean."""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from enum import Enum

import jax
import numpy as np
from huggingface_hub import constants, snapshot_download
from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

from jaxst.evaluation.base import BaseEvaluator, append_csv_row, csv_file_name, progress_text
from jaxst.evaluation.information_retrieval import InformationRetrievalEvaluator

logger = logging.getLogger(__name__)

DATASET_NAME_TO_HUMAN_READABLE = {
    "climatefever": "ClimateFEVER",
    "dbpedia": "DBPedia",
    "fever": "FEVER",
    "fiqa2018": "FiQA2018",
    "hotpotqa": "HotpotQA",
    "msmarco": "MSMARCO",
    "nfcorpus": "NFCorpus",
    "nq": "NQ",
    "quoraretrieval": "QuoraRetrieval",
    "scidocs": "SCIDOCS",
    "arguana": "ArguAna",
    "scifact": "SciFact",
    "touche2020": "Touche2020",
}


def nanobeir_folder(dataset_id: str) -> str:
    """The local folder of a NanoBEIR dataset: `dataset_id` itself when it is a folder, else the snapshot of
    the Hugging Face dataset repository `dataset_id` already in the hub cache (read only, never a download).

    Raises:
        ValueError: neither exists, saying where it looked.
    """
    if os.path.isdir(dataset_id):
        return dataset_id
    try:
        return snapshot_download(dataset_id, repo_type="dataset", local_files_only=True)
    except (LocalEntryNotFoundError, HFValidationError):
        raise ValueError(
            f"dataset_id {dataset_id!r} is neither a folder nor a dataset in the Hugging Face hub cache "
            f"({constants.HF_HUB_CACHE}). jaxst downloads nothing: pass the folder holding "
            "corpus/, queries/ and qrels/ with Nano{Name}-*.parquet files."
        ) from None


def read_nanobeir_split(folder: str, subset: str, split: str, required_columns: Sequence[str]) -> list[dict]:
    """The rows of `{folder}/{subset}/{split}-*.parquet` (the files of a NanoBEIR dataset snapshot, in
    name order), as dicts.

    Raises:
        ValueError: no such file, or a required column missing.
    """
    try:
        import pyarrow.parquet as pq
    except ImportError as error:
        raise ImportError(
            "NanoBEIREvaluator reads parquet files with pyarrow: `pip install jaxst[nanobeir]`."
        ) from error
    pattern = os.path.join(folder, subset, f"{split}-*.parquet")
    files = sorted(glob.glob(pattern))
    if not files:
        raise ValueError(
            f"NanoBEIR folder {folder!r} has no {subset} file of {split}: nothing matches {pattern}."
        )
    rows = [row for path in files for row in pq.read_table(path).to_pylist()]
    columns = set(pq.read_schema(files[0]).names)
    if missing := [column for column in required_columns if column not in columns]:
        raise ValueError(f"{files[0]} ({subset} of {split}) is missing the required columns {missing}.")
    return rows


class NanoBEIREvaluator(BaseEvaluator):
    """An InformationRetrievalEvaluator per NanoBEIR dataset of a local folder, and their aggregate.

    The folder (`dataset_id`) has sentence-transformers' NanoBEIR hub layout: for each dataset
    `Nano{Name}` (e.g. NanoMSMARCO), `corpus/Nano{Name}-*.parquet` and `queries/Nano{Name}-*.parquet`
    (columns `_id`, `text`; empty texts are left out) and `qrels/Nano{Name}-*.parquet` (`query-id`,
    `corpus-id`, one id or a list). A snapshot of sentence-transformers/NanoBEIR-en (or a translated
    NanoBEIR) has it: a copy on disk, or the one the Hugging Face hub cache holds when sentence-transformers
    loaded it before (see `nanobeir_folder`); jaxst downloads nothing.

    Metrics: every sub-evaluator's, prefixed `Nano{Name}[_{truncate_dim}]_`, then each metric m
    aggregated over the datasets by `aggregate_fn`, prefixed `NanoBEIR_{aggregate_key}[_{truncate_dim}]_`.
    primary_metric: the aggregate `{f}_ndcg@{max ndcg k}` for main_score_function f, else for the score
    function with the best aggregate. The sub-evaluators write their own CSV files; this one appends the
    aggregates to `NanoBEIR_evaluation_{aggregate_key}_results.csv`.

    Args:
        dataset_names: short names (case-insensitive: "msmarco", "nfcorpus", ...; see
            DATASET_NAME_TO_HUMAN_READABLE); None: all thirteen.
        dataset_id: the local NanoBEIR folder, or the id of a NanoBEIR dataset in the hub cache.
        mrr_at_k, ndcg_at_k, accuracy_at_k, precision_recall_at_k, map_at_k: cut-offs, as
            InformationRetrievalEvaluator's.
        show_progress_bar, batch_size, write_csv, truncate_dim, score_functions, main_score_function,
        write_predictions: passed to every InformationRetrievalEvaluator.
        aggregate_fn: list of per-dataset values -> aggregate.
        aggregate_key: part of the aggregate metric keys and of the CSV file name.
        query_prompts, corpus_prompts: one prompt for all datasets, or a dict with one per dataset name
            (as given in dataset_names).
    """

    def __init__(
        self,
        dataset_names: Sequence[str] | None = None,
        dataset_id: str = "sentence-transformers/NanoBEIR-en",
        mrr_at_k: Sequence[int] = (10,),
        ndcg_at_k: Sequence[int] = (10,),
        accuracy_at_k: Sequence[int] = (1, 3, 5, 10),
        precision_recall_at_k: Sequence[int] = (1, 3, 5, 10),
        map_at_k: Sequence[int] = (100,),
        show_progress_bar: bool | None = False,
        batch_size: int = 32,
        write_csv: bool = True,
        truncate_dim: int | None = None,
        score_functions: Mapping[str, Callable[[jax.Array, jax.Array], jax.Array]] | None = None,
        main_score_function: str | Enum | None = None,
        aggregate_fn: Callable[[list[float]], float] = np.mean,
        aggregate_key: str = "mean",
        query_prompts: str | Mapping[str, str] | None = None,
        corpus_prompts: str | Mapping[str, str] | None = None,
        write_predictions: bool = False,
    ) -> None:
        super().__init__()
        self.dataset_names = (
            list(DATASET_NAME_TO_HUMAN_READABLE) if dataset_names is None else list(dataset_names)
        )
        self._check_dataset_names()
        self.dataset_id = dataset_id
        self.folder = nanobeir_folder(dataset_id)
        self.aggregate_fn = aggregate_fn
        self.aggregate_key = aggregate_key
        self.write_csv = write_csv
        self.truncate_dim = truncate_dim
        self.name = f"NanoBEIR_{aggregate_key}" + (f"_{truncate_dim}" if truncate_dim else "")
        self.query_prompts = self._prompts_per_dataset(query_prompts, "query")
        self.corpus_prompts = self._prompts_per_dataset(corpus_prompts, "corpus")
        self.score_function_names = sorted(score_functions) if score_functions else []
        ir_options = dict(
            mrr_at_k=mrr_at_k,
            ndcg_at_k=ndcg_at_k,
            accuracy_at_k=accuracy_at_k,
            precision_recall_at_k=precision_recall_at_k,
            map_at_k=map_at_k,
            show_progress_bar=show_progress_bar,
            batch_size=batch_size,
            write_csv=write_csv,
            truncate_dim=truncate_dim,
            score_functions=score_functions,
            main_score_function=main_score_function,
            write_predictions=write_predictions,
        )
        self.evaluators = [self._load_dataset(name, **ir_options) for name in self.dataset_names]
        self.main_score_function = self.evaluators[0].main_score_function
        self.ndcg_at_k = self.evaluators[0].k_values["ndcg@k"]

    @property
    def csv_file(self) -> str:
        """`NanoBEIR_evaluation_{aggregate_key}_results.csv`."""
        return csv_file_name("NanoBEIR_evaluation", self.aggregate_key)

    def _check_dataset_names(self) -> None:
        if not self.dataset_names:
            raise ValueError("dataset_names cannot be empty. Use None to evaluate on all datasets.")
        if unknown := [
            name for name in self.dataset_names if name.lower() not in DATASET_NAME_TO_HUMAN_READABLE
        ]:
            raise ValueError(
                f"Dataset(s) {unknown} are not valid NanoBEIR datasets. "
                f"Valid dataset names are: {list(DATASET_NAME_TO_HUMAN_READABLE)}"
            )

    def _prompts_per_dataset(self, prompts: str | Mapping[str, str] | None, kind: str) -> dict | None:
        if prompts is None or isinstance(prompts, str):
            return None if prompts is None else dict.fromkeys(self.dataset_names, prompts)
        if missing := [name for name in self.dataset_names if name not in prompts]:
            raise ValueError(f"The following datasets are missing {kind} prompts: {missing}")
        return dict(prompts)

    def _load_dataset(self, dataset_name: str, **ir_options) -> InformationRetrievalEvaluator:
        split = f"Nano{DATASET_NAME_TO_HUMAN_READABLE[dataset_name.lower()]}"
        corpus = read_nanobeir_split(self.folder, "corpus", split, ["_id", "text"])
        queries = read_nanobeir_split(self.folder, "queries", split, ["_id", "text"])
        qrels = read_nanobeir_split(self.folder, "qrels", split, ["query-id", "corpus-id"])
        relevant_docs: dict = {}
        for row in qrels:
            corpus_ids = row["corpus-id"]
            relevant_docs.setdefault(row["query-id"], set()).update(
                corpus_ids if isinstance(corpus_ids, list) else [corpus_ids]
            )
        return InformationRetrievalEvaluator(
            queries={row["_id"]: row["text"] for row in queries if row["text"]},
            corpus={row["_id"]: row["text"] for row in corpus if row["text"]},
            relevant_docs=relevant_docs,
            name=split + (f"_{self.truncate_dim}" if self.truncate_dim is not None else ""),
            query_prompt=self.query_prompts.get(dataset_name) if self.query_prompts else None,
            corpus_prompt=self.corpus_prompts.get(dataset_name) if self.corpus_prompts else None,
            **ir_options,
        )

    def __call__(
        self, model, output_path: str | None = None, epoch: int = -1, steps: int = -1
    ) -> dict[str, float]:
        """Every dataset's metrics, then the aggregates; a CSV row of the aggregates under output_path."""
        logger.info(
            f"NanoBEIR Evaluation of the model on {self.dataset_names} dataset"
            f"{progress_text(epoch, steps, self.truncate_dim)}:"
        )
        per_dataset: dict[str, float] = {}
        per_metric: dict[str, list[float]] = {}
        for evaluator in self.evaluators:
            logger.info(f"Evaluating {evaluator.name}")
            for key, value in evaluator(model, output_path, epoch, steps).items():
                per_dataset[key] = value
                per_metric.setdefault(key.removeprefix(evaluator.name + "_"), []).append(value)
        aggregates = {metric: self.aggregate_fn(values) for metric, values in per_metric.items()}
        score_function_names = self.evaluators[0].score_function_names
        if score_function_names != self.score_function_names:
            self.score_function_names = score_function_names
            self.primary_metric = None
        if output_path is not None and self.write_csv:
            headers = ["epoch", "steps", *self.evaluators[0].csv_columns()]
            row = [epoch, steps, *(aggregates[key] for _, key in self.evaluators[0].csv_metric_keys())]
            append_csv_row(output_path, self.csv_file, headers, row, lineterminator="\n")
        if not self.primary_metric:
            ndcg = f"ndcg@{max(self.ndcg_at_k)}"
            best = self.main_score_function or max(
                self.score_function_names, key=lambda fn_name: aggregates[f"{fn_name}_{ndcg}"]
            )
            self.primary_metric = f"{best}_{ndcg}"
        logger.info(f"Average Queries: {np.mean([len(e.queries) for e in self.evaluators])}")
        logger.info(f"Average Corpus: {np.mean([len(e.corpus) for e in self.evaluators])}\n")
        return per_dataset | self.prefix_name_to_metrics(aggregates, self.name)
