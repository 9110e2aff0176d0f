"""InformationRetrievalEvaluator against sentence-transformers' on equal embeddings (MRPC retrieval set)."""

import json
import logging

import numpy as np
import pytest
from sentence_transformers import util as st_util
from sentence_transformers.sentence_transformer.evaluation import (
    InformationRetrievalEvaluator as STEvaluator,
)

from jaxst import util
from jaxst.evaluation import InformationRetrievalEvaluator
from tests.evaluation.compare import assert_same_csv_files, assert_same_metrics
from tests.evaluation.fixed_model import FixedEmbeddingModel, hashed_vector, sign_vector
from tests.shared_data import read_tsv

DIM = 16


@pytest.fixture(scope="module")
def retrieval_set():
    """Queries: first sentences of 300 MRPC test pairs; corpus: all second sentences; relevant: the pair's
    second sentence, and for every third query also the next pair's. Queries lie near their documents.

    Pairs whose second sentence repeats an earlier one are left out: the two documents would score equal
    in exact arithmetic, and in different corpus chunks each framework's rounding, which depends on the
    CPU's matmul kernel, would decide their order (exact ties are checked below, with exact vectors).
    """
    first_of_each_text = {}
    for row in read_tsv("pairs/mrpc.tsv.gz", "test"):
        first_of_each_text.setdefault(row["sentence2"], row)
    rows = list(first_of_each_text.values())[:300]
    corpus = {f"doc{i}": row["sentence2"] for i, row in enumerate(rows)}
    queries = {f"q{i}": row["sentence1"] for i, row in enumerate(rows)}
    relevant = {f"q{i}": {f"doc{i}"} | ({f"doc{i + 1}"} if i % 3 == 0 else set()) for i in range(299)}
    rng = np.random.default_rng(0)
    vectors = {text: hashed_vector(text, DIM) for text in corpus.values()}
    for qid, query in queries.items():
        docs = [vectors[corpus[cid]] for cid in sorted(relevant.get(qid, {"doc0"}))]
        vectors.setdefault(query, np.mean(docs, axis=0) + 0.9 * rng.standard_normal(DIM))
    return queries, corpus, relevant, vectors


def run_both(queries, corpus, relevant, model, tmp_path, our_options=None, **options):
    ours = InformationRetrievalEvaluator(queries, corpus, relevant, **{**options, **(our_options or {})})
    theirs = STEvaluator(queries, corpus, relevant, **options)
    results = []
    for steps in (1, 2):
        our_metrics = ours(model, output_path=str(tmp_path / "ours"), epoch=0, steps=steps)
        their_metrics = theirs(model, output_path=str(tmp_path / "theirs"), epoch=0, steps=steps)
        assert_same_metrics(our_metrics, their_metrics)
        assert ours.primary_metric == theirs.primary_metric
        results.append(our_metrics)
    assert_same_csv_files(str(tmp_path / "ours"), str(tmp_path / "theirs"))
    return results[0], ours


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"name": "mrpc", "corpus_chunk_size": 37},
        {
            "mrr_at_k": [1, 5],
            "ndcg_at_k": [3, 20],
            "accuracy_at_k": [2],
            "precision_recall_at_k": [7],
            "map_at_k": [4],
        },
        {"truncate_dim": 8, "main_score_function": "cosine"},
        {"query_prompt": "query: ", "corpus_prompt_name": "doc", "write_predictions": True},
    ],
)
def test_same_metrics_csv_and_predictions_as_sentence_transformers(retrieval_set, tmp_path, options):
    queries, corpus, relevant, vectors = retrieval_set
    model = FixedEmbeddingModel(vectors, dim=DIM, prompts={"doc": "passage: "})
    metrics, evaluator = run_both(queries, corpus, relevant, model, tmp_path, **options)
    if "query_prompt" not in options:  # prompted texts get unrelated embeddings
        assert 0.3 < metrics[evaluator.primary_metric] < 1.0


def test_several_score_functions(retrieval_set, tmp_path):
    queries, corpus, relevant, vectors = retrieval_set
    model = FixedEmbeddingModel(vectors, dim=DIM)
    ours = {"score_functions": {"cosine": util.cos_sim, "dot": util.dot_score}}
    theirs = {"score_functions": {"cosine": st_util.cos_sim, "dot": st_util.dot_score}}
    for main in (None, "dot"):
        run_both(
            queries, corpus, relevant, model, tmp_path / str(main), ours, main_score_function=main, **theirs
        )


