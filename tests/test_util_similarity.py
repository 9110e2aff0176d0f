"""jaxst.util's similarity names against sentence_transformers.util on the same inputs, in every form
sentence-transformers takes them: NumPy arrays, lists of lists, lists of vectors, 1-D vectors, torch
tensors (and JAX arrays on jaxst's side)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from sentence_transformers import util as st_util

from jaxst import util

RNG = np.random.default_rng(0)
A = RNG.standard_normal((5, 8)).astype(np.float32)
A[2] = 0.0  # a zero row: normalised to zeros, as F.normalize
B = RNG.standard_normal((5, 8)).astype(np.float32)


def forms(x: np.ndarray) -> list:
    """x as a NumPy array, a list of lists, a list of row vectors, a torch tensor and a JAX array."""
    return [x, x.tolist(), list(x), torch.from_numpy(x), jnp.asarray(x)]


@pytest.mark.parametrize("name", ["cos_sim", "pytorch_cos_sim", "dot_score", "pairwise_cos_sim"])
def test_similarities_equal_sentence_transformers(name):
    theirs = getattr(st_util, name)(torch.from_numpy(A), torch.from_numpy(B)).numpy()
    for a, b in zip(forms(A), forms(B), strict=True):
        np.testing.assert_allclose(getattr(util, name)(a, b), theirs, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", ["cos_sim", "pytorch_cos_sim", "dot_score"])
def test_a_vector_counts_as_one_row(name):
    theirs = getattr(st_util, name)(torch.from_numpy(A[0]), torch.from_numpy(B)).numpy()
    np.testing.assert_allclose(getattr(util, name)(A[0], B), theirs, atol=1e-6, rtol=1e-5)
    np.testing.assert_allclose(getattr(util, name)(A[0].tolist(), B), theirs, atol=1e-6, rtol=1e-5)


def test_normalize_embeddings_equals_sentence_transformers():
    for x in (A, A[1]):
        theirs = st_util.normalize_embeddings(torch.from_numpy(x)).numpy()
        for form in (x, torch.from_numpy(x), jnp.asarray(x)):
            np.testing.assert_allclose(util.normalize_embeddings(form), theirs, atol=1e-6, rtol=1e-5)
