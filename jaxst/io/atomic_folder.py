"""Replacing a folder in one step: the new content is written into a hidden sibling, then swapped in.

`replace_folder(path, write, discarded)`:

1. makes `.NAME.tmp-XXXXXXXX` next to `path` (same parent, so no rename crosses file systems), with the
   mode of the folder it replaces;
2. calls `write(temporary_folder)`;
3. carries over every entry of the existing folder that `write` did not create and that is not among
   `discarded(existing_folder)`, as hard links (copies where a link cannot be made), so that both
   folders hold it until the swap and a file kept open for appending keeps writing into the new folder;
4. swaps the two folders: on Linux with `renameat2(RENAME_EXCHANGE)`, one atomic step; elsewhere, or on
   a file system without it, by renaming the old folder aside and the new one into place;
5. deletes the old folder.

An exception before the swap deletes the temporary folder and leaves `path` as it was. A process killed
at any point leaves `path` whole, old or new (in the two-rename fallback, killed between the renames,
the old folder is left under a hidden `.NAME.old-XXXXXXXX` name), and at worst a hidden temporary
folder next to it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os
import secrets
import shutil
import stat
from collections.abc import Callable, Collection
from pathlib import Path

AT_FDCWD = -100  # from Linux fcntl.h: paths relative to the current directory
RENAME_EXCHANGE = 2  # from Linux fs.h: renameat2 swaps the two paths
# renameat2 errors that mean "not available here", after which the two-rename fallback runs.
EXCHANGE_UNSUPPORTED = {errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP}


@functools.cache
def _renameat2() -> Callable[..., int] | None:
    """The C library's renameat2 (glibc 2.28 and later), or None."""
    try:
        function = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def exchange(first: Path, second: Path) -> bool:
    """Swaps two existing paths in one atomic step; False, changing nothing, where that is unavailable.

    Raises:
        OSError: for any other failure of renameat2 (naming the paths).
    """
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    if renameat2(AT_FDCWD, os.fsencode(first), AT_FDCWD, os.fsencode(second), RENAME_EXCHANGE) == 0:
        return True
    error = ctypes.get_errno()
    if error in EXCHANGE_UNSUPPORTED:
        return False
    raise OSError(error, os.strerror(error), str(first), None, str(second))


def replace_folder(
    path: str | Path,
    write: Callable[[Path], None],
    discarded: Callable[[Path], Collection[str]] = lambda folder: (),
) -> None:
    """Makes `path` a folder holding what `write` writes, plus the existing folder's other entries.

    Args:
        path: the folder to create or replace (a link to a folder: the folder it points to).
        write: fills the folder it is given.
        discarded: the names of the existing folder's entries not to carry over, given that folder.

    Raises:
        ValueError: for an empty path, or a folder that holds the current working directory.
        NotADirectoryError: when `path` exists and is not a folder.
    """
    if not str(path):
        raise ValueError("The folder path is empty; name a folder to save into.")
    folder = Path(path).resolve()
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{path} exists and is not a folder.")
    if Path.cwd().resolve().is_relative_to(folder):
        raise ValueError(f"{path} holds the current working directory, which cannot be replaced.")
    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = _make_sibling(folder, "tmp")
    try:
        write(temporary)
        if folder.is_dir():
            _carry_over(folder, temporary, set(discarded(folder)))
            os.chmod(temporary, stat.S_IMODE(folder.stat().st_mode))
        old = _swap_in(temporary, folder)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old)


def _sibling(folder: Path, kind: str) -> Path:
    """A hidden name next to `folder`: `.NAME.KIND-XXXXXXXX`, with 8 random hex digits."""
    return folder.with_name(f".{folder.name}.{kind}-{secrets.token_hex(4)}")


def _make_sibling(folder: Path, kind: str) -> Path:
    """Creates and returns an empty folder at a new `_sibling` name."""
    while True:
        sibling = _sibling(folder, kind)
        try:
            sibling.mkdir()
            return sibling
        except FileExistsError:
            continue


def _carry_over(source: Path, target: Path, discard: set[str]) -> None:
    """Links (or copies) into `target` the entries of `source` not in `discard` and not in `target`."""
    for entry in source.iterdir():
        destination = target / entry.name
        if entry.name in discard or destination.exists() or destination.is_symlink():
            continue
        if entry.is_symlink():
            os.symlink(os.readlink(entry), destination)
        elif entry.is_dir():
            shutil.copytree(entry, destination, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(entry, destination)


def _link_or_copy(source: str | Path, destination: str | Path) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def _swap_in(new: Path, folder: Path) -> Path | None:
    """Puts `new` at `folder`; returns where the replaced folder now is (to delete), or None."""
    if not folder.exists():
        new.rename(folder)
        return None
    if exchange(new, folder):
        return new
    old = _sibling(folder, "old")
    folder.rename(old)
    try:
        new.rename(folder)
    except BaseException:
        old.rename(folder)
        raise
    return old
