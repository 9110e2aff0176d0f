"""TripletEvaluator against sentence-transformers' on equal embeddings (SNLI triplets slice)."""

import numpy as np
import pytest
from sentence_transformers.sentence_transformer.evaluation import TripletEvaluator as STEvaluator

from jaxst.evaluation import TripletEvaluator
from tests.evaluation.compare import assert_same_csv_files, assert_same_metrics
from tests.evaluation.fixed_model import FixedEmbeddingModel, hashed_vector
from tests.shared_data import read_tsv

DIM = 16


@pytest.fixture(scope="module")
def triplets():
    """200 SNLI dev triplets; positives a little closer to their anchor than negatives, with overlap."""
    rows = read_tsv("pairs/snli_triplets.tsv.gz", "dev")[:200]
    anchors, positives, negatives = ([row[key] for row in rows] for key in ("anchor", "positive", "negative"))
    rng = np.random.default_rng(0)
    vectors = {}
    for anchor, positive, negative in zip(anchors, positives, negatives, strict=True):
        vectors.setdefault(anchor, hashed_vector(anchor, DIM))
        vectors.setdefault(positive, vectors[anchor] + 0.8 * rng.standard_normal(DIM))
        vectors.setdefault(negative, vectors[anchor] + 1.1 * rng.standard_normal(DIM))
    return anchors, positives, negatives, vectors


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"name": "snli-dev"},
        {"main_similarity_function": "euclidean", "margin": 0.2},
        {"similarity_fn_names": ["cosine", "dot", "euclidean", "manhattan"], "margin": {"cosine": 0.05}},
        {"name": "cut", "truncate_dim": 8},
    ],
)
def test_same_metrics_and_csv_as_sentence_transformers(triplets, tmp_path, options):
    anchors, positives, negatives, vectors = triplets
    model = FixedEmbeddingModel(vectors, dim=DIM)
    ours = TripletEvaluator(anchors, positives, negatives, **options)
    theirs = STEvaluator(anchors, positives, negatives, **options)
    for epoch, steps in [(0, 5), (0, -1)]:
        our_metrics = ours(model, output_path=str(tmp_path / "ours"), epoch=epoch, steps=steps)
        their_metrics = theirs(model, output_path=str(tmp_path / "theirs"), epoch=epoch, steps=steps)
        assert_same_metrics(our_metrics, their_metrics)
        assert ours.primary_metric == theirs.primary_metric
        assert 0.6 < our_metrics[ours.primary_metric] < 1.0
    assert_same_csv_files(str(tmp_path / "ours"), str(tmp_path / "theirs"))


def test_anchors_are_queries_and_the_others_documents(triplets):
    anchors, positives, negatives, vectors = triplets

    class PromptedModel(FixedEmbeddingModel):
        def encode_query(self, sentences, **kwargs):
            return self.encode(sentences, **{**kwargs, "prompt": "query: "})

    model = PromptedModel(vectors, dim=DIM)
    TripletEvaluator(anchors[:3], positives[:3], negatives[:3])(model)
    assert model.encoded_texts[:3] == [f"query: {anchor}" for anchor in anchors[:3]]
    assert model.encoded_texts[3:] == positives[:3] + negatives[:3]


def test_bad_arguments_are_errors(triplets):
    anchors, positives, negatives, _ = triplets
    with pytest.raises(ValueError, match="same length, got 200, 200 and 10"):
        TripletEvaluator(anchors, positives, negatives[:10])
    with pytest.raises(ValueError, match=r"`margin` got unexpected keys \['cos'\]"):
        TripletEvaluator(anchors, positives, negatives, margin={"cos": 0.1})
    with pytest.raises(ValueError, match="Unknown similarity function 'l2'"):
        TripletEvaluator(anchors, positives, negatives, similarity_fn_names=["l2"])


def test_deprecated_main_distance_function_as_sentence_transformers(triplets, caplog):
    anchors, positives, negatives, vectors = triplets
    model = FixedEmbeddingModel(vectors, dim=DIM)
    ours = TripletEvaluator(anchors, positives, negatives, main_distance_function="manhattan")
    theirs = STEvaluator(anchors, positives, negatives, main_distance_function="manhattan")
    assert "'main_distance_function' parameter is deprecated" in caplog.text
    assert_same_metrics(ours(model), theirs(model))
    assert ours.primary_metric == theirs.primary_metric == "manhattan_accuracy"
