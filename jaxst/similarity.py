"""Similarity and distance functions shared by the losses, the evaluators and `jaxst.util`.

Every function takes float arrays, computes in float32 and matches sentence-transformers'
`util.similarity` in value and in gradient, zero vectors included:

- L2 normalisation is `x / max(||x||, 1e-12)` (torch's `F.normalize`), with the gradient of `||x||`
  taken as 0 at x = 0, as torch does, so zero rows give finite values and gradients.
- Absolute values differentiate to sign(x), 0 at x = 0, as torch's `abs` (jnp.abs gives 1 there), so
  manhattan distances of equal coordinates get torch's gradient.
- Euclidean distances are computed from differences, `||a_i - b_j||`, which is exact for duplicate rows.
  torch's `cdist` switches to `sqrt(|a|^2 - 2 a.b + |b|^2)` for more than 25 rows; the two agree to
  float32 rounding except for near-duplicate rows, where the difference form is the correct one.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

import jax
import jax.numpy as jnp

NORMALIZE_EPS = 1e-12


def _f32(x: jax.Array) -> jax.Array:
    return jnp.asarray(x).astype(jnp.float32)


def safe_norm(x: jax.Array, axis: int = -1, keepdims: bool = False) -> jax.Array:
    """L2 norm along `axis` whose gradient is 0 (not NaN) where the norm is 0, as in torch."""
    squared = jnp.sum(x * x, axis=axis, keepdims=keepdims)
    positive = squared > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)


def torch_abs(x: jax.Array) -> jax.Array:
    """|x| whose gradient is sign(x), 0 at x = 0, as torch's."""
    return x * jnp.sign(x)


def normalize(x: jax.Array, axis: int = -1) -> jax.Array:
    """`x / max(||x||_2, 1e-12)` along `axis` (torch `F.normalize`)."""
    x = _f32(x)
    return x / jnp.maximum(safe_norm(x, axis=axis, keepdims=True), NORMALIZE_EPS)


def cos_sim(a: jax.Array, b: jax.Array) -> jax.Array:
    """Cosine similarity matrix. a [N, D], b [M, D] -> [N, M]; 1-D inputs count as one row."""
    a, b = jnp.atleast_2d(_f32(a)), jnp.atleast_2d(_f32(b))
    return normalize(a) @ normalize(b).T


def dot_score(a: jax.Array, b: jax.Array) -> jax.Array:
    """Dot-product matrix. a [N, D], b [M, D] -> [N, M]."""
    a, b = jnp.atleast_2d(_f32(a)), jnp.atleast_2d(_f32(b))
    return a @ b.T


def euclidean_sim(a: jax.Array, b: jax.Array) -> jax.Array:
    """Negative euclidean distance matrix. a [N, D], b [M, D] -> [N, M] = -||a_i - b_j||_2."""
    a, b = jnp.atleast_2d(_f32(a)), jnp.atleast_2d(_f32(b))
    return -safe_norm(a[:, None, :] - b[None, :, :], axis=-1)


def manhattan_sim(a: jax.Array, b: jax.Array) -> jax.Array:
    """Negative manhattan distance matrix. a [N, D], b [M, D] -> [N, M] = -sum_k |a_ik - b_jk|."""
    a, b = jnp.atleast_2d(_f32(a)), jnp.atleast_2d(_f32(b))
    return -jnp.sum(torch_abs(a[:, None, :] - b[None, :, :]), axis=-1)


def pairwise_cos_sim(a: jax.Array, b: jax.Array) -> jax.Array:
    """Row-wise cosine similarity. a, b [N, D] -> [N]."""
    return jnp.sum(normalize(a) * normalize(b), axis=-1)


def pairwise_dot_score(a: jax.Array, b: jax.Array) -> jax.Array:
    """Row-wise dot product. a, b [N, D] -> [N]."""
    return jnp.sum(_f32(a) * _f32(b), axis=-1)


def pairwise_euclidean_sim(a: jax.Array, b: jax.Array) -> jax.Array:
    """Row-wise negative euclidean distance. a, b [N, D] -> [N]."""
    return -safe_norm(_f32(a) - _f32(b), axis=-1)


def pairwise_manhattan_sim(a: jax.Array, b: jax.Array) -> jax.Array:
    """Row-wise negative manhattan distance. a, b [N, D] -> [N]."""
    return -jnp.sum(torch_abs(_f32(a) - _f32(b)), axis=-1)


SIMILARITY_FUNCTIONS = {
    "cosine": cos_sim,
    "dot": dot_score,
    "euclidean": euclidean_sim,
    "manhattan": manhattan_sim,
}
PAIRWISE_SIMILARITY_FUNCTIONS = {
    "cosine": pairwise_cos_sim,
    "dot": pairwise_dot_score,
    "euclidean": pairwise_euclidean_sim,
    "manhattan": pairwise_manhattan_sim,
}


class SimilarityFunction(StrEnum):
    """The similarity functions by name, as sentence-transformers' `SimilarityFunction`.

    Members and values: COSINE ("cosine"), DOT_PRODUCT and its alias DOT ("dot"), EUCLIDEAN ("euclidean"),
    MANHATTAN ("manhattan"). sentence-transformers' MAXSIM and MEAN_MAXSIM (multi-vector models) have no
    jaxst counterpart. Unlike sentence-transformers' plain Enum, each member is also its value as a str, so
    a member goes wherever jaxst takes a similarity name (`similarity_fn_name`, the evaluators'
    `main_similarity` and `similarity_fn_names`, the losses' `similarity_fct`).
    """

    COSINE = "cosine"
    DOT_PRODUCT = "dot"
    DOT = "dot"  # an alias of DOT_PRODUCT
    EUCLIDEAN = "euclidean"
    MANHATTAN = "manhattan"

    @classmethod
    def _missing_(cls, value: object) -> SimilarityFunction | None:
        """Also takes another enum's member by its value (sentence-transformers' SimilarityFunction.DOT)."""
        inner = getattr(value, "value", None)
        return cls(inner) if isinstance(inner, str) else None

    @staticmethod
    def to_similarity_fn(similarity_function: str) -> Callable[[jax.Array, jax.Array], jax.Array]:
        """The matrix function ([N, D], [M, D] -> [N, M]) of a name or member.

        Raises:
            ValueError: naming the value, when it is not one of `possible_values()`.
        """
        return SIMILARITY_FUNCTIONS[SimilarityFunction(similarity_function)]

    @staticmethod
    def to_similarity_pairwise_fn(similarity_function: str) -> Callable[[jax.Array, jax.Array], jax.Array]:
        """The row-wise function ([N, D], [N, D] -> [N]) of a name or member.

        Raises:
            ValueError: naming the value, when it is not one of `possible_values()`.
        """
        return PAIRWISE_SIMILARITY_FUNCTIONS[SimilarityFunction(similarity_function)]

    @staticmethod
    def possible_values() -> list[str]:
        """The names: ["cosine", "dot", "euclidean", "manhattan"]."""
        return [member.value for member in SimilarityFunction]
