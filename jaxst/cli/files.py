"""The command line's files: inputs read as UTF-8 text, one text per line; outputs checked before any work.

An input that is missing, unreadable or not UTF-8, and an output whose folder does not exist, are
`CliError`s naming the path (and, for bad text, the line).
"""

from __future__ import annotations

from pathlib import Path

from jaxst.cli.errors import CliError


def existing_file(path: str | Path, what: str) -> Path:
    """`path` as a Path, or a CliError naming `what` when it is not a file."""
    p = Path(path)
    if not p.is_file():
        raise CliError(f"{what} not found: {path}")
    return p


def read_bytes(path: str | Path, what: str) -> bytes:
    """The bytes of an existing file, or a CliError naming `what` and the path."""
    p = existing_file(path, what)
    try:
        return p.read_bytes()
    except OSError as error:
        raise CliError(f"cannot read {what} {path}: {error.strerror or error}") from None


def decode_utf8(data: bytes, path: str | Path) -> str:
    """`data` decoded as UTF-8, or a CliError naming the file and the line of the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise CliError(
            f"{path}, line {line}: not UTF-8 text (byte 0x{data[error.start]:02x}); save the file as UTF-8"
        ) from None


def read_text(path: str | Path, what: str) -> str:
    """The text of a UTF-8 file (see `decode_utf8`), or a CliError naming `what` when it is missing."""
    return decode_utf8(read_bytes(path, what), path)


def text_lines(text: str) -> list[str]:
    """The lines of `text`, split on "\\n" and "\\r\\n" only.

    A final "\\n" ends the last line rather than starting an empty one ("a\\nb\\n" and "a\\nb" are both
    ["a", "b"]); an empty line elsewhere is an empty text ("a\\n\\nb" is ["a", "", "b"]). Every other
    character, form feeds and Unicode line separators (U+2028) included, belongs to its line, unlike
    `str.splitlines`.
    """
    if not text:
        return []
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def output_path(path: str | Path, what: str) -> Path:
    """`path` as a Path once its parent folder exists and it is not a folder itself, else a CliError."""
    p = Path(path)
    if not p.parent.is_dir():
        raise CliError(f"{what} {path}: the folder {p.parent} does not exist")
    if p.is_dir():
        raise CliError(f"{what} {path} is a folder; give a file name")
    return p


def output_folder(path: str | Path, what: str) -> Path:
    """`path` as a Path once its parent folder exists and it is not a file, else a CliError."""
    p = Path(path)
    if not p.parent.is_dir():
        raise CliError(f"{what} {path}: the folder {p.parent} does not exist")
    if p.exists() and not p.is_dir():
        raise CliError(f"{what} {path} is a file; give a folder")
    return p


def write_bytes(path: Path, data: bytes) -> None:
    """Writes `data` to `path`, or raises a CliError naming the path (e.g. a full disk)."""
    try:
        path.write_bytes(data)
    except OSError as error:
        raise CliError(f"cannot write {path}: {error.strerror or error}") from None
