"""One entry point from texts to a float32 embedding matrix, shared by the utilities and the evaluators."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from jaxst.similarity import normalize


def encode_texts(
    model,
    texts: Sequence[str],
    *,
    role: Literal["query", "document"] | None = None,
    batch_size: int = 32,
    show_progress_bar: bool = False,
    normalize_embeddings: bool = False,
    truncate_dim: int | None = None,
    prompt_name: str | None = None,
    prompt: str | None = None,
) -> np.ndarray:
    """Embed `texts` with `model` as sentence-transformers' evaluators do: [N, D] float32 numpy.

    `role` picks `model.encode_query` / `model.encode_document` when the model has them (they apply the
    model's "query" / "document" prompt), else `model.encode`. `truncate_dim` keeps the first dimensions
    and `normalize_embeddings` then L2-normalizes, the order of sentence-transformers' encode.
    An empty `texts` gives a [0, 0] matrix without calling the model.
    """
    if len(texts) == 0:
        return np.zeros((0, 0), np.float32)
    encode = getattr(model, f"encode_{role}", model.encode) if role else model.encode
    embeddings = encode(
        list(texts),
        batch_size=batch_size,
        show_progress_bar=show_progress_bar,
        convert_to_numpy=True,
        prompt_name=prompt_name,
        prompt=prompt,
    )
    embeddings = np.asarray(embeddings, dtype=np.float32)[:, :truncate_dim]
    if normalize_embeddings:
        embeddings = np.asarray(normalize(embeddings))
    return embeddings
