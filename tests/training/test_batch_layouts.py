"""Padded and packed batches as typed pytrees: read from named arrays, split axes, the texts forward gets."""

import jax
import numpy as np
import pytest

from jaxst.batch_layouts import PackedBatch, PaddedBatch, as_batch, as_packed
from jaxst.packing import pack


def padded_arrays(k=2, b=4, t=6):
    ids = np.arange(k * b * t, dtype=np.int32).reshape(k, b, t)
    return {"input_ids": ids, "attention_mask": np.ones_like(ids), "labels": np.arange(b, dtype=np.float32)}


def packed_arrays(k=2, b=4):
    lengths = np.arange(1, k * b + 1)
    offsets = np.r_[0, np.cumsum(lengths)]
    ids = np.arange(1, offsets[-1] + 1, dtype=np.int32)
    return pack(ids, None, offsets, num_columns=k, num_devices=2, max_seq_length=64, pad_id=0)


def test_named_arrays_are_read_as_the_layout_they_spell():
    padded = as_batch(padded_arrays())
    assert isinstance(padded, PaddedBatch) and padded.token_type_ids is None
    packed = as_batch(packed_arrays())
    assert isinstance(packed, PackedBatch) and packed.packed_token_type_ids is None and packed.labels is None
    assert as_batch(packed) is packed and as_packed(packed) is packed
    assert as_packed(padded_arrays()) is None
    with pytest.raises(TypeError, match="label"):
        as_batch({**padded_arrays(), "label": np.zeros(4)})


def test_each_array_splits_along_its_example_axis():
    padded = as_batch(padded_arrays())
    assert padded.split_axes() == PaddedBatch(input_ids=1, attention_mask=1, labels=0)
    packed = as_batch(packed_arrays())
    assert packed.split_axes() == PackedBatch(
        packed_input_ids=0, packed_segment_ids=0, packed_position_ids=0, token_index=1, attention_mask=1
    )
    # the axes are a pytree of the batch's structure, so that tree maps pair every array with its axis
    assert jax.tree.structure(packed.split_axes()) == jax.tree.structure(packed)


def test_texts_flatten_the_columns_one_after_the_other():
    arrays = padded_arrays()
    texts = as_batch(arrays).texts()
    assert sorted(texts) == ["attention_mask", "input_ids"]
    np.testing.assert_array_equal(texts["input_ids"], np.concatenate(list(arrays["input_ids"])))
    packed = as_batch(packed_arrays())
    flat = packed.texts()
    assert flat.token_index.shape == (8, packed.token_index.shape[-1]) and flat.labels is None
    np.testing.assert_array_equal(flat.packed_input_ids, packed.packed_input_ids)
