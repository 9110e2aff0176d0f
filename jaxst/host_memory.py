"""Handing freed host memory back to the operating system (glibc; elsewhere these do nothing).

XLA compiles and runs programs on worker threads, and glibc's malloc keeps what they free for reuse
instead of returning it:

- A program's temporary buffers (tens of MiB for an encode batch) are large enough to be mmap-ed and
  unmapped on free, but glibc then raises its mmap threshold to their size (up to 32 MiB), so every later
  one comes from, and stays in, a per-thread arena. `return_large_blocks` fixes the threshold at 1 MiB,
  so large blocks keep going back to the system when freed. It leaves the threshold alone when the
  process was started with `MALLOC_MMAP_THRESHOLD_` set.
- The compiler's scratch memory is many small blocks; `release_free_memory` (`malloc_trim(0)`, about
  10 ms) returns the free pages of every arena.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

M_MMAP_THRESHOLD = -3  # mallopt parameter number, from glibc's malloc.h
LARGE_BLOCK_BYTES = 1 << 20


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library when it is glibc (it has malloc_trim and mallopt), else None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


def release_free_memory() -> None:
    """Returns the free pages of every malloc arena to the operating system."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


@functools.cache
def return_large_blocks() -> None:
    """From now on, blocks of 1 MiB or more are mmap-ed and go back to the system when freed (once)."""
    libc = _libc()
    if libc is not None and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        libc.mallopt(M_MMAP_THRESHOLD, LARGE_BLOCK_BYTES)
