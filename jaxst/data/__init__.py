"""Data bundled with jaxst: the STS benchmark, for the main job and quick evaluations."""

from __future__ import annotations

import csv
import gzip
from importlib import resources

STSB_SPLITS = ("train", "dev", "test")


def load_stsb(split: str) -> list[tuple[str, str, float]]:
    """STS-B pairs of one split as (sentence1, sentence2, score / 5), the score scaled to [0, 1].

    Args:
        split: "train" (5,749 pairs), "dev" (1,500) or "test" (1,379).
    """
    if split not in STSB_SPLITS:
        raise ValueError(f"Unknown STS-B split {split!r}; known: {', '.join(STSB_SPLITS)}.")
    path = resources.files(__name__) / "stsbenchmark.tsv.gz"
    with path.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as f:
        rows = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [
            (r["sentence1"], r["sentence2"], float(r["score"]) / 5.0) for r in rows if r["split"] == split
        ]
