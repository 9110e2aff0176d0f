"""Exact top-k search of query embeddings against a corpus, jit-compiled and chunked.

One compiled function scores one query chunk against one corpus chunk and merges the chunk's top-k into
the running top-k of that query chunk. Shapes are static:

- queries are cut on the host into chunks of `query_chunk` rows (the last one zero-padded; padded rows are
  dropped from the result), where `query_chunk = min(query_chunk_size, next power of two >= n_queries)`, so
  a search compiles once per power of two below `query_chunk_size`, not once per number of queries;
- the corpus stays one device array and each corpus chunk is a window of `corpus_chunk =
  min(corpus_chunk_size, n_corpus)` rows read with a clamped dynamic slice: the last window is shifted back
  so that it fits, and its rows that belong to the previous chunk are masked with -inf. No copy of the
  corpus is padded.

Peak memory beyond the inputs is a device copy of the corpus and one `[query_chunk, corpus_chunk]` float32
score matrix plus its top-k. For `cos_sim`, the corpus copy and each query chunk are L2-normalized once
and scored with `dot_score`, the same arithmetic as `cos_sim` without renormalizing every chunk.

Ties are broken by the lower corpus index (`jax.lax.top_k` keeps the first of equal values, and the running
top-k, which holds lower indices, comes first in each merge), so the hits do not depend on the chunk sizes.
sentence-transformers leaves tie order to `torch.topk` and its heap (which keeps the higher index when it
evicts); scores and untied hits are the same.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxst.similarity import cos_sim, dot_score, normalize

ScoreFunction = Callable[[jax.Array, jax.Array], jax.Array]


def as_embedding_matrix(embeddings, argument: str) -> np.ndarray:
    """`embeddings` (numpy, JAX, torch on CPU or nested lists) as a float32 [N, D] numpy array.

    A 1-D input is one row; an empty input of any rank is an empty [0, 0] matrix.
    """
    matrix = np.asarray(embeddings, dtype=np.float32)
    if matrix.size == 0 and matrix.ndim <= 1:
        return matrix.reshape(0, 0)
    if matrix.ndim == 1:
        return matrix[None, :]
    if matrix.ndim != 2:
        raise ValueError(f"{argument} must be a [N, D] matrix of embeddings, got shape {matrix.shape}.")
    return matrix


# Donating the corpus lets its normalized copy reuse its buffer (the search's own copy of the input).
_normalize_in_place = jax.jit(normalize, donate_argnums=0)


@functools.partial(jax.jit, static_argnames=("score_function", "corpus_chunk"))
def _merge_corpus_chunk(
    best_values: jax.Array,
    best_ids: jax.Array,
    query_chunk: jax.Array,
    corpus: jax.Array,
    corpus_start: jax.Array,
    *,
    score_function: ScoreFunction,
    corpus_chunk: int,
) -> tuple[jax.Array, jax.Array]:
    """Merge the top-k of query_chunk [Q, D] against corpus[corpus_start : corpus_start + corpus_chunk].

    best_values, best_ids [Q, k]: the running top-k, sorted by score, lower ids first among ties.
    """
    k = best_values.shape[1]
    window_start = jnp.minimum(corpus_start, corpus.shape[0] - corpus_chunk)
    window = jax.lax.dynamic_slice_in_dim(corpus, window_start, corpus_chunk)
    window_ids = window_start + jnp.arange(corpus_chunk, dtype=jnp.int32)
    scores = score_function(query_chunk, window).astype(jnp.float32)
    scores = jnp.where(window_ids[None, :] >= corpus_start, scores, -jnp.inf)
    chunk_values, chunk_positions = jax.lax.top_k(scores, min(k, corpus_chunk))
    values = jnp.concatenate([best_values, chunk_values], axis=1)
    ids = jnp.concatenate([best_ids, window_ids[chunk_positions]], axis=1)
    top_values, top_positions = jax.lax.top_k(values, k)
    return top_values, jnp.take_along_axis(ids, top_positions, axis=1)


def top_k_search(
    query_embeddings: np.ndarray,
    corpus_embeddings: np.ndarray,
    top_k: int,
    *,
    query_chunk_size: int = 100,
    corpus_chunk_size: int = 500000,
    score_function: ScoreFunction = cos_sim,
) -> tuple[np.ndarray, np.ndarray]:
    """The `k = min(top_k, n_corpus)` best corpus rows of every query.

    Args:
        query_embeddings: [Nq, D] float32 matrix.
        corpus_embeddings: [Nc, D] float32 matrix.
        top_k: number of hits per query.
        query_chunk_size: queries scored at once.
        corpus_chunk_size: corpus rows scored at once.
        score_function: a JAX-traceable `(queries [Q, D], corpus [C, D]) -> scores [Q, C]`, higher is closer.

    Returns:
        scores [Nq, k] float32 by decreasing score; corpus_ids [Nq, k] int32 (lower id first among ties).
    """
    if top_k < 0:
        raise ValueError(f"top_k must be non-negative, got top_k={top_k}.")
    if query_chunk_size < 1 or corpus_chunk_size < 1:
        raise ValueError(
            f"query_chunk_size and corpus_chunk_size must be positive, got {query_chunk_size} and "
            f"{corpus_chunk_size}."
        )
    n_queries, n_corpus = len(query_embeddings), len(corpus_embeddings)
    if n_queries and n_corpus and query_embeddings.shape[1] != corpus_embeddings.shape[1]:
        raise ValueError(
            f"Query embeddings have dimension {query_embeddings.shape[1]} but corpus embeddings have "
            f"dimension {corpus_embeddings.shape[1]}."
        )
    k = min(top_k, n_corpus)
    if n_queries == 0 or k == 0:
        return np.zeros((n_queries, k), np.float32), np.zeros((n_queries, k), np.int32)

    query_chunk = min(query_chunk_size, 1 << (n_queries - 1).bit_length())
    corpus_chunk = min(corpus_chunk_size, n_corpus)
    corpus = jnp.asarray(corpus_embeddings)
    normalize_queries = score_function is cos_sim
    if normalize_queries:  # cos_sim would renormalize each corpus chunk at every call: do it once
        corpus, score_function = _normalize_in_place(corpus), dot_score
    merge = functools.partial(_merge_corpus_chunk, score_function=score_function, corpus_chunk=corpus_chunk)
    chunk_results = []
    for query_start in range(0, n_queries, query_chunk):
        rows = query_embeddings[query_start : query_start + query_chunk]
        padded = np.zeros((query_chunk, rows.shape[1]), np.float32)
        padded[: len(rows)] = rows
        queries = normalize(jnp.asarray(padded)) if normalize_queries else jnp.asarray(padded)
        values = jnp.full((query_chunk, k), -jnp.inf, jnp.float32)
        ids = jnp.full((query_chunk, k), -1, jnp.int32)
        for corpus_start in range(0, n_corpus, corpus_chunk):
            values, ids = merge(values, ids, queries, corpus, jnp.int32(corpus_start))
        chunk_results.append((values, ids, len(rows)))
    scores = np.concatenate([np.asarray(values)[:n] for values, _, n in chunk_results])
    corpus_ids = np.concatenate([np.asarray(ids)[:n] for _, ids, n in chunk_results])
    return scores, corpus_ids


def semantic_search(
    query_embeddings,
    corpus_embeddings,
    query_chunk_size: int = 100,
    corpus_chunk_size: int = 500000,
    top_k: int = 10,
    score_function: ScoreFunction = cos_sim,
) -> list[list[dict[str, int | float]]]:
    """Cosine-similarity (or `score_function`) search of queries against a corpus, as sentence-transformers.

    Args:
        query_embeddings: [Nq, D] (or one [D] query) numpy, JAX or CPU torch array.
        corpus_embeddings: [Nc, D] array; an empty corpus gives an empty hit list per query.
        query_chunk_size: queries scored at once (memory: query_chunk_size x corpus_chunk_size floats).
        corpus_chunk_size: corpus rows scored at once.
        top_k: hits per query; more than the corpus size returns the whole corpus, ranked.
        score_function: JAX-traceable `(a [N, D], b [M, D]) -> [N, M]`, e.g. `cos_sim` or `dot_score`.

    Returns:
        One list per query of `{"corpus_id": int, "score": float}`, by decreasing score; ties by lower
        corpus_id (see the module docstring).
    """
    queries = as_embedding_matrix(query_embeddings, "query_embeddings")
    corpus = as_embedding_matrix(corpus_embeddings, "corpus_embeddings")
    scores, corpus_ids = top_k_search(
        queries,
        corpus,
        top_k,
        query_chunk_size=query_chunk_size,
        corpus_chunk_size=corpus_chunk_size,
        score_function=score_function,
    )
    return [
        [
            {"corpus_id": corpus_id, "score": score}
            for corpus_id, score in zip(row_ids, row_scores, strict=True)
        ]
        for row_ids, row_scores in zip(corpus_ids.tolist(), scores.tolist(), strict=True)
    ]