def test_score_function_follows_the_model_at_every_call(retrieval_set, tmp_path):
    queries, corpus, relevant, vectors = retrieval_set
    ours = InformationRetrievalEvaluator(queries, corpus, relevant)
    theirs = STEvaluator(queries, corpus, relevant)
    for similarity_fn_name in ("cosine", "dot"):
        model = FixedEmbeddingModel(vectors, dim=DIM, similarity_fn_name=similarity_fn_name)
        assert_same_metrics(ours(model), theirs(model))
        assert ours.primary_metric == theirs.primary_metric == f"{similarity_fn_name}_ndcg@10"


def test_write_predictions_as_sentence_transformers(retrieval_set, tmp_path):
    queries, corpus, relevant, vectors = retrieval_set
    model = FixedEmbeddingModel(vectors, dim=DIM)
    InformationRetrievalEvaluator(queries, corpus, relevant, write_predictions=True)(
        model, str(tmp_path / "o")
    )
    STEvaluator(queries, corpus, relevant, write_predictions=True)(model, str(tmp_path / "t"))
    name = "Information-Retrieval_evaluation_predictions_cosine.jsonl"
    ours = [json.loads(line) for line in (tmp_path / "o" / name).read_text().splitlines()]
    theirs = [json.loads(line) for line in (tmp_path / "t" / name).read_text().splitlines()]
    assert [(p["query_id"], p["query"]) for p in ours] == [(p["query_id"], p["query"]) for p in theirs]
    for our_prediction, their_prediction in zip(ours, theirs, strict=True):
        assert [r["corpus_id"] for r in our_prediction["results"]] == [
            r["corpus_id"] for r in their_prediction["results"]
        ]
        np.testing.assert_allclose(
            [r["score"] for r in our_prediction["results"]],
            [r["score"] for r in their_prediction["results"]],
            atol=1e-6,
        )


def test_tied_scores_rank_by_corpus_id_as_sentence_transformers(tmp_path):
    """Duplicate documents score exactly alike; both libraries rank them by ascending corpus id.

    +-1 vectors (`sign_vector`) make every score exact, so the ties hold in both frameworks whatever the
    kernel and whichever chunks the two copies fall in. A query is its text's vector: it scores 1 with
    both copies and less with every other text.
    """
    texts = [f"text {i}" for i in range(6)]
    id_pairs = [(17, 3), (11, 0), (5, 9), (23, 2), (14, 8), (20, 1)]  # text i has both ids of pair i
    corpus = {cid: texts[i] for i, pair in enumerate(id_pairs) for cid in pair}
    queries = {f"q{i}": f"query {i}" for i in range(6)}
    relevant = {f"q{i}": {max(pair) if i % 2 else min(pair)} for i, pair in enumerate(id_pairs)}
    vectors = {text: sign_vector(text, DIM) for text in texts}
    vectors.update({f"query {i}": sign_vector(texts[i], DIM) for i in range(6)})
    model = FixedEmbeddingModel(vectors, dim=DIM)
    options = {
        "accuracy_at_k": [1],
        "precision_recall_at_k": [1],
        "mrr_at_k": [2],
        "ndcg_at_k": [1],
        "map_at_k": [1],
    }
    metrics, _ = run_both(queries, corpus, relevant, model, tmp_path, corpus_chunk_size=5, **options)
    assert metrics["cosine_accuracy@1"] == 0.5  # the lower id wins the tie
    assert metrics["cosine_mrr@2"] == 0.75


def test_qrels_naming_documents_outside_the_corpus_warn_and_count_as_sentence_transformers(
    retrieval_set, tmp_path, caplog
):
    queries, corpus, relevant, vectors = retrieval_set
    relevant = {**relevant, "q0": {"doc0", "missing-1"}, "q5": {"missing-2"}}
    model = FixedEmbeddingModel(vectors, dim=DIM)
    with caplog.at_level(logging.WARNING, logger="jaxst.evaluation.information_retrieval"):
        run_both(queries, corpus, relevant, model, tmp_path)
    assert "2 (query id, document id) pairs whose document is not in the corpus" in caplog.text
    assert "missing-1" in caplog.text


def test_bad_arguments_are_errors(retrieval_set):
    queries, corpus, relevant, _ = retrieval_set
    with pytest.raises(ValueError, match="The corpus is empty"):
        InformationRetrievalEvaluator(queries, {}, relevant)
    with pytest.raises(ValueError, match="No query has relevant documents"):
        InformationRetrievalEvaluator(queries, corpus, {"unknown": {"doc1"}})
    with pytest.raises(ValueError, match=r"Every cut-off k must be at least 1, got \[0\]"):
        InformationRetrievalEvaluator(queries, corpus, relevant, mrr_at_k=[0, 10])
    with pytest.raises(ValueError, match="Unknown similarity function 'cos'"):
        InformationRetrievalEvaluator(queries, corpus, relevant, main_score_function="cos")
