"""Bucket lengths and static-shape batching: length-sorted batches, a few padded lengths, streamed results.

XLA compiles one program per input shape. The bucket lengths below are the padded lengths of encode, of
fit's padded batches (`jaxst.training.batching`) and of packed rows (`jaxst.packing`). encode

1. sorts the texts by token count, longest first (stable), and cuts them into batches of `rows` texts:
   the batch size, or for a call with fewer texts the smallest power of two that holds them (a batch's
   rows past its texts are padding);
2. pads each batch to the smallest bucket length that holds its longest text. Bucket lengths step by
   max(4, P / 4), P the power of two above the previous bucket: 4, 8, 12, 16, 24, 32, 48, 64, 96, 128,
   192, 256, 384, 512, up to `max_seq_length` (itself the last bucket). Every compiled program costs
   compile time and resident memory (for MiniLM on CPU about 2 s and 11 MiB), so the buckets are few
   (12 up to 256 tokens) yet tight where texts usually are: 3 padding positions at most up to 16
   tokens; 1.19x the real tokens over the STS-B sentences (multiples of 8: 1.30x, in more buckets);
3. holds at most `rows` texts and `rows * TOKENS_PER_ROW` tokens per batch (fewer rows, a power of
   two, for long buckets), so the activation memory of a forward pass does not grow with the length;
4. dispatches every batch before pulling earlier results to the host (JAX dispatch is asynchronous), at
   most `depth` results in flight, and hands each result to a consumer that writes it to its texts'
   original positions, so no device buffer outlives its batch for long.

A call therefore runs at most one program per bucket it uses: shapes are (rows, bucket length). On D
devices (`jaxst.encode_parallel`) each batch's rows are padded to a multiple of D, so that every device
gets as many rows: still one shape per bucket, for each device count.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

MIN_BUCKET_STEP = 4
TOKENS_PER_ROW = 64
RESULTS_IN_FLIGHT = 2


def bucket_lengths(max_seq_length: int) -> tuple[int, ...]:
    """The padded lengths encode uses, ascending, the last one max_seq_length (see the module docstring)."""
    buckets = [0]
    while buckets[-1] < max_seq_length:
        next_power_of_two = 1 << buckets[-1].bit_length()
        buckets.append(min(buckets[-1] + max(MIN_BUCKET_STEP, next_power_of_two // 4), max_seq_length))
    return tuple(buckets[1:])


def bucket_for(length: int, max_seq_length: int, shortest: int = 0) -> int:
    """The smallest bucket length >= max(length, shortest), `shortest` capped at max_seq_length."""
    wanted = max(length, min(shortest, max_seq_length))
    return next(b for b in bucket_lengths(max_seq_length) if b >= wanted)


@dataclasses.dataclass(frozen=True)
class PlannedBatch:
    """One encode batch `plan_batches` planned: texts `indices` (positions in the input) padded to `rows` x
    `length` tokens (rows >= len(indices))."""

    indices: np.ndarray
    rows: int
    length: int


def rows_per_batch(num_texts: int, batch_size: int) -> int:
    """batch_size, or the smallest power of two >= num_texts when that is smaller."""
    return min(batch_size, 1 << max(num_texts - 1, 0).bit_length())


def rows_for_length(rows: int, length: int) -> int:
    """`rows`, or for length > TOKENS_PER_ROW the largest power of two <= rows * TOKENS_PER_ROW / length."""
    if length <= TOKENS_PER_ROW:
        return rows
    fitting = max(rows * TOKENS_PER_ROW // length, 1)
    return 1 << (fitting.bit_length() - 1)


def plan_batches(
    lengths: np.ndarray, rows: int, buckets: tuple[int, ...], row_multiple: int = 1
) -> list[PlannedBatch]:
    """Batches of texts, longest first, each padded to the bucket of its longest text.

    A batch holds `rows` texts, fewer (a power of two) where `rows` texts of its bucket length would
    exceed `rows * TOKENS_PER_ROW` tokens: the same tokens per batch, so the activation memory of one
    forward pass stays that of `rows` texts of TOKENS_PER_ROW tokens, whatever the text length.

    Args:
        lengths: [N] token count of every text (each <= buckets[-1]).
        rows: texts per batch.
        buckets: ascending bucket lengths.
        row_multiple: a batch's padded row count is a multiple of this (the device count): a batch of
            k texts has ceil(k / row_multiple) * row_multiple rows.
    """
    order = np.argsort(-lengths, kind="stable")
    batches, start = [], 0
    while start < len(order):
        length = buckets[bisect.bisect_left(buckets, int(lengths[order[start]]))]
        batch_rows = rows_for_length(rows, length)
        padded_rows = -(-batch_rows // row_multiple) * row_multiple
        batches.append(PlannedBatch(order[start : start + batch_rows], padded_rows, length))
        start += batch_rows
    return batches


def stream_batches(
    batches: Iterable[PlannedBatch],
    dispatch: Callable[[PlannedBatch], Any],
    consume: Callable[[PlannedBatch, np.ndarray], None],
    depth: int = RESULTS_IN_FLIGHT,
) -> None:
    """Runs `dispatch` (asynchronous) on every batch and `consume` on each result, in batch order.

    A batch's result is pulled to the host (np.asarray, which waits for it) only once `depth` later
    batches have been dispatched, so the device keeps working while the host tokenizes, pads and copies.
    """
    in_flight: collections.deque[tuple[PlannedBatch, Any]] = collections.deque()
    for batch in batches:
        in_flight.append((batch, dispatch(batch)))
        if len(in_flight) > depth:
            done, result = in_flight.popleft()
            consume(done, np.asarray(result))
    while in_flight:
        done, result = in_flight.popleft()
        consume(done, np.asarray(result))
