"""NanoBEIREvaluator over a local NanoBEIR folder against sentence-transformers' loading the same folder."""

import shutil

import huggingface_hub
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sentence_transformers import util as st_util
from sentence_transformers.sentence_transformer.evaluation import NanoBEIREvaluator as STEvaluator

from jaxst import util
from jaxst.evaluation import NanoBEIREvaluator
from tests.evaluation.compare import assert_same_csv_files, assert_same_metrics
from tests.evaluation.fixed_model import FixedEmbeddingModel, hashed_vector
from tests.shared_data import read_tsv

DIM = 16
SPLITS = {"msmarco": "NanoMSMARCO", "nfcorpus": "NanoNFCorpus"}


def write_split(folder, subset: str, split: str, table: dict) -> None:
    (folder / subset).mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(table), folder / subset / f"{split}-00000-of-00001.parquet")


def write_nanobeir(folder, list_qrels: bool) -> dict:
    """Two NanoBEIR datasets in the hub layout (corpus/, queries/, qrels/ with Nano{Name}-*.parquet, and the
    README configs through which `datasets` loads the folder for sentence-transformers), from MRPC test
    pairs with distinct texts: first sentences are queries, second sentences documents; the qrels rows hold
    one document id each, or (list_qrels) a list of them. Each corpus has an empty text, which both
    libraries leave out. Queries lie near their relevant documents, with noise, so that no two documents
    tie for a query. Returns the embedding of every text."""
    rows, seen = [], set()
    for row in read_tsv("pairs/mrpc.tsv.gz", "test"):
        if not {row["sentence1"], row["sentence2"]} & seen:
            seen |= {row["sentence1"], row["sentence2"]}
            rows.append(row)
    rng = np.random.default_rng(0)
    vectors = {}
    readme = ["---", "configs:"]
    for index, (name, split) in enumerate(SPLITS.items()):
        part = rows[index * 60 : (index + 1) * 60]
        corpus_ids = [f"{name}-d{i}" for i in range(60)] + [f"{name}-empty"]
        write_split(
            folder, "corpus", split, {"_id": corpus_ids, "text": [r["sentence2"] for r in part] + [""]}
        )
        write_split(
            folder,
            "queries",
            split,
            {"_id": [f"{name}-q{i}" for i in range(60)], "text": [r["sentence1"] for r in part]},
        )
        relevant = [[f"{name}-d{i}"] + ([f"{name}-d{i + 1}"] if i % 4 == 0 else []) for i in range(59)]
        if list_qrels:
            qrels = {"query-id": [f"{name}-q{i}" for i in range(59)], "corpus-id": relevant}
        else:
            pairs = [(f"{name}-q{i}", doc) for i in range(59) for doc in relevant[i]]
            qrels = {"query-id": [q for q, _ in pairs], "corpus-id": [d for _, d in pairs]}
        write_split(folder, "qrels", split, qrels)
        for row in part:
            vectors[row["sentence2"]] = hashed_vector(row["sentence2"], DIM)
        for i, row in enumerate(part[:59]):
            docs = [vectors[part[j]["sentence2"]] for j in ([i, i + 1] if i % 4 == 0 else [i])]
            vectors[row["sentence1"]] = np.mean(docs, axis=0) + 0.9 * rng.standard_normal(DIM)
    for subset in ("corpus", "queries", "qrels"):
        readme += [f"- config_name: {subset}", "  data_files:"]
        readme += [f"  - split: {split}\n    path: {subset}/{split}-*" for split in SPLITS.values()]
    (folder / "README.md").write_text("\n".join(readme + ["---", ""]))
    return vectors


@pytest.fixture(scope="module")
def nanobeir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nanobeir")
    return str(folder), write_nanobeir(folder, list_qrels=False)


