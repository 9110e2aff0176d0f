"""Sequence packing for training: a batch's texts laid end to end in a few rows of one length.

Padding each text to the batch's longest wastes most of a training step on sentence data: on STS-B and
SNLI a text has ~15 tokens and the longest of 32-64 texts 40-60, so a padded batch holds 3x the real
tokens. A packed batch (`jaxst.batch_layouts.PackedBatch`, which describes its arrays) holds them in rows
of P tokens, first-fit decreasing, each token attending only to its own text (`TransformerEncoder` with
`position_ids`), so a text's outputs equal those of the text alone, up to float rounding. The forward
pass then gathers every text's tokens back into [N, P] (`PackedBatch.unpack`) and pooling runs unchanged.

Static shapes: P = `row_length(longest text)` (a training bucket, at least `MIN_ROW_LENGTH` so that short
texts pack well) and a row count from `row_bucket` (four per octave), so a train step compiles once per
(P, row count) pair an epoch meets: a few for sentence data.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from jaxst import buckets

MIN_ROW_LENGTH = 64


def row_length(longest: int, max_seq_length: int) -> int:
    """P: the smallest encode bucket length >= max(longest, MIN_ROW_LENGTH), at most max_seq_length."""
    return buckets.bucket_for(longest, max_seq_length, MIN_ROW_LENGTH)


def row_bucket(rows: int) -> int:
    """The row count a packed batch is padded to: exact up to 4, then a multiple of 2^(floor(log2 rows) - 2)
    (4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, ...), so at most 25% of the rows are padding."""
    step = 1 << max(0, rows.bit_length() - 3)
    return -(-rows // step) * step


def first_fit_decreasing(lengths: np.ndarray, capacity: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Places texts of `lengths` (each <= capacity) into rows of `capacity` tokens, longest first, each in
    the first row with room.

    Returns:
        (row [N], start [N], rows used): text t fills row[t] from token start[t] on.
    """
    row = np.zeros(len(lengths), np.int64)
    start = np.zeros(len(lengths), np.int64)
    free = np.full(len(lengths) + 1, capacity)  # room left in each row; rows past `rows` are empty
    rows = 0
    for text in np.argsort(-lengths, kind="stable"):
        length = int(lengths[text])
        target = int(np.argmax(free[: rows + 1] >= length))  # row `rows` is empty, so one fits
        rows = max(rows, target + 1)
        row[text], start[text] = target, capacity - free[target]
        free[target] -= length
    return row, start, rows


def pack(
    ids: np.ndarray,
    type_ids: np.ndarray | None,
    offsets: np.ndarray,
    *,
    num_columns: int,
    num_devices: int,
    max_seq_length: int,
    pad_id: int,
    agree_max: Callable[[list[int]], list[int]] | None = None,
) -> dict[str, np.ndarray]:
    """Packs the texts of a batch, per device, into the named arrays of a `PackedBatch`.

    Args:
        ids, type_ids, offsets: the tokenized texts, flat, in column-major order (text j * B + i is
            column j of example i): text t is ids[offsets[t]:offsets[t + 1]] (see
            `jaxst.modules.transformer.Tokenized`); type_ids None when the model takes none.
        num_columns: k.
        num_devices: D, the devices this process feeds; it must divide B.
        max_seq_length: the model's; no text is longer.
        pad_id: the tokenizer's padding id.
        agree_max: maps this process's values to the element-wise maxima over all processes feeding
            one step together, so that every device gets the same shapes; None when this process alone
            feeds the step.
    """

    def agreed(values: list[int]) -> list[int]:
        return values if agree_max is None else agree_max(values)

    lengths = np.diff(offsets)
    batch = len(lengths) // num_columns
    per_device = batch // num_devices
    (longest,) = agreed([int(lengths.max())])
    length = row_length(longest, max_seq_length)
    # Device d's texts: columns j of examples d * b ... (d + 1) * b - 1, in (column, example) order.
    texts = np.arange(len(lengths)).reshape(num_columns, num_devices, per_device).transpose(1, 0, 2)
    texts = texts.reshape(num_devices, -1)
    row, start = np.zeros(len(lengths), np.int64), np.zeros(len(lengths), np.int64)
    rows_used = 0
    for device_texts in texts:
        device_row, device_start, used = first_fit_decreasing(lengths[device_texts], length)
        row[device_texts], start[device_texts] = device_row, device_start
        rows_used = max(rows_used, used)
    (rows_used,) = agreed([rows_used])
    rows = row_bucket(rows_used)

    device = np.arange(len(lengths)) % batch // per_device  # text j * B + i is on device i // b
    local_start = row * length + start  # within the device's flattened rows
    first = device * rows * length + local_start  # within all rows flattened
    token_text = np.repeat(np.arange(len(lengths)), lengths)
    within_text = np.arange(len(ids)) - offsets[:-1][token_text]
    destination = first[token_text] + within_text

    def scatter(values: np.ndarray, fill: int) -> np.ndarray:
        out = np.full(num_devices * rows * length, fill, np.int32)
        out[destination] = values
        return out.reshape(num_devices * rows, length)

    arrays = {
        "packed_input_ids": scatter(ids, pad_id),
        "packed_segment_ids": scatter(start[token_text] + 1, 0),
        "packed_position_ids": scatter(within_text, 0),
    }
    if type_ids is not None:
        arrays["packed_token_type_ids"] = scatter(type_ids, 0)
    in_text = np.arange(length)[None, :] < lengths[:, None]
    token_index = np.where(in_text, local_start[:, None] + np.arange(length)[None, :], 0)
    arrays["token_index"] = token_index.astype(np.int32).reshape(num_columns, batch, length)
    arrays["attention_mask"] = in_text.astype(np.int32).reshape(num_columns, batch, length)
    return arrays
