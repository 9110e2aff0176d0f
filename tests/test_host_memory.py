"""jaxst.host_memory: freed large blocks go back to the system once `return_large_blocks` has run; kept
for reuse inside `keep_freed_memory`; JAX's CPU dispatch made synchronous before a backend exists."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jaxst import host_memory

REPOSITORY = Path(__file__).resolve().parents[1]

# In a fresh interpreter: a worker thread frees a 24 MiB block (glibc then raises its mmap threshold to
# that size), then allocates and frees 8 MiB blocks; printed is how much the resident size grew (MiB).
# The start of each script below: jaxst.host_memory (its path the first argument) and the resident size.
PRELUDE = """
import importlib.util, resource, sys, threading
spec = importlib.util.spec_from_file_location("host_memory", sys.argv[1])  # without importing jax
host_memory = importlib.util.module_from_spec(spec)
spec.loader.exec_module(host_memory)
def resident_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
"""

SCRIPT = (
    PRELUDE
    + """
import numpy as np
if sys.argv[2] == "on":
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
)


def printed(script: str, *argv: str, **environment: str) -> list[str]:
    """The words the last line of `script`'s output holds, run in a fresh interpreter at the repository's
    root with `argv`, in this process's environment less JAXST_CPU_ASYNC_DISPATCH plus `environment`."""
    env = {k: v for k, v in os.environ.items() if k != "JAXST_CPU_ASYNC_DISPATCH"} | environment
    result = subprocess.run(
        [sys.executable, "-c", script, *argv],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
        env=env,
        cwd=REPOSITORY,
    )
    return result.stdout.strip().splitlines()[-1].split()


def resident_growth(mode: str) -> int:
    return int(printed(SCRIPT, host_memory.__file__, mode)[0])


GLIBC_ON_LINUX = host_memory._libc() is not None and sys.platform == "linux"


@pytest.mark.skipif(
    not GLIBC_ON_LINUX, reason="mallopt and malloc_trim are glibc's (elsewhere host_memory does nothing)"
)
def test_freed_large_blocks_stay_resident_by_default_and_are_returned_after_return_large_blocks():
    assert resident_growth("off") >= 8  # the reference: glibc keeps the freed 8 MiB block
    assert resident_growth("on") < 2


# In a fresh interpreter: a 192 MiB block (a bytearray: malloc, then every page written) allocated and
# freed twice in the context, then once after it. Printed: the minor page faults of the second allocation,
# and how much the resident size had grown (MiB) with the block freed inside the context, after the
# context, and after the last block was freed.
KEEP_SCRIPT = (
    PRELUDE
    + """
def faults_of_one_block():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = bytearray(192 << 20)
    del block
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
base = resident_mib()
with host_memory.keep_freed_memory():
    faults_of_one_block()
    faults = faults_of_one_block()
    kept = resident_mib() - base
returned = resident_mib() - base
faults_of_one_block()
print(faults, kept, returned, resident_mib() - base)
"""
)


@pytest.mark.skipif(
    not GLIBC_ON_LINUX, reason="mallopt and malloc_trim are glibc's (elsewhere host_memory does nothing)"
)
def test_keep_freed_memory_reuses_a_freed_large_block_and_restores_the_defaults_after():
    faults, kept, returned, after = map(int, printed(KEEP_SCRIPT, host_memory.__file__))
    assert faults < (192 << 20) // 4096 // 20  # the heap kept the block: no page faulted in again
    assert kept >= 160  # ... and it stayed resident while freed
    assert returned < 32  # handed back when the context ended
    assert after < 32  # the defaults again: a block that large is unmapped when freed


# Fresh interpreters: each prints JAX's asynchronous CPU dispatch option at its end.
CALL = "from jaxst.host_memory import run_cpu_programs_on_the_calling_thread as call\n"
READ = 'print(jax.config.read("jax_cpu_enable_async_dispatch"))'
BEFORE_ANY_BACKEND = "import jax\n" + CALL + "call()\njax.devices()\n" + READ
AFTER_A_BACKEND = "import jax\njax.devices()\n" + CALL + "call()\n" + READ
# Before JAX is imported it does nothing (importing JAX would slow `jaxst --help`).
BEFORE_JAX = CALL + "import sys\ncall()\nassert 'jax' not in sys.modules\nimport jax\n" + READ
# `import jaxst` after JAX, then JAX work before the first model (as benchmarks/train.py does).
PACKAGE_AFTER_JAX = "import jax, jaxst\njax.devices()\n" + READ


@pytest.mark.parametrize(
    ("script", "environment", "asynchronous"),
    [
        (BEFORE_ANY_BACKEND, {}, "False"),
        (AFTER_A_BACKEND, {}, "True"),
        (BEFORE_ANY_BACKEND, {"JAXST_CPU_ASYNC_DISPATCH": "1"}, "True"),
        (BEFORE_JAX, {}, "True"),
        (PACKAGE_AFTER_JAX, {}, "False"),
    ],
)
def test_cpu_programs_run_on_the_calling_thread_unless_a_backend_exists_or_the_user_chose(
    script, environment, asynchronous
):
    assert printed(script, **environment) == [asynchronous]


def test_a_process_that_imports_jaxst_models_runs_cpu_programs_on_the_calling_thread(tiny_folder):
    """As in the tutorial: `from jaxst import ...` before any JAX work, then a model."""
    script = "import sys, jax\nfrom jaxst import SentenceTransformer\nSentenceTransformer(sys.argv[1])\n"
    script += 'print(jax.config.read("jax_cpu_enable_async_dispatch"))'
    assert printed(script, str(tiny_folder)) == ["False"]
