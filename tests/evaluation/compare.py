"""Comparisons of jaxst's evaluator results with sentence-transformers' evaluators."""

from __future__ import annotations

import csv
import os

import numpy as np


def assert_same_metrics(ours: dict, theirs: dict, atol: float = 1e-6) -> None:
    """Same keys in the same order, values within atol, all Python floats."""
    assert list(ours) == list(theirs)
    for key, value in theirs.items():
        assert isinstance(ours[key], float), key
        np.testing.assert_allclose(ours[key], value, atol=atol, err_msg=key)


def assert_same_csv_files(our_dir: str, their_dir: str, atol: float = 1e-6) -> None:
    """The same files; the CSV files with the same line endings and headers, and values within atol."""
    assert sorted(os.listdir(our_dir)) == sorted(os.listdir(their_dir))
    for name in [name for name in os.listdir(their_dir) if name.endswith(".csv")]:
        with open(os.path.join(our_dir, name), newline="") as f:
            our_text = f.read()
        with open(os.path.join(their_dir, name), newline="") as f:
            their_text = f.read()
        assert our_text.count("\r\n") == their_text.count("\r\n"), name
        our_rows, their_rows = (
            list(csv.reader(our_text.splitlines())),
            list(csv.reader(their_text.splitlines())),
        )
        assert our_rows[0] == their_rows[0], name
        assert len(our_rows) == len(their_rows), name
        np.testing.assert_allclose(
            np.array(our_rows[1:], dtype=float),
            np.array(their_rows[1:], dtype=float),
            atol=atol,
            err_msg=name,
        )
