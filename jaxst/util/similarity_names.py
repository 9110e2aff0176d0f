"""sentence-transformers' `util` names for similarity that `jaxst.similarity` spells otherwise.

Like the functions they call, they take NumPy arrays, JAX arrays, (nested) lists and torch tensors (read
through NumPy: a tensor that requires grad must be detached first) and return float32 JAX arrays.
"""

from __future__ import annotations

from typing import Any

import jax

from jaxst.similarity import cos_sim, normalize


def pytorch_cos_sim(a: Any, b: Any) -> jax.Array:
    """sentence-transformers' former name of `cos_sim`: a [N, D], b [M, D] -> [N, M]."""
    return cos_sim(a, b)


def normalize_embeddings(embeddings: Any) -> jax.Array:
    """Each embedding (last axis) scaled to unit length: x / max(||x||_2, 1e-12). [..., D] -> [..., D]."""
    return normalize(embeddings, axis=-1)
