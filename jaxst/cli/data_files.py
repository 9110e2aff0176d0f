"""Reading the command line's data files: TSV, CSV or JSON Lines with a header (plain or .gz), or a saved
Hugging Face dataset folder.

Columns (sentence-transformers' convention unless named): the column named label / score (or labels /
scores) holds the labels, every other column is a text, in file order. `Columns` names them instead
(`--text-columns`, `--label-column`) and can keep one split of a file with a `split` column (`--split`).

Values: TSV / CSV fields are strings and labels are parsed from them; JSON Lines and datasets carry
types, so a text must be a string and a label a number. A label must be finite. A malformed row, a
text that is not a string and a bad label are errors naming the file, the line (or row) and the column.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jaxst.cli.errors import CliError
from jaxst.cli.files import decode_utf8, read_bytes, text_lines
from jaxst.training.data import LABEL_COLUMNS

SPLIT_COLUMN = "split"


@dataclass(frozen=True)
class Table:
    """The rows of a data file.

    Attributes:
        source: the file or folder read, for error messages.
        columns: the column names, in file order.
        rows: one dict (column -> value) per data row.
        lines: the file line each row starts on; None for a saved dataset, whose rows count from 1.
        typed: True when values carry their own types (JSON Lines, datasets), False when every value is
            a string (TSV, CSV).
    """

    source: str
    columns: list[str]
    rows: list[dict[str, Any]]
    lines: list[int] | None
    typed: bool

    def where(self, index: int) -> str:
        """Where row `index` comes from: "FILE, line N" or "FOLDER, row N"."""
        if self.lines is None:
            return f"{self.source}, row {index + 1}"
        return f"{self.source}, line {self.lines[index]}"


@dataclass(frozen=True)
class Columns:
    """Which columns of a data file to read.

    Attributes:
        texts: the text columns, in order; None: every column but the label column (and the split
            column when `split` is set).
        label: the label / score column; None: the column named label, labels, score or scores, if any.
        split: keep only the rows whose `split` column holds this value; None: every row.
    """

    texts: tuple[str, ...] | None = None
    label: str | None = None
    split: str | None = None


def read_table(path: str) -> Table:
    """The rows of a .tsv / .csv / .jsonl file (each optionally .gz) or a saved Hugging Face dataset."""
    p = Path(path)
    if p.is_dir():
        return read_saved_dataset(p)
    data = read_bytes(path, "data file")
    suffixes = [s.lower() for s in p.suffixes[-2:]]
    if suffixes[-1:] == [".gz"]:
        data = gunzip(data, path)
        suffixes.pop()
    suffix = suffixes[-1] if suffixes else ""
    if suffix in (".tsv", ".csv"):
        return read_delimited(decode_utf8(data, path), path, "\t" if suffix == ".tsv" else ",")
    if suffix in (".jsonl", ".json"):
        return read_jsonl(decode_utf8(data, path), path)
    raise CliError(
        f"{path}: unknown data format {p.name!r}; use .tsv, .csv, .jsonl (optionally .gz) "
        "or a saved dataset folder"
    )


def gunzip(data: bytes, path: str) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        raise CliError(f"{path}: not a readable gzip file ({error})") from None


def read_delimited(text: str, path: str, delimiter: str) -> Table:
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    header = next(reader, None)
    if not header:
        raise CliError(f"{path}: the file is empty (it needs a header row)")
    rows, lines = [], []
    first_line = reader.line_num + 1
    for fields in reader:
        if fields and len(fields) != len(header):
            raise CliError(
                f"{path}, line {first_line}: {len(fields)} fields, but the header names {len(header)} columns"
            )
        if fields:
            rows.append(dict(zip(header, fields, strict=True)))
            lines.append(first_line)
        first_line = reader.line_num + 1
    return Table(path, header, rows, lines, typed=False)


def read_jsonl(text: str, path: str) -> Table:
    header: list[str] | None = None
    rows, lines = [], []
    for line_number, line in enumerate(text_lines(text), start=1):
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
        lines.append(line_number)
    if header is None:
        raise CliError(f"{path}: the file holds no rows")
    return Table(path, header, rows, lines, typed=True)


def read_saved_dataset(path: Path) -> Table:
    try:
        import datasets
    except ImportError:
        raise CliError(
            "reading a saved dataset folder needs the datasets package: pip install datasets"
        ) from None
    try:
        dataset = datasets.load_from_disk(str(path))
    except (OSError, ValueError) as error:
        raise CliError(f"{path}: not a readable saved Hugging Face dataset ({error})") from None
    if isinstance(dataset, datasets.DatasetDict):
        raise CliError(f"{path} holds several splits {list(dataset)}: point to one split's folder")
    return Table(str(path), list(dataset.column_names), [dict(row) for row in dataset], None, typed=True)


def keep_split(table: Table, split: str) -> Table:
    """The rows of `table` whose `split` column holds `split`."""
    if SPLIT_COLUMN not in table.columns:
        raise CliError(
            f"{table.source}: no {SPLIT_COLUMN!r} column to pick the split {split!r} from; "
            f"the columns: {', '.join(table.columns)}"
        )
    kept = [i for i, row in enumerate(table.rows) if row[SPLIT_COLUMN] == split]
    if not kept:
        splits = sorted({str(row[SPLIT_COLUMN]) for row in table.rows})
        raise CliError(f"{table.source}: no rows of split {split!r}; the splits: {', '.join(splits)}")
    lines = None if table.lines is None else [table.lines[i] for i in kept]
    return Table(table.source, table.columns, [table.rows[i] for i in kept], lines, table.typed)


def pick_columns(table: Table, columns: Columns) -> tuple[list[str], str | None]:
    """(text columns in order, the label column or None) of `table`, as `columns` names them."""
    named = [*(columns.texts or ()), *([columns.label] if columns.label else [])]
    unknown = [name for name in named if name not in table.columns]
    if unknown:
        raise CliError(
            f"{table.source}: no column {', '.join(map(repr, unknown))}; "
            f"the file's columns: {', '.join(table.columns)}"
        )
    label = columns.label
    if label is None:
        found = [c for c in table.columns if c in LABEL_COLUMNS and c not in (columns.texts or ())]
        if len(found) > 1:
            raise CliError(f"{table.source}: several label columns {found}; keep one or name it")
        label = found[0] if found else None
    if columns.texts:
        return list(columns.texts), label
    skipped = {label, SPLIT_COLUMN if columns.split is not None else None}
    texts = [c for c in table.columns if c not in skipped]
    if not texts:
        raise CliError(f"{table.source}: no text column")
    return texts, label


def text_value(table: Table, index: int, column: str) -> str:
    """The text in row `index`, column `column`; a CliError when it is not a string."""
    value = table.rows[index][column]
    if not isinstance(value, str):
        raise CliError(
            f"{table.where(index)}, column {column!r}: a text must be a string, got {shown(value)}"
        )
    return value


def label_value(table: Table, index: int, column: str) -> int | float:
    """The label in row `index`, column `column` as an int ("1", 1, true) or a float ("0.8", 0.8).

    TSV / CSV labels are parsed from their text; JSON Lines and dataset labels must already be
    numbers. Either way the label must be finite.
    """
    raw = table.rows[index][column]
    value = raw if table.typed else parse_number(raw)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return value
    raise CliError(
        f"{table.where(index)}, column {column!r}: a label must be a finite number, got {shown(raw)}"
    )


def parse_number(text: str) -> int | float | str:
    """`text` as an int or a float when it reads as one, else `text` itself."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def shown(value: Any) -> str:
    """`value` as JSON writes it (null, 123, ["a"], "text"), or its repr when JSON cannot."""
    return json.dumps(value, ensure_ascii=False, default=repr)


