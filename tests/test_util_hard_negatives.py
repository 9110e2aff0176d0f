"""mine_hard_negatives against sentence-transformers' mine_hard_negatives, on the same fixed embeddings."""

import random

import numpy as np
import pytest
from datasets import Dataset
from sentence_transformers.util import mine_hard_negatives as st_mine_hard_negatives

from jaxst.util import mine_hard_negatives
from tests.evaluation.fixed_model import FixedEmbeddingModel, hashed_vector
from tests.shared_data import read_tsv

DIM = 16


@pytest.fixture(scope="module")
def pairs_and_model():
    """40 SNLI (anchor, entailed) pairs, the first 5 anchors with a second positive; positives lie near
    their anchor, so the nearest other texts are hard negatives of graded difficulty."""
    rows = read_tsv("pairs/snli_triplets.tsv.gz", "dev")[:40]
    anchors = [row["anchor"] for row in rows] + [row["anchor"] for row in rows[:5]]
    positives = [row["positive"] for row in rows] + [row["negative"] for row in rows[:5]]
    rng = np.random.default_rng(0)
    vectors = {}
    for anchor, positive in zip(anchors, positives, strict=True):
        vectors.setdefault(anchor, hashed_vector(anchor, DIM))
        vectors[positive] = vectors[anchor] + rng.uniform(0.3, 1.2) * rng.standard_normal(DIM)
    dataset = Dataset.from_dict({"premise": anchors, "hypothesis": positives})
    corpus = [row["negative"] for row in rows[5:]]
    return dataset, corpus, FixedEmbeddingModel(vectors, dim=DIM)


def assert_same_dataset(ours: Dataset, theirs: Dataset) -> None:
    assert ours.column_names == theirs.column_names
    ours, theirs = ours.to_dict(), theirs.to_dict()
    for column in theirs:
        if column == "scores":
            np.testing.assert_allclose(ours[column], theirs[column], atol=1e-6)
        else:
            assert ours[column] == theirs[column], column


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"num_negatives": 5, "range_min": 2, "output_scores": True},
        {"use_corpus": True, "absolute_margin": 0.1, "output_scores": True},
        {"use_corpus": True, "relative_margin": 0.05, "max_score": 0.8, "min_score": 0.0},
        {"output_format": "n-tuple", "num_negatives": 4, "output_scores": True, "relative_margin": 0.1},
        {"output_format": "n-tuple", "num_negatives": 2, "max_score": 0.3, "range_max": 6},  # rows dropped
        {"num_negatives": 4, "max_score": 0.3, "range_max": 6, "output_scores": True},  # short rows
        {"include_positives": True, "num_negatives": 6, "output_scores": True},
        {"sampling_strategy": "random", "range_max": 15, "num_negatives": 4, "output_scores": True},
        {"anchor_column_name": "hypothesis", "positive_column_name": "premise", "range_max": 8},
    ],
)
def test_same_rows_as_sentence_transformers(pairs_and_model, options):
    dataset, corpus, model = pairs_and_model
    options = dict(options)
    if options.pop("use_corpus", False):
        options["corpus"] = corpus
    random.seed(0)
    ours = mine_hard_negatives(dataset, model, verbose=False, **options)
    random.seed(0)
    theirs = st_mine_hard_negatives(dataset, model, verbose=False, **options)
    assert len(theirs) > 0
    assert_same_dataset(ours, theirs)


def test_dict_input_gives_dict_output(pairs_and_model):
    dataset, _, model = pairs_and_model
    ours = mine_hard_negatives(dataset.to_dict(), model, num_negatives=2, verbose=False)
    theirs = st_mine_hard_negatives(dataset, model, num_negatives=2, verbose=False)
    assert isinstance(ours, dict)
    assert ours == theirs.to_dict()


def test_prompts_reach_the_encoder(pairs_and_model):
    dataset, _, model = pairs_and_model
    mine_hard_negatives(dataset, model, query_prompt="query: ", corpus_prompt="passage: ", verbose=False)
    assert any(text.startswith("query: ") for text in model.encoded_texts)
    assert any(text.startswith("passage: ") for text in model.encoded_texts)


def test_bad_options_are_errors_naming_them(pairs_and_model):
    dataset, _, model = pairs_and_model
    with pytest.raises(KeyError, match="anchor_column_name='question' is not a column"):
        mine_hard_negatives(dataset, model, anchor_column_name="question")
    with pytest.raises(ValueError, match="output_format='labeled-pair' is not supported"):
        mine_hard_negatives(dataset, model, output_format="labeled-pair")
    with pytest.raises(ValueError, match="num_negatives must be at least 1"):
        mine_hard_negatives(dataset, model, num_negatives=0)
    with pytest.raises(ValueError, match="range_min must be smaller than range_max"):
        mine_hard_negatives(dataset, model, range_min=5, range_max=5)
    with pytest.raises(ValueError, match="Cannot mine 4 negatives per query"):
        mine_hard_negatives(dataset, model, range_max=3, num_negatives=4)
    with pytest.raises(ValueError, match="The dataset is empty"):
        mine_hard_negatives({"a": [], "b": []}, model)
