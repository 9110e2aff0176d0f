"""The persistent compilation cache: on by default in the user's cache folder, moved or turned off by
JAXST_COMPILATION_CACHE, and a second process loads what the first compiled."""

import os
import subprocess
import sys

import pytest

from tests.st.tiny_st import build_torch_model, save_tiny_encoder

# With a model folder: a model is made (which turns the cache on) and encodes one text; without one,
# only the cache is set up. Printed: the folder JAX caches in, and how many programs came from the cache.
SCRIPT = """
import sys
import jax
from jax import monitoring
hits = []
monitoring.register_event_listener(lambda event, **_: hits.append(event) if "cache_hits" in event else None)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
import jaxst
from jaxst.compilation_cache import enable_compilation_cache
if len(sys.argv) > 1:
    jaxst.SentenceTransformer(sys.argv[1]).encode(["a cached program"])
else:
    enable_compilation_cache()
print(jax.config.jax_compilation_cache_dir, len(hits))
"""


def run(folder=None, **environment) -> tuple[str, int]:
    env = {k: v for k, v in os.environ.items() if k != "JAXST_COMPILATION_CACHE"} | environment
    argv = [sys.executable, "-c", SCRIPT] + ([] if folder is None else [str(folder)])
    out = subprocess.run(argv, capture_output=True, text=True, env=env, check=True).stdout.split()
    return out[-2], int(out[-1])


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cached")
    build_torch_model(save_tiny_encoder(folder / "encoder"), folder / "model")
    return folder / "model"


def test_default_folder_is_the_users_cache_and_a_second_run_compiles_nothing(model_folder, tmp_path):
    first_dir, first_hits = run(model_folder, XDG_CACHE_HOME=str(tmp_path))
    assert first_dir == str(tmp_path / "jaxst" / "xla") and first_hits == 0
    assert any((tmp_path / "jaxst" / "xla").iterdir())
    second_dir, second_hits = run(model_folder, XDG_CACHE_HOME=str(tmp_path))
    assert second_dir == first_dir and second_hits > 0


def test_environment_variable_moves_or_turns_off_the_cache(model_folder, tmp_path):
    assert run(model_folder, JAXST_COMPILATION_CACHE=str(tmp_path / "elsewhere"))[0] == str(
        tmp_path / "elsewhere"
    )
    assert (
        run(model_folder, JAXST_COMPILATION_CACHE="off", XDG_CACHE_HOME=str(tmp_path / "home"))[0] == "None"
    )
    assert not (tmp_path / "home").exists()


def test_a_folder_given_to_jax_is_kept(model_folder, tmp_path):
    assert run(model_folder, JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax"))[0] == str(tmp_path / "jax")


BOUND_SCRIPT = """
import jax
from jaxst.compilation_cache import enable_compilation_cache
enable_compilation_cache()
print(jax.config.jax_persistent_cache_min_compile_time_secs)
"""


def min_compile_seconds(**environment) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAXST_", "JAX_"))} | environment
    argv = [sys.executable, "-c", BOUND_SCRIPT]
    return float(subprocess.run(argv, capture_output=True, text=True, env=env, check=True).stdout.split()[-1])


def test_jaxst_lowers_the_cache_bound_unless_it_was_set(tmp_path):
    from jaxst.compilation_cache import MIN_COMPILE_SECONDS

    assert min_compile_seconds(JAXST_COMPILATION_CACHE=str(tmp_path)) == MIN_COMPILE_SECONDS < 1.0
    set_by_user = {
        "JAXST_COMPILATION_CACHE": str(tmp_path),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "2",
    }
    assert min_compile_seconds(**set_by_user) == 2.0
    assert min_compile_seconds(JAX_COMPILATION_CACHE_DIR=str(tmp_path)) == 1.0  # JAX's folder, JAX's bound
