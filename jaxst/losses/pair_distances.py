"""Row-wise distances as `torch.nn.functional` defines them, used by some sentence-transformers losses.

ContrastiveLoss, OnlineContrastiveLoss and CosineSimilarityLoss call `F.cosine_similarity` and
`F.pairwise_distance` rather than sentence-transformers' `util` functions (which `jaxst.similarity`
mirrors). They differ in their epsilons and in how the clamp acts on the gradient, which matters for
near-zero vectors, so parity needs them as torch defines them:

- `F.cosine_similarity(x, y, eps=1e-8)` = sum(x / n_x * y / n_y) with n = max(||.||, eps), where the clamp
  is applied outside autograd: the gradient flows through ||.|| as if unclamped (0 at a zero vector).
- `F.pairwise_distance(x, y, p, eps=1e-6)` = ||x - y + eps||_p.
- `torch.abs` has the subgradient sign(0) = 0 at 0, where `jnp.abs` has 1: `jaxst.similarity.torch_abs`
  keeps torch's.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxst.similarity import safe_norm, torch_abs

COSINE_EPS = 1e-8
PAIRWISE_DISTANCE_EPS = 1e-6


def _clamped_norm(x: jax.Array) -> jax.Array:
    """max(||x||, eps) in value, with the gradient of ||x|| (torch clamps in place under no_grad)."""
    norm = safe_norm(x, axis=-1, keepdims=True)
    return norm + jax.lax.stop_gradient(jnp.maximum(norm, COSINE_EPS) - norm)


def paired_cosine_similarity(a: jax.Array, b: jax.Array) -> jax.Array:
    """`torch.nn.functional.cosine_similarity` along the last axis. a, b [N, D] -> [N]."""
    a, b = a.astype(jnp.float32), b.astype(jnp.float32)
    return jnp.sum((a / _clamped_norm(a)) * (b / _clamped_norm(b)), axis=-1)


def paired_euclidean_distance(a: jax.Array, b: jax.Array) -> jax.Array:
    """`torch.nn.functional.pairwise_distance(a, b, p=2)` = ||a - b + 1e-6||_2. a, b [N, D] -> [N]."""
    return safe_norm(a.astype(jnp.float32) - b.astype(jnp.float32) + PAIRWISE_DISTANCE_EPS, axis=-1)


def paired_manhattan_distance(a: jax.Array, b: jax.Array) -> jax.Array:
    """`torch.nn.functional.pairwise_distance(a, b, p=1)` = sum |a - b + 1e-6|. a, b [N, D] -> [N]."""
    return jnp.sum(torch_abs(a.astype(jnp.float32) - b.astype(jnp.float32) + PAIRWISE_DISTANCE_EPS), axis=-1)


def paired_cosine_distance(a: jax.Array, b: jax.Array) -> jax.Array:
    """1 - `torch.nn.functional.cosine_similarity(a, b)`. a, b [N, D] -> [N]."""
    return 1.0 - paired_cosine_similarity(a, b)
