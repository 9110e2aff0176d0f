"""Paraphrase mining and community detection over embeddings, with sentence-transformers' results.

Both use jit-compiled top-k (`jaxst.util.search`) on chunks of static shape; the bookkeeping on the host
follows sentence-transformers step for step. Ties among equal scores are broken by the lower index, where
sentence-transformers leaves them to `torch.topk`.
"""

from __future__ import annotations

import functools
import heapq
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxst.similarity import cos_sim, normalize
from jaxst.util.encoding import encode_texts
from jaxst.util.search import ScoreFunction, as_embedding_matrix, top_k_search


def paraphrase_mining(
    model,
    sentences: Sequence[str],
    show_progress_bar: bool = False,
    batch_size: int = 32,
    query_chunk_size: int = 5000,
    corpus_chunk_size: int = 100000,
    max_pairs: int = 500000,
    top_k: int = 100,
    score_function: ScoreFunction = cos_sim,
    truncate_dim: int | None = None,
    prompt_name: str | None = None,
    prompt: str | None = None,
) -> list[list[float | int]]:
    """Encode `sentences` with `model` and return the most similar pairs (`paraphrase_mining_embeddings`)."""
    embeddings = encode_texts(
        model,
        sentences,
        batch_size=batch_size,
        show_progress_bar=show_progress_bar,
        truncate_dim=truncate_dim,
        prompt_name=prompt_name,
        prompt=prompt,
    )
    return paraphrase_mining_embeddings(
        embeddings,
        query_chunk_size=query_chunk_size,
        corpus_chunk_size=corpus_chunk_size,
        max_pairs=max_pairs,
        top_k=top_k,
        score_function=score_function,
    )


def paraphrase_mining_embeddings(
    embeddings,
    query_chunk_size: int = 5000,
    corpus_chunk_size: int = 100000,
    max_pairs: int = 500000,
    top_k: int = 100,
    score_function: ScoreFunction = cos_sim,
) -> list[list[float | int]]:
    """The `max_pairs` highest-scoring pairs `[score, i, j]` (i < j), each row taking its `top_k` neighbours.

    Args:
        embeddings: [N, D] array.
        query_chunk_size: rows scored at once.
        corpus_chunk_size: columns scored at once.
        max_pairs: most pairs returned.
        top_k: neighbours kept per row (itself excluded).
        score_function: JAX-traceable, assumed symmetric: only one direction of each pair is kept.

    Returns:
        `[score, i, j]` lists by decreasing score.
    """
    matrix = as_embedding_matrix(embeddings, "embeddings")
    scores, neighbour_ids = top_k_search(
        matrix,
        matrix,
        top_k + 1,
        query_chunk_size=query_chunk_size,
        corpus_chunk_size=corpus_chunk_size,
        score_function=score_function,
    )
    pairs: list[tuple[float, int, int]] = []  # min-heap of (score, i, j), at most max_pairs entries
    queued: set[tuple[int, int]] = set()
    min_score = float("-inf")
    for i, (row_ids, row_scores) in enumerate(zip(neighbour_ids.tolist(), scores.tolist(), strict=True)):
        neighbours = [(j, score) for j, score in zip(row_ids, row_scores, strict=True) if j != i][:top_k]
        for j, score in neighbours:
            pair = (min(i, j), max(i, j))
            if score <= min_score or pair in queued:
                continue
            queued.add(pair)
            if len(pairs) < max_pairs:
                heapq.heappush(pairs, (score, *pair))
            else:
                evicted = heapq.heappushpop(pairs, (score, *pair))
                queued.discard(evicted[1:])
                min_score = evicted[0]
    return sorted(([score, i, j] for score, i, j in pairs), key=lambda pair: pair[0], reverse=True)


@functools.partial(jax.jit, static_argnames=("batch", "k"))
def _neighbours_above_threshold(
    normalized: jax.Array, start: jax.Array, threshold: jax.Array, *, batch: int, k: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """For rows [start', start' + batch) (start' = start clamped to fit): count of scores >= threshold,
    and the k best column ids. Returns (window_start, counts [batch], ids [batch, k])."""
    window_start = jnp.minimum(start, normalized.shape[0] - batch)
    rows = jax.lax.dynamic_slice_in_dim(normalized, window_start, batch)
    scores = rows @ normalized.T
    counts = jnp.sum(scores >= threshold, axis=1)
    return window_start, counts, jax.lax.top_k(scores, k)[1]


def community_detection(
    embeddings,
    threshold: float = 0.75,
    min_community_size: int = 10,
    batch_size: int = 1024,
    show_progress_bar: bool = False,
) -> list[list[int]]:
    """Fast community detection (sentence-transformers' algorithm).

    Every row with at least `min_community_size` rows at cosine similarity >= `threshold` (itself
    included) is a candidate community: those rows by decreasing similarity. Candidates are taken largest
    first; each keeps its rows not yet claimed, and is kept if they still number `min_community_size`.

    Args:
        embeddings: [N, D] array.
        threshold: cosine similarity at or above which two rows are neighbours.
        min_community_size: smallest community returned.
        batch_size: rows scored at once (memory: batch_size x N floats).
        show_progress_bar: accepted for sentence-transformers compatibility; no bar is shown.

    Returns:
        Communities by decreasing size, each a list of row indices whose first entry is its centre.
    """
    del show_progress_bar
    matrix = as_embedding_matrix(embeddings, "embeddings")
    n = len(matrix)
    if n == 0 or n < min_community_size:
        return []
    normalized = normalize(jnp.asarray(matrix))
    batch = min(batch_size, n)
    k = min(max(2 * min_community_size, 50), n)
    threshold = jnp.float32(threshold)
    candidates = []
    for start in range(0, n, batch):
        window_start, counts, ids = _neighbours_above_threshold(
            normalized, start, threshold, batch=batch, k=k
        )
        while int(counts.max()) > k:
            k = min(2 * k, n)
            window_start, counts, ids = _neighbours_above_threshold(
                normalized, start, threshold, batch=batch, k=k
            )
        offset = start - int(window_start)
        counts, ids = np.asarray(counts)[offset:], np.asarray(ids)[offset:]
        for row in np.flatnonzero(counts >= min_community_size):
            candidates.append((start + int(row), ids[row, : counts[row]]))

    candidates.sort(key=lambda candidate: len(candidate[1]), reverse=True)
    claimed = np.zeros(n, dtype=bool)
    communities = []
    for centre, members in candidates:
        if claimed[centre]:
            continue
        unclaimed = members[~claimed[members]]
        if len(unclaimed) >= min_community_size:
            community = [centre] + unclaimed[unclaimed != centre].tolist()
            communities.append(community)
            claimed[community] = True
    return sorted(communities, key=len, reverse=True)
