"""Bucketing and batching of encode (jaxst.buckets), on plain lengths."""

import numpy as np

from jaxst.buckets import (
    TOKENS_PER_ROW,
    bucket_lengths,
    plan_batches,
    rows_for_length,
    rows_per_batch,
    stream_batches,
)


def test_bucket_lengths():
    assert bucket_lengths(256) == (4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
    assert bucket_lengths(512)[-2:] == (384, 512)
    assert bucket_lengths(130)[-2:] == (128, 130)
    assert bucket_lengths(3) == (3,)
    for length in range(1, 513):  # at most 3 padding tokens, or less than half the length
        bucket = next(b for b in bucket_lengths(512) if b >= length)
        assert bucket - length <= max(3, (length - 1) // 2)


def test_rows_per_batch():
    assert [rows_per_batch(n, 32) for n in (0, 1, 2, 3, 5, 17, 32, 33, 10_000)] == [
        1,
        1,
        2,
        4,
        8,
        32,
        32,
        32,
        32,
    ]


def test_plan_batches_sorts_longest_first_and_covers_every_text():
    lengths = np.array([5, 30, 9, 9, 1, 64, 12])
    batches = plan_batches(lengths, 3, bucket_lengths(64))
    assert [b.indices.tolist() for b in batches] == [[5, 1, 6], [2, 3, 0], [4]]
    assert [(b.rows, b.length) for b in batches] == [(3, 64), (3, 12), (3, 4)]
    assert sorted(np.concatenate([b.indices for b in batches]).tolist()) == list(range(7))


def test_long_buckets_get_fewer_rows():
    """At most rows * TOKENS_PER_ROW tokens per batch: power-of-two row counts for long buckets."""
    lengths = np.array([250] * 5 + [100] * 40 + [10] * 70)
    batches = plan_batches(lengths, 32, bucket_lengths(256))
    assert [(b.rows, b.length, len(b.indices)) for b in batches] == [
        (8, 256, 8),
        (16, 128, 16),
        (16, 128, 16),
        (16, 128, 16),
        (32, 12, 32),
        (32, 12, 27),
    ]
    assert all(b.rows * b.length <= 32 * TOKENS_PER_ROW for b in batches)
    assert [rows_for_length(32, 64), rows_for_length(20, 96), rows_for_length(3, 512)] == [32, 8, 1]


def test_stream_batches_dispatches_ahead_and_consumes_in_order():
    events = []
    batches = plan_batches(np.array([3, 2, 1, 4, 5]), 1, (8,))
    stream_batches(
        batches,
        dispatch=lambda b: events.append(("dispatch", int(b.indices[0]))) or np.array(b.indices),
        consume=lambda b, result: events.append(("consume", int(result[0]))),
        depth=2,
    )
    assert events == [
        ("dispatch", 4),
        ("dispatch", 3),
        ("dispatch", 0),
        ("consume", 4),
        ("dispatch", 1),
        ("consume", 3),
        ("dispatch", 2),
        ("consume", 0),
        ("consume", 1),
        ("consume", 2),
    ]