@pytest.fixture(scope="module")
def nanobeir_with_lists_of_qrels(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nanobeir-lists")
    return str(folder), write_nanobeir(folder, list_qrels=True)


@pytest.fixture(autouse=True)
def datasets_cache_in_tmp(tmp_path, monkeypatch):
    """sentence-transformers' `datasets.load_dataset` of the folder caches under tmp_path."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")


def run_both(folder, model, tmp_path, our_options=None, **options) -> tuple[dict, NanoBEIREvaluator]:
    ours = NanoBEIREvaluator(list(SPLITS), folder, **{**options, **(our_options or {})})
    theirs = STEvaluator(list(SPLITS), folder, **options)
    for steps in (5, -1):
        our_metrics = ours(model, output_path=str(tmp_path / "ours"), epoch=0, steps=steps)
        their_metrics = theirs(model, output_path=str(tmp_path / "theirs"), epoch=0, steps=steps)
        assert_same_metrics(our_metrics, their_metrics)
        assert ours.primary_metric == theirs.primary_metric
    assert_same_csv_files(str(tmp_path / "ours"), str(tmp_path / "theirs"))
    return our_metrics, ours


def test_same_metrics_and_csv_files_as_sentence_transformers(nanobeir, tmp_path):
    folder, vectors = nanobeir
    metrics, evaluator = run_both(folder, FixedEmbeddingModel(vectors, dim=DIM), tmp_path)
    assert evaluator.primary_metric == "NanoBEIR_mean_cosine_ndcg@10"
    assert 0.3 < metrics[evaluator.primary_metric] < 1.0
    assert "NanoMSMARCO_cosine_ndcg@10" in metrics and "NanoNFCorpus_cosine_map@100" in metrics


def test_options_and_lists_of_qrels_as_sentence_transformers(nanobeir_with_lists_of_qrels, tmp_path):
    folder, vectors = nanobeir_with_lists_of_qrels
    model = FixedEmbeddingModel(vectors, dim=DIM, prompts={})
    metrics, evaluator = run_both(
        folder,
        model,
        tmp_path,
        {"score_functions": {"cosine": util.cos_sim, "dot": util.dot_score}},
        score_functions={"cosine": st_util.cos_sim, "dot": st_util.dot_score},
        main_score_function="dot",
        truncate_dim=8,
        aggregate_fn=np.median,
        aggregate_key="median",
        mrr_at_k=[3],
        ndcg_at_k=[5, 20],
        accuracy_at_k=[1],
        precision_recall_at_k=[2],
        map_at_k=[7],
        query_prompts="query: ",
        corpus_prompts={"msmarco": "passage: ", "nfcorpus": "doc: "},
        write_predictions=True,
    )
    assert evaluator.primary_metric == "NanoBEIR_median_8_dot_ndcg@20"
    assert "NanoNFCorpus_8_dot_mrr@3" in metrics
    assert "passage: " + read_tsv("pairs/mrpc.tsv.gz", "test")[0]["sentence2"] in model.encoded_texts


def test_a_dataset_id_found_in_the_hub_cache(nanobeir, tmp_path, monkeypatch):
    """sentence-transformers/NanoBEIR-en as the hub cache holds it after sentence-transformers loaded it:
    the snapshot that refs/main names. Nothing is downloaded."""
    folder, vectors = nanobeir
    repo = tmp_path / "hub" / "datasets--sentence-transformers--NanoBEIR-en"
    commit = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    evaluator = NanoBEIREvaluator(["msmarco"])
    assert evaluator.folder == str(repo / "snapshots" / commit)
    local = NanoBEIREvaluator(["msmarco"], folder)
    model = FixedEmbeddingModel(vectors, dim=DIM)
    assert evaluator(model) == local(model)


def test_bad_arguments_are_errors(nanobeir, tmp_path):
    folder, _ = nanobeir
    with pytest.raises(ValueError, match=r"Dataset\(s\) \['msmarc'\] are not valid NanoBEIR datasets"):
        NanoBEIREvaluator(["msmarc"], folder)
    with pytest.raises(ValueError, match="dataset_names cannot be empty"):
        NanoBEIREvaluator([], folder)
    with pytest.raises(ValueError, match="is neither a folder nor a dataset in the Hugging Face hub cache"):
        NanoBEIREvaluator(["msmarco"], "no-such-owner/no-such-dataset")
    with pytest.raises(ValueError, match="no corpus file of NanoSciFact"):
        NanoBEIREvaluator(["scifact"], folder)
    with pytest.raises(ValueError, match=r"missing query prompts: \['nfcorpus'\]"):
        NanoBEIREvaluator(list(SPLITS), folder, query_prompts={"msmarco": "q: "})
    write_split(tmp_path, "corpus", "NanoMSMARCO", {"id": ["d"], "text": ["x"]})
    with pytest.raises(ValueError, match=r"is missing the required columns \['_id'\]"):
        NanoBEIREvaluator(["msmarco"], str(tmp_path))
