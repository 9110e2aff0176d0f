"""Hard-negative mining for (anchor, positive) pairs, as sentence-transformers' `mine_hard_negatives`.

Implemented: range_min / range_max, max_score / min_score, absolute_margin / relative_margin,
num_negatives, the "top" and "random" sampling strategies (random draws with Python's `random` module in
the same order as sentence-transformers, so a seeded run samples the same negatives), query / corpus
prompts, include_positives, and the "triplet" and "n-tuple" output formats with or without scores.

Not implemented (an error names them where they are options): the "labeled-pair" and "labeled-list"
formats, CrossEncoder rescoring, FAISS, multi-process encoding and the embedding cache.

Differences from sentence-transformers:
- a named anchor / positive column that the dataset lacks is an error (sentence-transformers silently
  falls back to the first / second column);
- candidates of equal score are ranked by the lower corpus index (sentence-transformers: `torch.topk`);
- `verbose` prints the counts and the skipped candidates, not the score-statistics table.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Literal

import jax.numpy as jnp
import numpy as np

from jaxst.similarity import PAIRWISE_SIMILARITY_FUNCTIONS, SIMILARITY_FUNCTIONS
from jaxst.util.encoding import encode_texts
from jaxst.util.search import top_k_search

OUTPUT_FORMATS = ("triplet", "n-tuple")


def _columns(dataset) -> list[str]:
    return list(dataset.column_names) if hasattr(dataset, "column_names") else list(dataset.keys())


def _column(columns: list[str], name: str | None, position: int, argument: str) -> str:
    """`name`, or the column at `position` when None; an error when the dataset lacks it."""
    if name is None:
        if len(columns) <= position:
            raise ValueError(
                f"The dataset needs at least two columns to choose {argument}; it has {columns}."
            )
        return columns[position]
    if name not in columns:
        raise KeyError(f"{argument}={name!r} is not a column of the dataset; its columns are {columns}.")
    return name


def _check_options(
    output_format: str, sampling_strategy: str, num_negatives: int, range_min: int, range_max: int
) -> None:
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(
            f"output_format={output_format!r} is not supported; jaxst implements {OUTPUT_FORMATS}."
        )
    if sampling_strategy not in ("top", "random"):
        raise ValueError(f"sampling_strategy must be 'top' or 'random', got {sampling_strategy!r}.")
    if range_min < 0:
        raise ValueError(f"range_min must be non-negative, got range_min={range_min}.")
    if range_min >= range_max:
        raise ValueError(
            f"range_min must be smaller than range_max, got range_min={range_min} and range_max={range_max}."
        )
    if num_negatives > range_max - range_min:
        raise ValueError(
            f"Cannot mine {num_negatives} negatives per query: only {range_max - range_min} candidates "
            f"remain after skipping the first range_min={range_min} of range_max={range_max}."
        )


def _discard(scores: np.ndarray, removed: np.ndarray, reason: str, skipped: dict[str, int]) -> None:
    """Set `scores[removed]` to -inf, counting the removals under `reason`."""
    scores[removed] = -np.inf
    skipped[reason] = int(removed.sum())


def mine_hard_negatives(
    dataset: Mapping[str, Sequence[str]],
    model,
    anchor_column_name: str | None = None,
    positive_column_name: str | None = None,
    corpus: Sequence[str] | None = None,
    range_min: int = 0,
    range_max: int | None = None,
    max_score: float | None = None,
    min_score: float | None = None,
    absolute_margin: float | None = None,
    relative_margin: float | None = None,
    num_negatives: int = 3,
    sampling_strategy: Literal["random", "top"] = "top",
    query_prompt_name: str | None = None,
    query_prompt: str | None = None,
    corpus_prompt_name: str | None = None,
    corpus_prompt: str | None = None,
    include_positives: bool = False,
    output_format: Literal["triplet", "n-tuple"] = "triplet",
    output_scores: bool = False,
    batch_size: int = 32,
    faiss_batch_size: int = 16384,
    verbose: bool = True,
):
    """Add hard negatives to (anchor, positive) pairs.

    Every unique anchor is searched (model similarity on normalized embeddings) against the corpus: the
    given `corpus` plus the positives, deduplicated. Of the `range_max` best candidates, the anchor's own
    positives (unless `include_positives`) and those failing the score / margin filters are discarded,
    the first `range_min` are skipped and `num_negatives` are taken (the best, or at random).
    A candidate is discarded when, with `p` the anchor's lowest positive score:
    `s + absolute_margin > p`, `s > p - |p| * relative_margin`, `s > max_score` or `s < min_score`.

    Args:
        dataset: a `datasets.Dataset` or a mapping of column name to a list of texts.
        model: a SentenceTransformer (encode and similarity_fn_name).
        anchor_column_name, positive_column_name: default to the first and second columns.
        corpus: extra candidate texts.
        range_min, range_max: candidate ranks considered; range_max defaults to
            `range_min + num_negatives (x10 with a margin or max_score) + most positives of an anchor`.
        max_score, min_score, absolute_margin, relative_margin: candidate filters (see above).
        num_negatives: negatives per anchor.
        sampling_strategy: "top" or "random".
        query_prompt_name, query_prompt, corpus_prompt_name, corpus_prompt: prompts for encoding.
        include_positives: keep positives among the candidates (implies output_format="n-tuple").
        output_format: "triplet" (one row per anchor, positive, negative) or "n-tuple" (anchor, positive,
            negative_1 ... negative_n; rows without num_negatives negatives are dropped).
        output_scores: add a "scores" column: [positive score, negative score(s)].
        batch_size: encoding batch size.
        faiss_batch_size: queries scored at once in the search (named as in sentence-transformers).
        verbose: print the counts.

    Returns:
        The mined rows, as a `datasets.Dataset` when `dataset` is one, else as a dict of column lists.
    """
    columns = _columns(dataset)
    anchor_column = _column(columns, anchor_column_name, 0, "anchor_column_name")
    positive_column = _column(columns, positive_column_name, 1, "positive_column_name")
    all_queries, all_positives = list(dataset[anchor_column]), list(dataset[positive_column])
    if not all_queries:
        raise ValueError("The dataset is empty. Please provide a non-empty dataset.")
    if num_negatives < 1:
        raise ValueError(f"num_negatives must be at least 1, got num_negatives={num_negatives}.")
    if include_positives:
        output_format = "n-tuple"
    max_positives = max(Counter(all_queries).values())
    if range_max is None:
        filtered = absolute_margin is not None or relative_margin is not None or max_score is not None
        range_max = range_min + num_negatives * (10 if filtered else 1) + max_positives
    _check_options(output_format, sampling_strategy, num_negatives, range_min, range_max)

    corpus_texts = list(dict.fromkeys([*(all_positives if corpus is None else corpus), *all_positives]))
    corpus_index = {text: index for index, text in enumerate(corpus_texts)}
    queries = list(dict.fromkeys(all_queries))
    query_index = {query: index for index, query in enumerate(queries)}
    positive_ids: list[list[int]] = [[] for _ in queries]
    for query, positive in zip(all_queries, all_positives, strict=True):
        ids = positive_ids[query_index[query]]
        if corpus_index[positive] not in ids:
            ids.append(corpus_index[positive])

    corpus_embeddings = encode_texts(
        model,
        corpus_texts,
        role="document",
        batch_size=batch_size,
        normalize_embeddings=True,
        prompt_name=corpus_prompt_name,
        prompt=corpus_prompt,
    )
    query_embeddings = encode_texts(
        model,
        queries,
        role="query",
        batch_size=batch_size,
        normalize_embeddings=True,
        prompt_name=query_prompt_name,
        prompt=query_prompt,
    )
    n_candidates = range_max + max_positives
    scores, candidate_ids = top_k_search(
        query_embeddings,
        corpus_embeddings,
        n_candidates,
        query_chunk_size=faiss_batch_size,
        score_function=SIMILARITY_FUNCTIONS[model.similarity_fn_name],
    )
    missing = n_candidates - scores.shape[1]
    scores = np.pad(scores, ((0, 0), (0, missing)), constant_values=-np.inf)
    candidate_ids = np.pad(candidate_ids, ((0, 0), (0, missing)), constant_values=-1)

    pair_queries = [q for q, ids in enumerate(positive_ids) for _ in ids]
    pair_positives = [p for ids in positive_ids for p in ids]
    pairwise = PAIRWISE_SIMILARITY_FUNCTIONS[model.similarity_fn_name]
    positive_scores = np.asarray(
        pairwise(jnp.asarray(query_embeddings[pair_queries]), jnp.asarray(corpus_embeddings[pair_positives]))
    )

    skipped = _discard_candidates(
        scores,
        candidate_ids,
        positive_ids if not include_positives else None,
        pair_queries,
        positive_scores,
        {"absolute_margin": absolute_margin, "relative_margin": relative_margin},
        {"max_score": max_score, "min_score": min_score},
    )
    negative_scores, negative_ids = _select_negatives(
        scores, candidate_ids, range_min, range_max, num_negatives, sampling_strategy
    )

    rows = _output_rows(
        output_format,
        output_scores,
        (anchor_column, positive_column),
        queries,
        corpus_texts,
        pair_queries,
        pair_positives,
        positive_scores,
        negative_ids,
        negative_scores,
    )
    if verbose:
        n_rows = len(rows[anchor_column])
        print(f"Mined {n_rows:,} rows ({output_format}) for {len(queries):,} unique anchors.")
        for reason, count in skipped.items():
            if count:
                print(f"Skipped {count:,} candidate negatives due to {reason}.")
    if hasattr(dataset, "column_names"):
        from datasets import Dataset

        return Dataset.from_dict(rows)
    return rows


def _discard_candidates(
    scores: np.ndarray,
    candidate_ids: np.ndarray,
    positive_ids: list[list[int]] | None,
    pair_queries: list[int],
    positive_scores: np.ndarray,
    margins: dict[str, float | None],
    score_limits: dict[str, float | None],
) -> dict[str, int]:
    """Set to -inf (in place) the scores [Q, C] of the candidates that cannot be negatives: each query's
    positives (unless `positive_ids` is None) and those failing a margin or score limit. Returns the
    number discarded per reason."""
    skipped: dict[str, int] = {}
    if positive_ids is not None:
        for q, ids in enumerate(positive_ids):
            scores[q, np.isin(candidate_ids[q], ids)] = -np.inf
    if margins["absolute_margin"] is not None or margins["relative_margin"] is not None:
        hardest_positive = np.full(len(scores), np.inf, np.float32)  # each query's lowest positive score
        np.minimum.at(hardest_positive, pair_queries, positive_scores)
        if margins["absolute_margin"] is not None:
            removed = scores + margins["absolute_margin"] > hardest_positive[:, None]
            _discard(scores, removed, "absolute_margin", skipped)
        if margins["relative_margin"] is not None:
            threshold = hardest_positive - np.abs(hardest_positive) * margins["relative_margin"]
            _discard(scores, scores > threshold[:, None], "relative_margin", skipped)
    if score_limits["max_score"] is not None:
        _discard(scores, scores > score_limits["max_score"], "max_score", skipped)
    if score_limits["min_score"] is not None:
        _discard(scores, scores < score_limits["min_score"], "min_score", skipped)
    return skipped


def _select_negatives(
    scores: np.ndarray,
    candidate_ids: np.ndarray,
    range_min: int,
    range_max: int,
    num_negatives: int,
    sampling_strategy: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Scores and ids [Q, num_negatives] of the chosen negatives, best first: ranks range_min..range_max of
    the remaining candidates, the first ones ("top") or a sample drawn with `random.sample` among those not
    discarded ("random"). Discarded candidates (-inf) fill rows that lack negatives."""
    order = np.argsort(-scores, axis=1, kind="stable")[:, range_min:range_max]
    negative_scores = np.take_along_axis(scores, order, axis=1)
    negative_ids = np.take_along_axis(candidate_ids, order, axis=1)
    if sampling_strategy == "top":
        return negative_scores[:, :num_negatives], negative_ids[:, :num_negatives]
    options = np.maximum(negative_scores.shape[1] - np.isinf(negative_scores).sum(1), num_negatives)
    sampled = np.array([random.sample(range(int(n)), k=num_negatives) for n in options])
    negative_scores = np.take_along_axis(negative_scores, sampled, axis=1)
    negative_ids = np.take_along_axis(negative_ids, sampled, axis=1)
    resort = np.argsort(-negative_scores, axis=1, kind="stable")
    return np.take_along_axis(negative_scores, resort, axis=1), np.take_along_axis(
        negative_ids, resort, axis=1
    )


