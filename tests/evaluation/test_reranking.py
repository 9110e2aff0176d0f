"""RerankingEvaluator against sentence-transformers' on equal embeddings (SNLI triplets grouped by anchor)."""

import logging

import numpy as np
import pytest
from sentence_transformers import util as st_util
from sentence_transformers.sentence_transformer.evaluation import RerankingEvaluator as STEvaluator

from jaxst import util
from jaxst.evaluation import RerankingEvaluator
from tests.evaluation.compare import assert_same_csv_files, assert_same_metrics
from tests.evaluation.fixed_model import FixedEmbeddingModel, hashed_vector, sign_vector
from tests.shared_data import read_tsv

DIM = 16


@pytest.fixture(scope="module")
def samples():
    """SNLI dev triplets grouped by anchor: the anchor is the query, its positives and negatives the
    candidates (a sample with one of each gives them as strings). Positives lie a little nearer the anchor
    than negatives, so rankings are good but not perfect. Every candidate text is distinct within its
    sample: a repeated text would tie exactly with itself (ties are checked below, with exact vectors)."""
    grouped: dict[str, dict] = {}
    for row in read_tsv("pairs/snli_triplets.tsv.gz", "dev")[:600]:
        sample = grouped.setdefault(row["anchor"], {"query": row["anchor"], "positive": [], "negative": []})
        candidates = sample["positive"] + sample["negative"]
        for key in ("positive", "negative"):
            if row[key] not in candidates and row[key] != row["anchor"]:
                sample[key].append(row[key])
                candidates.append(row[key])
    samples = [s for s in grouped.values() if s["positive"] and s["negative"]][:120]
    samples[0] = {**samples[0], "positive": samples[0]["positive"][0], "negative": samples[0]["negative"][0]}
    samples.append({"query": "no negative", "positive": ["a"], "negative": []})  # left out by both
    rng = np.random.default_rng(0)
    vectors = {}
    for sample in samples:
        query = vectors.setdefault(sample["query"], hashed_vector(sample["query"], DIM))
        for key, noise in (("positive", 1.0), ("negative", 1.3)):
            texts = [sample[key]] if isinstance(sample[key], str) else sample[key]
            for text in texts:
                vectors.setdefault(text, query + noise * rng.standard_normal(DIM))
    return samples, vectors


def run_both(model, tmp_path, samples, our_options=None, **options) -> dict:
    ours = RerankingEvaluator(samples, **{**options, **(our_options or {})})
    theirs = STEvaluator(samples, **options)
    for steps in (4, -1):
        our_metrics = ours(model, output_path=str(tmp_path / "ours"), epoch=2, steps=steps)
        their_metrics = theirs(model, output_path=str(tmp_path / "theirs"), epoch=2, steps=steps)
        assert_same_metrics(our_metrics, their_metrics)
        assert ours.primary_metric == theirs.primary_metric
    assert_same_csv_files(str(tmp_path / "ours"), str(tmp_path / "theirs"))
    return our_metrics


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"at_k": 1, "name": "snli"},
        {"at_k": 3, "use_batched_encoding": False, "batch_size": 5},
        {"truncate_dim": 8},
    ],
)
def test_same_metrics_and_csv_as_sentence_transformers(samples, tmp_path, options):
    samples, vectors = samples
    metrics = run_both(FixedEmbeddingModel(vectors, dim=DIM), tmp_path, samples, **options)
    prefix = f"{options['name']}_" if "name" in options else ""
    assert 0.5 < metrics[f"{prefix}ndcg@{options.get('at_k', 10)}"] < 1.0


def test_samples_as_a_dict_and_a_dot_product(samples, tmp_path):
    samples, vectors = samples
    keyed = {f"s{i}": sample for i, sample in enumerate(samples)}
    run_both(
        FixedEmbeddingModel(vectors, dim=DIM),
        tmp_path,
        keyed,
        {"similarity_fct": util.dot_score},
        similarity_fct=st_util.dot_score,
    )


def test_deprecated_mrr_at_k_sets_at_k_with_a_warning(samples, tmp_path, caplog):
    samples, vectors = samples
    with caplog.at_level(logging.WARNING, logger="jaxst.evaluation.reranking"):
        metrics = run_both(FixedEmbeddingModel(vectors, dim=DIM), tmp_path, samples, at_k=10, mrr_at_k=5)
    assert "please use `at_k=5` instead" in caplog.text
    assert list(metrics) == ["map", "mrr@5", "ndcg@5"]
    assert (tmp_path / "ours" / "RerankingEvaluator_results_@5.csv").exists()


def test_tied_scores_share_their_gain_as_sentence_transformers(tmp_path):
    """A text that is both a positive and a negative of its query scores exactly the same twice (+-1
    vectors: exact in any kernel); MAP and nDCG average over the tie as scikit-learn does. Another positive,
    the query's own vector, ranks first, so MRR does not depend on the order within the tie."""
    texts = [f"text {i}" for i in range(8)]
    samples = [
        {
            "query": f"query {i}",
            "positive": [f"same as query {i}", texts[i]],
            "negative": [texts[i], texts[-1 - i]],
        }
        for i in range(4)
    ]
    vectors = {text: sign_vector(text, DIM) for text in texts}
    for i in range(4):
        vectors[f"query {i}"] = vectors[f"same as query {i}"] = sign_vector(f"query {i}", DIM)
    metrics = run_both(FixedEmbeddingModel(vectors, dim=DIM), tmp_path, samples, at_k=2)
    assert metrics["mrr@2"] == 1.0


def test_bad_arguments_are_errors(samples):
    samples, _ = samples
    with pytest.raises(ValueError, match="Sample 1 has no \\['negative'\\] key"):
        RerankingEvaluator([samples[0], {"query": "q", "positive": ["p"]}])
    with pytest.raises(ValueError, match="No sample has both a positive and a negative"):
        RerankingEvaluator([{"query": "q", "positive": ["p"], "negative": []}])
    with pytest.raises(ValueError, match="at_k must be at least 1, got 0"):
        RerankingEvaluator(samples, at_k=0)
