"""paraphrase_mining, community_detection and the similarity re-exports against sentence-transformers."""

import numpy as np
import pytest
import torch
from sentence_transformers import util as st_util

from jaxst import util
from tests.evaluation.fixed_model import FixedEmbeddingModel


def clustered_embeddings(sizes: list[int], dim: int = 16, spread: float = 0.3, seed: int = 0) -> np.ndarray:
    """Rows around one random centre per cluster, cluster after cluster, then shuffled."""
    rng = np.random.default_rng(seed)
    rows = [rng.standard_normal(dim) + spread * rng.standard_normal((size, dim)) for size in sizes]
    embeddings = np.concatenate(rows).astype(np.float32)
    return embeddings[rng.permutation(len(embeddings))]


def assert_same_pairs(ours, theirs, atol: float = 1e-6) -> None:
    assert len(ours) == len(theirs)
    np.testing.assert_allclose([p[0] for p in ours], [p[0] for p in theirs], atol=atol)
    assert [tuple(p[1:]) for p in ours] == [tuple(p[1:]) for p in theirs]


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"top_k": 3, "query_chunk_size": 7, "corpus_chunk_size": 11},
        {"top_k": 5, "max_pairs": 40},  # the heap evicts pairs once full
        {"top_k": 500},
    ],
)
def test_paraphrase_mining_embeddings_as_sentence_transformers(options):
    embeddings = np.random.default_rng(1).standard_normal((60, 16)).astype(np.float32)
    ours = util.paraphrase_mining_embeddings(embeddings, **options)
    theirs = st_util.paraphrase_mining_embeddings(torch.from_numpy(embeddings), **options)
    assert_same_pairs(ours, theirs)


def test_paraphrase_mining_encodes_with_the_model():
    sentences = [f"sentence number {i}" for i in range(40)]
    model = FixedEmbeddingModel()
    ours = util.paraphrase_mining(model, sentences, top_k=4, truncate_dim=10)
    theirs = st_util.paraphrase_mining(model, sentences, top_k=4, truncate_dim=10)
    assert_same_pairs(ours, theirs)


@pytest.mark.parametrize(
    ("threshold", "min_community_size", "batch_size"),
    [(0.75, 10, 1024), (0.75, 5, 7), (0.9, 3, 16), (0.5, 2, 50)],
)
def test_community_detection_as_sentence_transformers(threshold, min_community_size, batch_size):
    embeddings = clustered_embeddings([30, 12, 6, 3, 1], seed=2)
    ours = util.community_detection(embeddings, threshold, min_community_size, batch_size)
    theirs = st_util.community_detection(
        torch.from_numpy(embeddings), threshold, min_community_size, batch_size
    )
    assert ours == theirs
    assert ours, "the clusters should give at least one community"


def test_community_detection_grows_past_the_initial_candidate_count():
    """A community of 120 rows exceeds the first top-k of max(2 * 10, 50) = 50 candidates."""
    embeddings = clustered_embeddings([120, 20], spread=0.1, seed=3)
    ours = util.community_detection(embeddings, min_community_size=10)
    assert ours == st_util.community_detection(torch.from_numpy(embeddings), min_community_size=10)
    assert sorted(len(community) for community in ours) == [20, 120]


def test_community_detection_of_too_few_rows_is_empty():
    assert util.community_detection(np.zeros((0, 4), np.float32)) == []
    assert util.community_detection(clustered_embeddings([5]), min_community_size=10) == []


@pytest.mark.parametrize(
    "name",
    [
        "cos_sim",
        "dot_score",
        "euclidean_sim",
        "manhattan_sim",
        "pairwise_cos_sim",
        "pairwise_dot_score",
        "pairwise_euclidean_sim",
        "pairwise_manhattan_sim",
    ],
)
def test_similarity_functions_match_sentence_transformers(name):
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((2, 6, 16)).astype(np.float32)
    ours = np.asarray(getattr(util, name)(a, b))
    theirs = getattr(st_util, name)(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
