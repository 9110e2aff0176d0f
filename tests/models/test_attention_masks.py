"""The mask language's sliding window (`window_mask`), against a loop over every query and key."""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest

from jaxst.models.attention import text_attention_mask, window_mask

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
