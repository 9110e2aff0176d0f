"""Host side of a training step: a batch of examples tokenized into the named arrays of its layout.

The k columns of a batch are tokenized together, then laid out (`jaxst.batch_layouts`) either packed end
to end into rows per device (`jaxst.packing`), or padded, all columns together, to a training bucket
length: encode's bucket lengths from 16 on (16, 24, 32, 48, 64, 96, ...: under 1.5x the longest text, in
few lengths, since a train step compiles far slower than it runs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from jaxst import buckets, packing
from jaxst.texts import check_texts
from jaxst.training.data import ExampleBatch

MIN_TRAINING_BUCKET = 16


def training_bucket(length: int, max_seq_length: int) -> int:
    """The padded length of a batch whose longest text has `length` tokens (<= max_seq_length).

    encode's bucket lengths (`jaxst.buckets.bucket_lengths`: 16, 24, 32, 48, 64, 96, ...) from 16 on,
    or max_seq_length when that is shorter.
    """
    return buckets.bucket_for(length, max_seq_length, MIN_TRAINING_BUCKET)


def batch_arrays(
    model: Any,
    batch: ExampleBatch,
    *,
    packed: bool = False,
    num_devices: int = 1,
    agree_max: Callable[[list[int]], list[int]] | None = None,
) -> dict[str, np.ndarray]:
    """The named arrays of a batch of B examples with k texts each (+ its labels).

    Args:
        model: the SentenceTransformer whose tokenizer and max_seq_length apply.
        batch: the examples' texts and labels.
        packed: pack the texts into rows per device (a `PackedBatch`); else pad them to [k, B, T], T a
            training bucket (a `PaddedBatch`).
        num_devices: the devices this process feeds (packed only; it must divide B).
        agree_max: the element-wise maxima over all processes feeding one step together (packed only,
            see `jaxst.packing.pack`); None when this process alone feeds the step.
    """
    k, b = len(batch.texts), len(batch.texts[0])
    tokenized = model.transformer.tokenize(check_texts([text for column in batch.texts for text in column]))
    pad_id = model.transformer.pad_token_id
    if packed:
        arrays = packing.pack(
            tokenized.ids,
            tokenized.type_ids,
            tokenized.offsets,
            num_columns=k,
            num_devices=num_devices,
            max_seq_length=model.max_seq_length,
            pad_id=pad_id,
            agree_max=agree_max,
        )
    else:
        length = training_bucket(int(tokenized.lengths.max(initial=1)), model.max_seq_length)
        padded = tokenized.padded(np.arange(k * b), k * b, length, pad_id)
        arrays = {name: value.reshape(k, b, length) for name, value in padded.items()}
    if batch.labels is not None:
        arrays["labels"] = batch.labels
    return arrays
