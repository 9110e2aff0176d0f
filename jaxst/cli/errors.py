"""User-facing command-line errors: one line, no traceback."""

from __future__ import annotations

from pathlib import Path


class CliError(Exception):
    """An error the user can fix; the command prints its message alone and exits with status 2."""


def existing_file(path: str, what: str) -> Path:
    """`path` as a Path, or a CliError naming `what` when it is not a file."""
    p = Path(path)
    if not p.is_file():
        raise CliError(f"{what} not found: {path}")
    return p


def load_model(path: str, dtype: str = "float32"):
    """A jaxst SentenceTransformer from a folder, or a CliError saying what is wrong with the folder."""
    from jaxst import SentenceTransformer

    if not Path(path).is_dir():
        raise CliError(f"model folder not found: {path}")
    try:
        return SentenceTransformer(path, dtype=dtype)
    except (OSError, ValueError, KeyError) as error:
        raise CliError(f"cannot load the model in {path}: {error}") from None
