"""jaxst.host_memory: freed large blocks go back to the system once `return_large_blocks` has run."""

import subprocess
import sys

import pytest

from jaxst import host_memory

# In a fresh interpreter: a worker thread frees a 24 MiB block (glibc then raises its mmap threshold to
# that size), then allocates and frees 8 MiB blocks; printed is how much the resident size grew (MiB).
SCRIPT = """
import importlib.util, sys, threading, numpy as np
spec = importlib.util.spec_from_file_location("host_memory", sys.argv[2])  # without importing jax
host_memory = importlib.util.module_from_spec(spec)
spec.loader.exec_module(host_memory)
def resident_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
if sys.argv[1] == "on":
    host_memory.return_large_blocks()
grown = {}
def work():
    for mib in (24, 8, 8, 8):
        block = np.ones(mib << 18, np.float32)
        del block
    grown["mib"] = resident_mib() - base
base = resident_mib()
thread = threading.Thread(target=work)
thread.start()
thread.join()
print(grown["mib"])
"""


def resident_growth(mode: str) -> int:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode, host_memory.__file__],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return int(result.stdout.strip())


GLIBC_ON_LINUX = host_memory._libc() is not None and sys.platform == "linux"


@pytest.mark.skipif(not GLIBC_ON_LINUX, reason="glibc's malloc on Linux only")
def test_freed_large_blocks_stay_resident_by_default_and_are_returned_after_return_large_blocks():
    assert resident_growth("off") >= 8  # the reference: glibc keeps the freed 8 MiB block
    assert resident_growth("on") < 2
