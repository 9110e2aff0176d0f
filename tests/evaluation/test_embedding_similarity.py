"""EmbeddingSimilarityEvaluator against sentence-transformers' on equal embeddings (STS-B dev slice)."""

import numpy as np
import pytest
from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator as STEvaluator
from sentence_transformers.sentence_transformer.evaluation import SimilarityFunction

from jaxst.evaluation import EmbeddingSimilarityEvaluator
from tests.evaluation.compare import assert_same_csv_files, assert_same_metrics
from tests.evaluation.fixed_model import FixedEmbeddingModel, hashed_vector
from tests.shared_data import stsb

DIM = 16


@pytest.fixture(scope="module")
def sts_data():
    """200 STS-B dev pairs, and a model placing the second sentence nearer the first the higher the score."""
    rows = stsb("dev")[:200]
    sentences1 = [row["sentence1"] for row in rows]
    sentences2 = [row["sentence2"] for row in rows]
    scores = [float(row["score"]) for row in rows]
    rng = np.random.default_rng(0)
    vectors = {}
    for s1, s2, score in zip(sentences1, sentences2, scores, strict=True):
        vectors.setdefault(s1, hashed_vector(s1, DIM))
        vectors.setdefault(s2, vectors[s1] + (5.5 - score) * 0.3 * rng.standard_normal(DIM))
    return sentences1, sentences2, scores, vectors


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"name": "sts-dev"},
        {"name": "sts-dev", "main_similarity": SimilarityFunction.EUCLIDEAN},
        {"similarity_fn_names": ["cosine", "euclidean", "manhattan", "dot"], "name": "all"},
        {"main_similarity": "dot", "truncate_dim": 8},
        {"precision": "float32"},
        {"precision": "int8", "name": "q"},
        {"precision": "uint8", "similarity_fn_names": ["cosine", "euclidean"]},
        {"precision": "binary", "similarity_fn_names": ["dot", "manhattan", "euclidean"]},
        {"precision": "ubinary", "truncate_dim": 12, "main_similarity": "manhattan"},
    ],
)
@pytest.mark.parametrize("model_similarity", ["cosine", "dot"])
def test_same_metrics_and_csv_as_sentence_transformers(sts_data, tmp_path, options, model_similarity):
    sentences1, sentences2, scores, vectors = sts_data
    model = FixedEmbeddingModel(vectors, dim=DIM, similarity_fn_name=model_similarity)
    ours = EmbeddingSimilarityEvaluator(sentences1, sentences2, scores, **options)
    theirs = STEvaluator(sentences1, sentences2, scores, **options)
    for epoch, steps in [(0, 10), (1, -1)]:  # a second call appends a row
        our_metrics = ours(model, output_path=str(tmp_path / "ours"), epoch=epoch, steps=steps)
        their_metrics = theirs(model, output_path=str(tmp_path / "theirs"), epoch=epoch, steps=steps)
        assert_same_metrics(our_metrics, their_metrics)
        assert ours.primary_metric == theirs.primary_metric
        if not ours.primary_metric.endswith("dot"):  # the stand-in's distances follow the gold scores
            assert our_metrics[ours.primary_metric] > 0.5
    assert_same_csv_files(str(tmp_path / "ours"), str(tmp_path / "theirs"))


@pytest.mark.parametrize("precision", ["binary", "ubinary"])
def test_cosine_of_binary_embeddings(sts_data, precision):
    """0/1 vectors give many pairs of mathematically equal cosine. torch and XLA sum the products of a row
    in different orders, so float32 rounding splits some of those ties differently: Spearman, which ranks
    ties together, moves by up to ~1e-4; Pearson does not. (dot, euclidean and manhattan sums of 0/1
    values are exact, hence equal at 1e-6 above.)"""
    sentences1, sentences2, scores, vectors = sts_data
    model = FixedEmbeddingModel(vectors, dim=DIM)
    ours = EmbeddingSimilarityEvaluator(sentences1, sentences2, scores, precision=precision)(model)
    theirs = STEvaluator(sentences1, sentences2, scores, precision=precision)(model)
    np.testing.assert_allclose(ours["pearson_cosine"], theirs["pearson_cosine"], atol=1e-6)
    np.testing.assert_allclose(ours["spearman_cosine"], theirs["spearman_cosine"], atol=1e-4)


def test_from_input_examples(sts_data):
    sentences1, sentences2, scores, vectors = sts_data

    class Example:
        def __init__(self, texts, label):
            self.texts, self.label = texts, label

    examples = [Example([a, b], s) for a, b, s in zip(sentences1, sentences2, scores, strict=True)]
    model = FixedEmbeddingModel(vectors, dim=DIM)
    assert_same_metrics(
        EmbeddingSimilarityEvaluator.from_input_examples(examples)(model),
        EmbeddingSimilarityEvaluator(sentences1, sentences2, scores)(model),
        atol=0,
    )


def test_nan_scores_are_an_error_naming_their_positions(sts_data):
    sentences1, sentences2, scores, _ = sts_data
    scores = list(scores)
    scores[3] = scores[17] = float("nan")
    with pytest.raises(ValueError, match=r"scores contains NaN at positions \[3, 17\]"):
        EmbeddingSimilarityEvaluator(sentences1, sentences2, scores)


def test_bad_arguments_are_errors(sts_data):
    sentences1, sentences2, scores, _ = sts_data
    with pytest.raises(ValueError, match="must have the same length, got 200, 199 and 200"):
        EmbeddingSimilarityEvaluator(sentences1, sentences2[:-1], scores)
    with pytest.raises(ValueError, match="Unknown similarity function 'cosin'"):
        EmbeddingSimilarityEvaluator(sentences1, sentences2, scores, main_similarity="cosin")
    with pytest.raises(ValueError, match="precision='int4' is not supported"):
        EmbeddingSimilarityEvaluator(sentences1, sentences2, scores, precision="int4")
