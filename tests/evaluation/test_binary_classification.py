"""BinaryClassificationEvaluator against sentence-transformers' on equal embeddings (MRPC test slice), and its
threshold / AP / MCC functions against sentence-transformers' loops and scikit-learn."""

import numpy as np
import pytest
import sklearn.metrics
from sentence_transformers.sentence_transformer.evaluation import (
    BinaryClassificationEvaluator as STEvaluator,
)

from jaxst.evaluation import BinaryClassificationEvaluator
from jaxst.evaluation.classification_metrics import (
    average_precision,
    find_best_acc_and_threshold,
    find_best_f1_and_threshold,
    matthews_corrcoef,
)
from tests.evaluation.compare import assert_same_csv_files, assert_same_metrics
from tests.evaluation.fixed_model import FixedEmbeddingModel, hashed_vector
from tests.shared_data import read_tsv

DIM = 16


@pytest.fixture(scope="module")
def mrpc_pairs():
    """300 MRPC test pairs; paraphrases lie closer together than non-paraphrases, with overlap."""
    rows = read_tsv("pairs/mrpc.tsv.gz", "test")[:300]
    sentences1, sentences2 = [row["sentence1"] for row in rows], [row["sentence2"] for row in rows]
    labels = [int(row["label"]) for row in rows]
    rng = np.random.default_rng(0)
    vectors = {}
    for s1, s2, label in zip(sentences1, sentences2, labels, strict=True):
        vectors.setdefault(s1, hashed_vector(s1, DIM))
        vectors.setdefault(s2, vectors[s1] + (0.7 if label else 1.2) * rng.standard_normal(DIM))
    return sentences1, sentences2, labels, vectors


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"name": "mrpc-test"},
        {"similarity_fn_names": ["cosine", "dot", "euclidean", "manhattan"]},
        {"similarity_fn_names": ["manhattan"], "truncate_dim": 10},
    ],
)
def test_same_metrics_and_csv_as_sentence_transformers(mrpc_pairs, tmp_path, options):
    sentences1, sentences2, labels, vectors = mrpc_pairs
    model = FixedEmbeddingModel(vectors, dim=DIM)
    ours = BinaryClassificationEvaluator(sentences1, sentences2, labels, **options)
    theirs = STEvaluator(sentences1, sentences2, labels, **options)
    for steps in (100, 200):
        our_metrics = ours(model, output_path=str(tmp_path / "ours"), epoch=1, steps=steps)
        their_metrics = theirs(model, output_path=str(tmp_path / "theirs"), epoch=1, steps=steps)
        assert_same_metrics(our_metrics, their_metrics)
        assert ours.primary_metric == theirs.primary_metric
        assert our_metrics[ours.primary_metric] > 0.75
    assert_same_csv_files(str(tmp_path / "ours"), str(tmp_path / "theirs"))


def test_each_distinct_sentence_is_embedded_once(mrpc_pairs):
    sentences1, sentences2, labels, vectors = mrpc_pairs
    model = FixedEmbeddingModel(vectors, dim=DIM)
    BinaryClassificationEvaluator(sentences1 + sentences1, sentences2 + sentences2, labels + labels)(model)
    assert sorted(model.encoded_texts) == sorted(set(sentences1 + sentences2))


@pytest.mark.parametrize("high_score_more_similar", [True, False])
@pytest.mark.parametrize(
    "scores",
    [
        np.random.default_rng(1).standard_normal(200).astype(np.float32),
        np.round(np.random.default_rng(2).standard_normal(200), 1).astype(np.float32),  # many ties
        np.zeros(7, np.float32),  # one group: no threshold beats the start
        np.array([0.5, np.nextafter(np.float32(0.5), np.float32(1))], np.float32),  # the midpoint rounds up
    ],
)
def test_thresholds_equal_sentence_transformers_loops(scores, high_score_more_similar):
    labels = (np.random.default_rng(3).random(len(scores)) < 0.4).astype(int)
    labels[-1] = 1
    ours = find_best_acc_and_threshold(scores, labels, high_score_more_similar)
    theirs = STEvaluator.find_best_acc_and_threshold(scores, labels, high_score_more_similar)
    assert ours == theirs and type(ours[1]) is type(theirs[1])
    ours = find_best_f1_and_threshold(scores, labels, high_score_more_similar)
    assert ours == STEvaluator.find_best_f1_and_threshold(scores, labels, high_score_more_similar)


@pytest.mark.parametrize("seed", [4, 5])
def test_average_precision_and_mcc_equal_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    labels = (rng.random(300) < 0.3).astype(int)
    scores = np.round(rng.standard_normal(300) + labels, 1).astype(np.float32)  # with ties
    np.testing.assert_allclose(
        average_precision(labels, scores), sklearn.metrics.average_precision_score(labels, scores), atol=1e-12
    )
    for predictions in (scores > 0.5, np.ones(300, bool), np.zeros(300, bool)):
        np.testing.assert_allclose(
            matthews_corrcoef(labels, predictions),
            sklearn.metrics.matthews_corrcoef(labels, predictions),
            atol=1e-12,
        )


def test_bad_arguments_are_errors(mrpc_pairs):
    sentences1, sentences2, labels, _ = mrpc_pairs
    with pytest.raises(ValueError, match=r"labels must be 0 or 1; positions \[1\]"):
        BinaryClassificationEvaluator(sentences1[:3], sentences2[:3], [0, 2, 1])
    with pytest.raises(ValueError, match="same length, got 300, 300 and 299"):
        BinaryClassificationEvaluator(sentences1, sentences2, labels[:-1])
