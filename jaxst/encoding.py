"""Static-shape batching for encode: length-sorted batches, a few bucket lengths, streamed results.

XLA compiles one program per input shape. encode therefore

1. sorts the texts by token count, longest first (stable), and cuts them into batches of `rows` texts;
   `rows` is the batch size, or for a call with fewer texts the smallest power of two that holds them;
   the last batch is padded with empty rows to `rows`;
2. pads each batch to the smallest bucket length that holds its longest text. Bucket lengths step by
   max(4, P / 8), P the power of two above the previous bucket: 4, 8, ..., 32, 40, ..., 64, 80, ...,
   128, 160, ..., 256, 320, ..., up to `max_seq_length` (itself the last bucket): 20 buckets up to 256.
   A batch so carries at most 3 padding positions more than its longest text needs up to 32 tokens,
   and less than a quarter more above. Each program compiled costs memory and compile time (about 2 s
   and some MiB for MiniLM on CPU), which is why the steps widen with the length;
3. dispatches every batch before pulling earlier results to the host (JAX dispatch is asynchronous), at
   most `depth` results in flight, and hands each result to a consumer that writes it to its texts'
   original positions, so no device buffer outlives its batch for long.

A call therefore runs at most one program per bucket it uses: shapes are (rows, bucket length).
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

MIN_BUCKET_STEP = 4
RESULTS_IN_FLIGHT = 2


def bucket_lengths(max_seq_length: int) -> tuple[int, ...]:
    """The padded lengths encode uses, ascending, the last one max_seq_length (see the module docstring)."""
    buckets = [0]
    while buckets[-1] < max_seq_length:
        next_power_of_two = 1 << buckets[-1].bit_length()
        buckets.append(min(buckets[-1] + max(MIN_BUCKET_STEP, next_power_of_two // 8), max_seq_length))
    return tuple(buckets[1:])


@dataclasses.dataclass(frozen=True)
class Batch:
    """Texts `indices` (positions in the input) padded to `length` tokens."""

    indices: np.ndarray
    length: int


def rows_per_batch(num_texts: int, batch_size: int) -> int:
    """batch_size, or the smallest power of two >= num_texts when that is smaller."""
    return min(batch_size, 1 << max(num_texts - 1, 0).bit_length())


def plan_batches(lengths: np.ndarray, rows: int, buckets: tuple[int, ...]) -> list[Batch]:
    """Batches of up to `rows` texts, longest first, each padded to the bucket of its longest text.

    Args:
        lengths: [N] token count of every text (each <= buckets[-1]).
        rows: texts per batch.
        buckets: ascending bucket lengths.
    """
    order = np.argsort(-lengths, kind="stable")
    batches = []
    for start in range(0, len(order), rows):
        indices = order[start : start + rows]
        longest = int(lengths[indices[0]])
        batches.append(Batch(indices, buckets[bisect.bisect_left(buckets, longest)]))
    return batches


def stream_batches(
    batches: Iterable[Batch],
    dispatch: Callable[[Batch], Any],
    consume: Callable[[Batch, np.ndarray], None],
    depth: int = RESULTS_IN_FLIGHT,
) -> None:
    """Runs `dispatch` (asynchronous) on every batch and `consume` on each result, in batch order.

    A batch's result is pulled to the host (np.asarray, which waits for it) only once `depth` later
    batches have been dispatched, so the device keeps working while the host tokenizes, pads and copies.
    """
    in_flight: collections.deque[tuple[Batch, Any]] = collections.deque()
    for batch in batches:
        in_flight.append((batch, dispatch(batch)))
        if len(in_flight) > depth:
            done, result = in_flight.popleft()
            consume(done, np.asarray(result))
    while in_flight:
        done, result = in_flight.popleft()
        consume(done, np.asarray(result))
