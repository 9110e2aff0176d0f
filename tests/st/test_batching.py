"""Bucketing and batching of encode (jaxst.encoding), on plain lengths."""

import numpy as np

from jaxst.encoding import bucket_lengths, plan_batches, rows_per_batch, stream_batches


def test_bucket_lengths():
    buckets = bucket_lengths(256)
    assert buckets == (*range(4, 33, 4), *range(40, 65, 8), *range(80, 129, 16), *range(160, 257, 32))
    assert bucket_lengths(512)[-4:] == tuple(range(320, 513, 64))
    assert bucket_lengths(130)[-2:] == (128, 130)
    assert bucket_lengths(3) == (3,)
    for length in range(1, 513):  # at most 3 padding tokens, or less than a quarter of the length
        bucket = next(b for b in bucket_lengths(512) if b >= length)
        assert bucket - length <= max(3, (length - 1) // 4)


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
    assert [b.length for b in batches] == [64, 12, 4]
    assert sorted(np.concatenate([b.indices for b in batches]).tolist()) == list(range(7))


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
