"""User-facing command-line errors: one line, no traceback."""

from __future__ import annotations

from pathlib import Path


class CliError(Exception):
    """An error the user can fix; the command prints its message alone and exits with status 2."""


def one_line(message: str) -> str:
    """`message` on one line: its non-blank lines joined by "; " (library errors may span lines)."""
    return "; ".join(line.strip() for line in message.splitlines() if line.strip())


def load_model(path: str, dtype: str = "float32"):
    """A jaxst SentenceTransformer from a folder, or a CliError saying what is wrong with the folder."""
    from jaxst import SentenceTransformer

    if not Path(path).is_dir():
        raise CliError(f"model folder not found: {path}")
    try:
        return SentenceTransformer(path, dtype=dtype)
    except (OSError, ValueError, KeyError) as error:
        raise CliError(f"cannot load the model in {path}: {error}") from None


def set_max_seq_length(model, length: int) -> None:
    """Sets `model.max_seq_length`, or raises a CliError when the model refuses it (too few positions)."""
    try:
        model.max_seq_length = length
    except ValueError as error:
        raise CliError(f"--max-seq-length {length}: {error}") from None
