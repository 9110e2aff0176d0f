"""Host memory around XLA's CPU programs: handed back to the operating system when encoding, kept for
reuse while training (glibc; elsewhere these do nothing).

XLA compiles and runs programs on worker threads, and glibc's malloc keeps what they free for reuse
instead of returning it:

- A program's temporary buffers (tens of MiB for an encode batch) are large enough to be mmap-ed and
  unmapped on free, but glibc then raises its mmap threshold to their size (up to 32 MiB), so every later
  one comes from, and stays in, a per-thread arena. `return_large_blocks` fixes the threshold at 1 MiB,
  so large blocks keep going back to the system when freed. It leaves the threshold alone when the
  process was started with `MALLOC_MMAP_THRESHOLD_` set.
- The compiler's scratch memory is many small blocks; `release_free_memory` (`malloc_trim(0)`, about
  10 ms) returns the free pages of every arena.

Training wants the opposite. XLA's CPU backend allocates each execution's temporary buffer anew and frees
it at the end: for MiniLM's train step 180 MB, most of it the gradients. A block that large is mmap-ed
whatever the threshold (glibc caps it at 32 MiB; a worker thread's arena cannot hold it at all), so every
step faulted its 44,000 pages in again: 60 ms of the 130 ms step of two short pairs, 12-20% of a batch-16
STS-B step (AMD EPYC, `benchmarks/README.md`). Hence, while a training run lasts (`keep_freed_memory`),
glibc serves every block from the main heap and keeps what is freed there, so the next step reuses it;
and the programs run on the thread that calls them (`run_cpu_programs_on_the_calling_thread`: JAX's
asynchronous CPU dispatch off), whose arena is that heap. JAX reads that option once, when it makes its
CPU backend, so jaxst sets it as early as it can: when `jaxst` is imported after JAX, else when
`jaxst.sentence_transformer` is (`from jaxst import SentenceTransformer`). A process whose JAX made its
backend before keeps asynchronous dispatch, and fit says so; JAXST_CPU_ASYNC_DISPATCH=1 keeps it too.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import sys
from collections.abc import Iterator

# mallopt parameter numbers and glibc's defaults, from its malloc.h and malloc.c.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4
DEFAULT_TRIM_THRESHOLD = 128 * 1024
DEFAULT_MMAP_MAX = 65536
LARGE_BLOCK_BYTES = 1 << 20
# mallopt takes an int: the largest trim threshold, i.e. never trim while training.
NEVER_TRIM = 2**31 - 1
# Set to one of ON_VALUES to keep JAX's asynchronous CPU dispatch.
ASYNC_DISPATCH_VARIABLE = "JAXST_CPU_ASYNC_DISPATCH"
ON_VALUES = ("1", "on", "true", "yes")


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


@contextlib.contextmanager
def keep_freed_memory() -> Iterator[None]:
    """While the block runs, glibc serves large blocks from the main heap instead of mmap (M_MMAP_MAX 0)
    and keeps freed memory at the heap's top (M_TRIM_THRESHOLD at its maximum); after it, glibc's default
    values for both (set, so glibc no longer adjusts its mmap threshold by itself, as after
    `return_large_blocks`), and the free pages go back to the system (`release_free_memory`). A process
    started with MALLOC_MMAP_MAX_ or MALLOC_TRIM_THRESHOLD_ keeps its own settings."""
    libc = _libc()
    if libc is None or {"MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_"} & os.environ.keys():
        yield
        return
    libc.mallopt(M_MMAP_MAX, 0)
    libc.mallopt(M_TRIM_THRESHOLD, NEVER_TRIM)
    try:
        yield
    finally:
        libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
        libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
        release_free_memory()


def run_cpu_programs_on_the_calling_thread() -> None:
    """Turns JAX's asynchronous CPU dispatch off (`jax_cpu_enable_async_dispatch`), so that XLA's CPU
    programs run on, and allocate from the arena of, the thread that calls them. JAX reads the option
    when it makes its CPU backend: this does nothing once a backend exists, before JAX is imported (it
    would import it), or when JAXST_CPU_ASYNC_DISPATCH is on."""
    jax = sys.modules.get("jax")
    if jax is None or os.environ.get(ASYNC_DISPATCH_VARIABLE, "").strip().lower() in ON_VALUES:
        return
    from jax._src import xla_bridge

    if not xla_bridge.backends_are_initialized():
        jax.config.update("jax_cpu_enable_async_dispatch", False)
