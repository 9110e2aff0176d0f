"""quantize_embeddings against sentence-transformers' own, exactly, for every precision."""

import numpy as np
import pytest
from sentence_transformers.util import quantize_embeddings as st_quantize

from jaxst.quantization import PRECISIONS, quantize_embeddings

RNG = np.random.default_rng(0)
EMBEDDINGS = RNG.normal(size=(150, 20)).astype(np.float32)
EMBEDDINGS[3, 5] = 0.0  # exactly 0 is not > 0 for the binary kinds
CALIBRATION = RNG.normal(scale=0.5, size=(300, 20)).astype(np.float32)


def assert_same(ours, theirs):
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_matches_sentence_transformers(precision):
    assert_same(quantize_embeddings(EMBEDDINGS, precision), st_quantize(EMBEDDINGS, precision))
    assert_same(
        quantize_embeddings(EMBEDDINGS[7], precision, calibration_embeddings=CALIBRATION),
        st_quantize(EMBEDDINGS[7], precision, calibration_embeddings=CALIBRATION),
    )
    assert_same(
        quantize_embeddings(EMBEDDINGS, precision, calibration_embeddings=CALIBRATION),
        st_quantize(EMBEDDINGS, precision, calibration_embeddings=CALIBRATION),
    )
    ranges = np.vstack([np.full(20, -1.0), np.full(20, 1.0)]).astype(np.float32)
    ranges[:, 2] = 0.5  # a constant dimension: step 1
    assert_same(
        quantize_embeddings(EMBEDDINGS, precision, ranges=ranges),
        st_quantize(EMBEDDINGS, precision, ranges=ranges),
    )
    assert_same(quantize_embeddings(EMBEDDINGS[:0], precision), st_quantize(EMBEDDINGS[:0], precision))


@pytest.mark.parametrize("precision", PRECISIONS)
def test_list_of_matrices_shares_ranges(precision):
    matrices = [EMBEDDINGS[:10], EMBEDDINGS[10:13], EMBEDDINGS[13:40]]
    ours, theirs = quantize_embeddings(matrices, precision), st_quantize(matrices, precision)
    assert len(ours) == len(theirs) == 3
    for a, b in zip(ours, theirs, strict=True):
        assert_same(a, b)


def test_bad_input():
    with pytest.raises(ValueError, match="'int4' is not supported"):
        quantize_embeddings(EMBEDDINGS, "int4")
    with pytest.raises(ValueError, match="single embedding"):
        quantize_embeddings(EMBEDDINGS[:1], "int8")
    with pytest.raises(ValueError, match="must be float"):
        quantize_embeddings(EMBEDDINGS.astype(np.int8), "uint8")
