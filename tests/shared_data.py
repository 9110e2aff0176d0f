"""Readers for the real data in `../shared/data` (STS-B, SICK, SNLI, MRPC), for tests and benchmarks."""

from __future__ import annotations

import csv
import gzip
import os
from pathlib import Path

# JAXST_SHARED_DATA points elsewhere where ../shared is not beside the checkout (benchmarks/bench_model.py).
SHARED_DATA = Path(
    os.environ.get("JAXST_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


def read_tsv(relative_path: str, split: str | None = None) -> list[dict[str, str]]:
    """Rows of a `../shared/data` TSV (header row, no quoting) as dicts, optionally of one split."""
    path = SHARED_DATA / relative_path
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [r for r in rows if split is None or r["split"] == split]


def stsb(split: str) -> list[dict[str, str]]:
    """STS-B rows of one split (train / dev / test): sentence1, sentence2, score (0..5)."""
    return read_tsv("stsbenchmark/stsbenchmark.tsv.gz", split)


def stsb_sentences(split: str = "test", n: int | None = None) -> list[str]:
    """The first n sentences of an STS-B split, sentence1 and sentence2 interleaved."""
    out = []
    for row in stsb(split):
        out += [row["sentence1"], row["sentence2"]]
    return out[:n] if n is not None else out