def read_examples(path: str, columns: Columns | None = None) -> list:
    """InputExamples of a data file: the texts of the text columns and the label of the label column.

    Args:
        path: a data file or saved dataset folder (see `read_table`).
        columns: which columns and split to read; None: the convention (see the module docstring).
    """
    from jaxst.training.data import InputExample

    columns = columns or Columns()
    table = read_table(path)
    if columns.split is not None:
        table = keep_split(table, columns.split)
    texts, label = pick_columns(table, columns)
    examples = [
        InputExample(
            texts=[text_value(table, index, c) for c in texts],
            label=None if label is None else label_value(table, index, label),
        )
        for index in range(len(table.rows))
    ]
    if not examples:
        raise CliError(f"{path}: no data rows")
    return examples


def add_column_arguments(parser: argparse.ArgumentParser, files: str) -> None:
    """Adds --text-columns and --label-column (alias --score-column), naming the columns of `files`."""
    parser.add_argument(
        "--text-columns",
        nargs="+",
        metavar="COLUMN",
        help=f"the text columns of {files}, in order (default: every column but the label column, "
        "and but the split column when a split is picked)",
    )
    parser.add_argument(
        "--label-column",
        "--score-column",
        dest="label_column",
        metavar="COLUMN",
        help=f"the label / score column of {files} (default: the one named label, labels, score or scores)",
    )
