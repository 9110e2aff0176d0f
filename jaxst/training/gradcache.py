"""GradCache (Gao et al., 2021): the gradient of an in-batch loss at a batch larger than memory allows.

An in-batch loss (MNRL, GIST) couples every row of the batch, so the batch cannot be split into
independent pieces; but its gradient factors through the embeddings. `cached_embed` wraps a model's
forward pass as a function params -> embeddings with a custom VJP:

    forward:  embed the N rows in chunks of `mini_batch_size` (`lax.map`), keeping no activations;
    (the loss and its gradient w.r.t. the [N, D] embeddings are then taken as usual, whole-batch;)
    backward: re-embed chunk by chunk with `jax.vjp` and accumulate the parameter gradient over the
              chunks (`lax.scan`), each chunk pulled back with its rows of the embedding gradient.

Only one chunk's activations are alive at a time in either pass, so the memory of a step is that of a
`mini_batch_size` forward-backward plus the [N, D] embeddings; the compute is one extra forward pass.
The backward pass of one chunk is a plain `jax.vjp` whose residuals die with the scan iteration, so no
`jax.checkpoint` is needed on top. Chunk c draws its dropout from `fold_in(dropout_rng, c)` in both
passes, so the re-embedded rows are the rows the loss saw. With dropout off, value and gradient equal
those of the plain forward up to float rounding (the chunks are the same arithmetic on fewer rows).

Rows not divisible by `mini_batch_size`: the last chunk is padded with copies of the first row; their
embeddings are dropped before the loss and their cotangents are zero, so they add nothing to the gradient.
A batch of at most `mini_batch_size` rows is one chunk of its own size (no padding).

Because the wrapper is an ordinary differentiable function of the parameters, everything around it is
unchanged: the loss's own parameters, `all_gather` of embeddings across devices (its transpose hands each
device the cotangents of its own rows, which this backward pass then pulls back), `pmean` of gradients.

Differences from sentence-transformers' CachedLossMixin: chunks have a fixed row count with the full
padded length T (static shapes), not trimmed per chunk (masked positions change nothing), and
`mini_batch_num_tokens` (token-budget chunks of varying size) is not available. The loss itself is taken
on the whole [N, D] embeddings at once instead of in row chunks: its score matrix is [b, k * b] floats,
small next to the encoder's activations at the batch sizes GradCache is for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from jaxst.batch_layouts import Forward


def _chunk(features: dict[str, jax.Array], mini_batch_size: int) -> tuple[dict[str, jax.Array], int]:
    """{name: [N, ...]} -> ({name: [C, m, ...]}, N): m = min(mini_batch_size, N) rows per chunk, the
    last chunk padded with copies of row 0."""
    rows = next(iter(features.values())).shape[0]
    chunk_rows = min(mini_batch_size, rows)
    padding = -rows % chunk_rows

    def split(x: jax.Array) -> jax.Array:
        if padding:
            x = jnp.concatenate([x, jnp.broadcast_to(x[:1], (padding, *x.shape[1:]))])
        return x.reshape(-1, chunk_rows, *x.shape[1:])

    return {name: split(value) for name, value in features.items()}, rows


def cached_embed(
    forward: Forward, mini_batch_size: int
) -> Callable[[Any, dict[str, jax.Array], jax.Array | None], jax.Array]:
    """`forward`'s sentence embeddings as a GradCache function `embed(params, features, dropout_rng)`.

    Args:
        forward: the model's pure forward pass (as `SentenceTransformer.forward`).
        mini_batch_size: rows per chunk in both passes, a positive int (the loss classes validate it).

    Returns:
        embed(params, features {name: [N, T]}, dropout_rng or None) -> [N, D] float32, differentiable
        w.r.t. `params` with the chunked backward pass described in the module docstring.
    """

    def embed_chunk(params: Any, chunk: dict[str, jax.Array], index: jax.Array, rng: jax.Array | None):
        chunk_rng = None if rng is None else jax.random.fold_in(rng, index)
        return forward(params, chunk, dropout_rng=chunk_rng)["sentence_embedding"]

    def chunk_indices(chunks: dict[str, jax.Array]) -> jax.Array:
        return jnp.arange(next(iter(chunks.values())).shape[0], dtype=jnp.uint32)

    @jax.custom_vjp
    def embed(params: Any, features: dict[str, jax.Array], rng: jax.Array | None) -> jax.Array:
        chunks, rows = _chunk(features, mini_batch_size)
        embeddings = lax.map(lambda xs: embed_chunk(params, *xs, rng), (chunks, chunk_indices(chunks)))
        return embeddings.reshape(-1, embeddings.shape[-1])[:rows]

    def embed_forward(params: Any, features: dict[str, jax.Array], rng: jax.Array | None):
        return embed(params, features, rng), (params, features, rng)

    def embed_backward(residuals: Any, cotangent: jax.Array):
        params, features, rng = residuals
        chunks, rows = _chunk(features, mini_batch_size)
        count, chunk_rows = next(iter(chunks.values())).shape[:2]
        padded = jnp.pad(cotangent, ((0, count * chunk_rows - rows), (0, 0)))  # padding rows: no gradient
        cotangent_chunks = padded.reshape(count, chunk_rows, -1)

        def accumulate(total: Any, xs: tuple) -> tuple[Any, None]:
            chunk, chunk_cotangent, index = xs
            _, pull_back = jax.vjp(lambda p: embed_chunk(p, chunk, index, rng), params)
            (grads,) = pull_back(chunk_cotangent)
            return jax.tree.map(jnp.add, total, grads), None

        zeros = jax.tree.map(jnp.zeros_like, params)
        grads, _ = lax.scan(accumulate, zeros, (chunks, cotangent_chunks, chunk_indices(chunks)))
        return grads, None, None

    embed.defvjp(embed_forward, embed_backward)
    return embed