def _output_rows(
    output_format: str,
    output_scores: bool,
    column_names: tuple[str, str],
    queries: list[str],
    corpus_texts: list[str],
    pair_queries: list[int],
    pair_positives: list[int],
    positive_scores: np.ndarray,
    negative_ids: np.ndarray,
    negative_scores: np.ndarray,
) -> dict[str, list]:
    """One row per (anchor, positive, negative) ("triplet") or per (anchor, positive) ("n-tuple")."""
    anchor_column, positive_column = column_names
    num_negatives = negative_ids.shape[1]
    rows: dict[str, list] = {anchor_column: [], positive_column: []}
    if output_format == "triplet":
        rows["negative"] = []
    else:
        rows.update({f"negative_{i}": [] for i in range(1, num_negatives + 1)})
    if output_scores:
        rows["scores"] = []
    for q, p, positive_score in zip(pair_queries, pair_positives, positive_scores.tolist(), strict=True):
        found = ~np.isinf(negative_scores[q])
        if output_format == "triplet":
            for n, negative_score in zip(
                negative_ids[q][found].tolist(), negative_scores[q][found].tolist(), strict=True
            ):
                rows[anchor_column].append(queries[q])
                rows[positive_column].append(corpus_texts[p])
                rows["negative"].append(corpus_texts[n])
                if output_scores:
                    rows["scores"].append([positive_score, negative_score])
        elif found.all():
            rows[anchor_column].append(queries[q])
            rows[positive_column].append(corpus_texts[p])
            for i, n in enumerate(negative_ids[q].tolist(), start=1):
                rows[f"negative_{i}"].append(corpus_texts[n])
            if output_scores:
                rows["scores"].append([positive_score, *negative_scores[q].tolist()])
    return rows
