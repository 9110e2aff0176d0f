"""Test-wide JAX settings: fake CPU devices, highest matmul precision, one compilation cache per test
process, compiled programs freed per module.

Devices: the tests marked `multi_device` need 8 devices (data-parallel steps, pmap, negatives gathered
across devices); the others run on as many devices as the process has. `JAXST_TEST_DEVICES` sets the
count of fake CPU devices (default 8, so that a plain `pytest` runs every test). scripts/test.sh runs the
unmarked tests on one device, where fit on the real model needs a fraction of the memory and time (each
device holds its own copy of the parameters and optimizer state), and the marked ones in a second run
with 8, each run in pytest-xdist worker processes. Device count and matmul precision must be set before
JAX initialises its backends, hence here.
"""

import atexit
import gc
import os
import shutil
import tempfile

import pytest

# Collection imports torch, transformers, JAX and the test modules: some 650,000 objects that live as long
# as the process, and no garbage worth a collection. pytest_collection_finish turns the collector back on.
gc.disable()

MULTI_DEVICE_COUNT = 8
# XLA aborts the process when a replica waits at a collective longer than a time limit; on a loaded
# 2-core machine 8 fake devices take turns on the cores, and one that waits for the others can exceed it.
COLLECTIVE_TIMEOUT_SECONDS = 3600
os.environ.setdefault(
    "XLA_FLAGS",
    f"--xla_force_host_platform_device_count={os.environ.get('JAXST_TEST_DEVICES', MULTI_DEVICE_COUNT)} "
    f"--xla_cpu_collective_call_terminate_timeout_seconds={COLLECTIVE_TIMEOUT_SECONDS}",
)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Nothing the tests run writes to the user's cache folder (subprocesses, e.g. the command line, inherit
# this); the run's own cache is below.
os.environ.setdefault("JAXST_COMPILATION_CACHE", "off")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import jax  # noqa: E402

from jaxst.host_memory import release_free_memory  # noqa: E402
from tests.training.tiny_st import make_tiny_st_model  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")
# One persistent compilation cache for the process (an xdist worker: JAX writes cache files in place, so
# workers do not share one), empty at its start and removed at its end: tests that fit or encode the same
# tiny models at the same shapes load each other's programs instead of compiling them again (a tenth of
# the training tests' time), and no program from an earlier run or the user's cache is seen. The tests of
# the cache itself run in subprocesses with folders of their own.
RUN_COMPILATION_CACHE = tempfile.mkdtemp(prefix="jaxst-tests-xla-")
atexit.register(shutil.rmtree, RUN_COMPILATION_CACHE, ignore_errors=True)
jax.config.update("jax_compilation_cache_dir", RUN_COMPILATION_CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)


@pytest.hookimpl(trylast=True)  # after -m / -k have deselected items
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Selecting a multi_device test in a process with fewer devices is a usage error, not a failure."""
    needing = [item.nodeid for item in items if item.get_closest_marker("multi_device")]
    if needing and jax.local_device_count() < MULTI_DEVICE_COUNT:
        raise pytest.UsageError(
            f"{len(needing)} selected tests need {MULTI_DEVICE_COUNT} devices (e.g. {needing[0]}) and this "
            f"process has {jax.local_device_count()}: run them with JAXST_TEST_DEVICES={MULTI_DEVICE_COUNT} "
            "or deselect them with -m 'not multi_device'."
        )


def pytest_collection_finish(session: pytest.Session) -> None:
    """Keeps the garbage collector off what collection imported (torch, transformers, JAX, the test modules).

    Those objects live as long as the process, yet every full collection walked all of them again: over a
    second per collection, once per test module and whenever Python starts one itself. Frozen, they are left
    out of collections; objects made later are collected as before, from here on.
    """
    gc.collect()
    gc.freeze()
    gc.enable()


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory):
    """The tiny model of tests.training.tiny_st (max_seq_length 16), saved once for the whole run.

    Read-only: a test that changes a model's files copies the folder first.
    """
    return make_tiny_st_model(tmp_path_factory.mktemp("tiny"), max_seq_length=16)


@pytest.fixture(autouse=True, scope="module")
def free_compiled_programs():
    """After each test module: drop JAX's compiled programs and hand the freed memory back to the system.

    Programs compiled for one module's models and shapes are rarely met again, yet each keeps its code
    and buffers resident; over the whole suite they add up to gigabytes. What survives the module's
    collection (modules imported on first use, session fixtures) lives on, and is frozen as collection's
    imports are (`pytest_collection_finish`), so that the next module's collections walk only its own.
    """
    yield
    jax.clear_caches()
    gc.collect()
    gc.freeze()
    release_free_memory()
