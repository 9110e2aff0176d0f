"""Reading the command line's data files: TSV, CSV or JSON Lines with a header, or a saved HF dataset.

Convention (sentence-transformers'): a column named label / score (or labels / scores) holds the
labels; every other column is a text, in file order. A row with the wrong number of fields is an error
naming the file and the line.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from jaxst.cli.errors import CliError
from jaxst.training.data import LABEL_COLUMNS


def read_rows(path: str) -> tuple[list[str], list[dict[str, Any]]]:
    """(column names, rows as dicts) of a .tsv / .csv / .jsonl file or a saved Hugging Face dataset folder."""
    p = Path(path)
    if p.is_dir():
        return read_saved_dataset(p)
    if not p.is_file():
        raise CliError(f"data file not found: {path}")
    suffix = p.suffix.lower()
    if suffix in (".tsv", ".csv"):
        return read_delimited(p, "\t" if suffix == ".tsv" else ",")
    if suffix in (".jsonl", ".json"):
        return read_jsonl(p)
    raise CliError(
        f"{path}: unknown data format {suffix!r}; use .tsv, .csv, .jsonl or a saved dataset folder"
    )


def read_delimited(path: Path, delimiter: str) -> tuple[list[str], list[dict[str, Any]]]:
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(
            f, delimiter=delimiter, quoting=csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
        )
        header = next(reader, None)
        if not header:
            raise CliError(f"{path}: the file is empty (it needs a header row)")
        rows = []
        for line_number, fields in enumerate(reader, start=2):
            if not fields:
                continue
            if len(fields) != len(header):
                raise CliError(
                    f"{path}, line {line_number}: {len(fields)} fields, "
                    f"but the header names {len(header)} columns"
                )
            rows.append(dict(zip(header, fields, strict=True)))
    return header, rows


def read_jsonl(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    header: list[str] | None = None
    rows = []
    with path.open(encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise CliError(f"{path}, line {line_number}: not valid JSON ({error.msg})") from None
            if not isinstance(row, dict):
                raise CliError(f"{path}, line {line_number}: expected a JSON object")
            if header is None:
                header = list(row)
            elif list(row) != header:
                raise CliError(
                    f"{path}, line {line_number}: keys {list(row)} differ from the first line's {header}"
                )
            rows.append(row)
    if header is None:
        raise CliError(f"{path}: the file holds no rows")
    return header, rows


def read_saved_dataset(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    try:
        import datasets
    except ImportError:
        raise CliError(
            "reading a saved dataset folder needs the datasets package: pip install datasets"
        ) from None
    try:
        dataset = datasets.load_from_disk(str(path))
    except FileNotFoundError as error:
        raise CliError(f"{path}: not a saved Hugging Face dataset ({error})") from None
    if isinstance(dataset, datasets.DatasetDict):
        raise CliError(f"{path} holds several splits {list(dataset)}: point to one split's folder")
    return list(dataset.column_names), [dict(row) for row in dataset]


def split_columns(header: list[str], path: str) -> tuple[list[str], str | None]:
    """(text columns in order, the label column or None)."""
    labels = [c for c in header if c in LABEL_COLUMNS]
    if len(labels) > 1:
        raise CliError(f"{path}: several label columns {labels}; keep one")
    texts = [c for c in header if c not in LABEL_COLUMNS]
    if not texts:
        raise CliError(f"{path}: no text column")
    return texts, (labels[0] if labels else None)


def parse_label(raw: Any) -> int | float:
    """A label as a number: int for integers ("1", 1), float otherwise ("0.8", 0.8)."""
    if isinstance(raw, bool | int):
        return int(raw)
    if isinstance(raw, float):
        return raw
    try:
        return int(raw)
    except (TypeError, ValueError):
        return float(raw)


def read_examples(path: str) -> list:
    """InputExamples of a data file: texts from the text columns, the label from the label column."""
    from jaxst.training.data import InputExample

    header, rows = read_rows(path)
    texts, label = split_columns(header, path)
    examples = []
    for index, row in enumerate(rows, start=1):
        value = None
        if label is not None:
            try:
                value = parse_label(row[label])
            except (TypeError, ValueError):
                raise CliError(
                    f"{path}: data row {index} has the label {row[label]!r}, not a number"
                ) from None
        examples.append(InputExample(texts=[str(row[c]) for c in texts], label=value))
    if not examples:
        raise CliError(f"{path}: no data rows")
    return examples
