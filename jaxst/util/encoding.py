"""One entry point from texts to a float32 embedding matrix, shared by the utilities and the evaluators."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np


def encode_texts(
    model,
    texts: Sequence[str],
    *,
    role: Literal["query", "document"] | None = None,
    batch_size: int = 32,
    show_progress_bar: bool | None = False,
    normalize_embeddings: bool = False,
    truncate_dim: int | None = None,
    prompt_name: str | None = None,
    prompt: str | None = None,
) -> np.ndarray:
    """Embed `texts` with `model` as sentence-transformers' evaluators do: [N, D] float32 numpy.

    `role` picks `model.encode_query` / `model.encode_document` (which apply the model's "query" /
    "document" prompt when no prompt is given) when the model has them, else `model.encode`. The other
    arguments go to encode unchanged: `truncate_dim` None means the model's own truncation, and encode
    truncates before it normalizes.
    """
    encode = getattr(model, f"encode_{role}", model.encode) if role else model.encode
    embeddings = encode(
        list(texts),
        batch_size=batch_size,
        show_progress_bar=show_progress_bar,
        convert_to_numpy=True,
        normalize_embeddings=normalize_embeddings,
        truncate_dim=truncate_dim,
        prompt_name=prompt_name,
        prompt=prompt,
    )
    return np.asarray(embeddings, dtype=np.float32)
