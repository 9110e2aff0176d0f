"""Attention options the newer families use: the sliding window (`window_mask`), against a loop over every
query and key, and the logit scale, against a float64 numpy reference."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxst.models.attention import attention, text_attention_mask, window_mask

# One packed row of three texts (lengths 4, 3, 2) and padding, and one padded text of 6 tokens.
SEGMENTS = np.array([[1, 1, 1, 1, 5, 5, 5, 8, 8, 0], [1, 1, 1, 1, 1, 1, 0, 0, 0, 0]])
POSITIONS = np.array([[0, 1, 2, 3, 0, 1, 2, 0, 1, 0], [0, 1, 2, 3, 4, 5, 0, 0, 0, 0]])


@pytest.mark.parametrize(("before", "after", "causal"), [(1, 1, False), (2, 0, True), (0, 2, False)])
def test_window_counts_positions_within_each_text(before, after, causal):
    mask = text_attention_mask(jnp.asarray(SEGMENTS), jnp.asarray(POSITIONS), causal=causal)
    mask = np.asarray(mask & window_mask(jnp.asarray(POSITIONS), before=before, after=after))[:, 0]
    for row, q, k in itertools.product(range(2), range(10), range(10)):
        text_q, text_k = SEGMENTS[row, q], SEGMENTS[row, k]
        offset = POSITIONS[row, q] - POSITIONS[row, k]  # how far key k lies before query q
        expected = text_k != 0 and text_q in (text_k, 0) and -after <= offset <= before
        expected = expected and not (causal and offset < 0)
        assert mask[row, q, k] == expected, (row, q, k)


@pytest.mark.parametrize("scale", [1.0, 0.3, None])
def test_logit_scale_matches_a_float64_reference(scale):
    """logits = q k^T scale (default 1 / sqrt(D)); two query heads share a key head."""
    rng = np.random.default_rng(0)
    query = rng.normal(size=(2, 5, 4, 8))
    key, value = rng.normal(size=(2, 2, 5, 2, 8))
    mask = np.tril(np.ones((5, 5), bool))[None, None]
    with jax.default_matmul_precision("highest"):
        out = attention(
            *(jnp.asarray(x, jnp.float32) for x in (query, key, value)),
            jnp.asarray(mask),
            None,
            dropout_rate=0.0,
            dropout_bits=None,
            scale=scale,
        )
    key, value = np.repeat(key, 2, axis=2), np.repeat(value, 2, axis=2)
    logits = np.einsum("btnd,bsnd->bnts", query, key) * (8**-0.5 if scale is None else scale)
    logits = np.where(mask, logits, -np.inf)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    expected = np.einsum("bnts,bsnd->btnd", probs / probs.sum(-1, keepdims=True), value)
    np.testing.assert_allclose(np.asarray(out), expected, atol=1e-5)
