"""semantic_search against sentence-transformers' semantic_search: same hits, same scores (1e-6)."""

import numpy as np
import pytest
import torch
from sentence_transformers import util as st_util

from jaxst import util
from jaxst.util.search import _merge_corpus_chunk


def random_embeddings(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def assert_same_hits(ours, theirs, atol: float = 1e-6) -> None:
    """Same scores rank by rank (atol), and the same corpus_id at every rank whose score is apart (> 2 atol)
    from its neighbours' (float32 rounding may swap near-ties)."""
    assert len(ours) == len(theirs)
    for query_ours, query_theirs in zip(ours, theirs, strict=True):
        scores = np.array([hit["score"] for hit in query_ours])
        np.testing.assert_allclose(scores, [hit["score"] for hit in query_theirs], atol=atol)
        gaps = np.abs(np.diff(scores))
        apart = np.ones(len(scores), dtype=bool)
        apart[1:] &= gaps > 2 * atol
        apart[:-1] &= gaps > 2 * atol
        ids_ours = np.array([hit["corpus_id"] for hit in query_ours])
        ids_theirs = np.array([hit["corpus_id"] for hit in query_theirs])
        np.testing.assert_array_equal(ids_ours[apart], ids_theirs[apart])


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"query_chunk_size": 7, "corpus_chunk_size": 90, "top_k": 25},
        {"corpus_chunk_size": 3, "top_k": 5},
        {"top_k": 2000},
        {"corpus_chunk_size": 128, "top_k": 700},
        {"query_chunk_size": 1, "top_k": 1},
    ],
)
def test_same_hits_as_sentence_transformers(options):
    queries, corpus = random_embeddings(37, seed=1), random_embeddings(1000, seed=2)
    ours = util.semantic_search(queries, corpus, **options)
    theirs = st_util.semantic_search(torch.from_numpy(queries), torch.from_numpy(corpus), **options)
    assert_same_hits(ours, theirs)
    assert len(ours[0]) == min(options.get("top_k", 10), len(corpus))


@pytest.mark.parametrize("score_function", [util.dot_score, util.manhattan_sim])
def test_other_score_functions(score_function):
    queries, corpus = random_embeddings(5, seed=3), random_embeddings(300, seed=4)
    ours = util.semantic_search(queries, corpus, corpus_chunk_size=64, score_function=score_function)
    st_function = getattr(st_util, score_function.__name__)
    theirs = st_util.semantic_search(
        torch.from_numpy(queries), torch.from_numpy(corpus), corpus_chunk_size=64, score_function=st_function
    )
    assert_same_hits(ours, theirs, atol=1e-4 if score_function is util.manhattan_sim else 1e-6)


def test_single_query_as_vector_and_corpus_smaller_than_top_k():
    query, corpus = random_embeddings(1, seed=5)[0], random_embeddings(4, seed=6)
    ours = util.semantic_search(query, corpus, top_k=10)
    theirs = st_util.semantic_search(torch.from_numpy(query), torch.from_numpy(corpus), top_k=10)
    assert len(ours) == 1 and len(ours[0]) == 4
    assert_same_hits(ours, theirs)


def test_accepts_torch_and_jax_inputs():
    queries, corpus = random_embeddings(3, seed=7), random_embeddings(20, seed=8)
    expected = util.semantic_search(queries, corpus)
    assert_same_hits(util.semantic_search(torch.from_numpy(queries), torch.from_numpy(corpus)), expected, 0)
    assert_same_hits(util.semantic_search(util.normalize(queries), corpus), expected)


def test_ties_are_broken_by_lower_corpus_id_whatever_the_chunks():
    """Equal scores rank the lower corpus_id first; sentence-transformers' order among ties is torch's."""
    base = random_embeddings(3, seed=9)
    corpus = np.concatenate([base, base, base, base])  # rows i, i+3, i+6, i+9 are equal
    query = base[1]
    for corpus_chunk_size in (1, 2, 5, 12):
        hits = util.semantic_search(query, corpus, top_k=6, corpus_chunk_size=corpus_chunk_size)[0]
        assert [hit["corpus_id"] for hit in hits[:4]] == [1, 4, 7, 10]
        theirs = st_util.semantic_search(torch.from_numpy(query), torch.from_numpy(corpus), top_k=6)[0]
        assert sorted(hit["corpus_id"] for hit in theirs[:4]) == [1, 4, 7, 10]
        np.testing.assert_allclose([h["score"] for h in hits], [h["score"] for h in theirs], atol=1e-6)


def test_compiles_once_per_query_chunk_shape():
    corpus = random_embeddings(500, seed=10)
    _merge_corpus_chunk.clear_cache()
    for n_queries in (70, 90, 100, 230, 1000):  # every query chunk is 100 rows (the last one padded)
        util.semantic_search(random_embeddings(n_queries, seed=n_queries), corpus, corpus_chunk_size=128)
    assert _merge_corpus_chunk._cache_size() == 1
    util.semantic_search(random_embeddings(3, seed=11), corpus, corpus_chunk_size=128)  # chunk of 4 rows
    assert _merge_corpus_chunk._cache_size() == 2


def test_empty_corpus_gives_empty_hit_lists_as_sentence_transformers():
    queries = random_embeddings(2, seed=12)
    assert util.semantic_search(queries, np.zeros((0, 16), np.float32)) == [[], []]
    assert util.semantic_search(queries, []) == [[], []]
    theirs = st_util.semantic_search(torch.from_numpy(queries), torch.zeros(0, 16))
    assert theirs == [[], []]


def test_no_queries_give_no_results():
    assert util.semantic_search(np.zeros((0, 16), np.float32), random_embeddings(5)) == []


def test_different_dimensions_are_an_error_naming_both():
    with pytest.raises(ValueError, match="dimension 16 but corpus embeddings have dimension 8"):
        util.semantic_search(random_embeddings(2), random_embeddings(5, dim=8))


def test_bad_shapes_and_options_are_errors():
    with pytest.raises(ValueError, match=r"corpus_embeddings must be a \[N, D\] matrix"):
        util.semantic_search(random_embeddings(2), np.zeros((2, 3, 16)))
    with pytest.raises(ValueError, match="top_k must be non-negative"):
        util.semantic_search(random_embeddings(2), random_embeddings(5), top_k=-1)
    with pytest.raises(ValueError, match="query_chunk_size and corpus_chunk_size must be positive"):
        util.semantic_search(random_embeddings(2), random_embeddings(5), corpus_chunk_size=0)
