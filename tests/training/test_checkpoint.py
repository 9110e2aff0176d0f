"""Checkpointer: bit-exact restore, newest-N retention, interrupted saves leave the last one usable."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from flax import nnx, struct

from jaxst.training.checkpoint import Checkpointer, CorruptCheckpointError
from jaxst.training.data import DataLoader, InputExample
from jaxst.training.optim import make_optimizer

REPO = Path(__file__).resolve().parents[2]


@struct.dataclass
class State:
    """A train state as fit keeps one: parameters (encoder + loss), optimizer state, step, rng keys."""

    params: Any
    opt_state: Any
    step: jax.Array
    rng: jax.Array
    dropout_key: jax.Array


def make_state(seed: int, steps: int = 2) -> State:
    """A state after `steps` real AdamW updates, so that every optimizer leaf holds non-trivial bits."""
    rng = np.random.default_rng(seed)
    encoder = nnx.State(
        {
            "embeddings": {"embedding": nnx.Param(jnp.asarray(rng.normal(size=(7, 4)), jnp.float32))},
            "LayerNorm": {"scale": nnx.Param(jnp.asarray(rng.normal(size=4), jnp.float32))},
            "dense": {"kernel": nnx.Param(jnp.asarray(rng.normal(size=(4, 4)), jnp.bfloat16))},
        }
    )
    params = {
        "model": encoder,
        "losses": [{"classifier": jnp.asarray(rng.normal(size=(12, 3)), jnp.float32)}],
    }
    tx = make_optimizer(params, lr=1e-3, scheduler="warmuplinear", warmup_steps=1, total_steps=10)
    opt_state = tx.init(params)

    @jax.jit
    def update(params: Any, opt_state: Any, grads: Any) -> tuple[Any, Any]:
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    for _ in range(steps):
        grads = jax.tree.map(lambda p: np.asarray(rng.normal(size=p.shape)).astype(p.dtype), params)
        params, opt_state = update(params, opt_state, grads)
    return State(
        params=params,
        opt_state=opt_state,
        step=jnp.asarray(steps, jnp.int32),
        rng=jax.random.PRNGKey(seed),
        dropout_key=jax.random.key(seed + 1),
    )


def assert_bit_identical(a: Any, b: Any) -> None:
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        assert np.array_equal(np.asarray(x), np.asarray(y))


def test_restore_is_bit_identical_with_metadata(tmp_path):
    state = make_state(0)
    loader = DataLoader([InputExample(texts=[str(i)]) for i in range(10)], batch_size=3, shuffle=True)
    next(iter(loader))
    metadata = {"epoch": 0, "data": [loader.state_dict()], "best_score": 0.25}
    with Checkpointer(tmp_path / "ckpt") as checkpointer:
        path = checkpointer.save(2, state, metadata=metadata)
        assert path == tmp_path / "ckpt" / "2" and path.is_dir()
    with Checkpointer(tmp_path / "ckpt") as checkpointer:  # a new process would open it like this
        restored, restored_metadata = checkpointer.restore(make_state(99))
    assert_bit_identical(restored, state)
    assert type(restored) is State and isinstance(restored.params["model"], nnx.State)
    assert restored_metadata == metadata
    assert restored.params["model"]["dense"]["kernel"][...].dtype == jnp.bfloat16


def test_save_total_limit_keeps_the_newest(tmp_path):
    state = make_state(1)
    with Checkpointer(tmp_path, save_total_limit=2) as checkpointer:
        for step in (5, 10, 15, 20):
            checkpointer.save(step, state, metadata={"step": step})
            assert checkpointer.latest_step() == step
        assert checkpointer.all_steps() == [15, 20]
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.isdigit()) == ["15", "20"]
        _, metadata = checkpointer.restore(state, step=15)
        assert metadata == {"step": 15}
    with Checkpointer(tmp_path / "all") as keep_all:
        for step in (1, 2, 3):
            keep_all.save(step, state)
        assert keep_all.all_steps() == [1, 2, 3]


def test_restore_and_save_errors_name_the_problem(tmp_path):
    state = make_state(2)
    with Checkpointer(tmp_path) as checkpointer:
        assert checkpointer.latest_step() is None
        with pytest.raises(FileNotFoundError, match="No checkpoint in"):
            checkpointer.restore(state)
        checkpointer.save(3, state)
        with pytest.raises(FileNotFoundError, match=r"No checkpoint of step 4 .*checkpoints: \[3\]"):
            checkpointer.restore(state, step=4)
        with pytest.raises(FileExistsError, match="Cannot save step 3"):
            checkpointer.save(3, state)
        wrong_dtype = state.replace(step=state.step.astype(jnp.float32))
        with pytest.raises(ValueError, match=r"Leaf \.step .* dtype int32; the given state .* dtype float32"):
            checkpointer.restore(wrong_dtype)
        wrong_shape = state.replace(rng=jnp.zeros(4, jnp.uint32))
        with pytest.raises(ValueError, match=r"Leaf \.rng .* shape \[2\]"):
            checkpointer.restore(wrong_shape)
        with pytest.raises(ValueError, match=r"leaves only in the checkpoint \['\.dropout_key'"):
            checkpointer.restore({"params": state.params, "opt_state": state.opt_state})
    with pytest.raises(ValueError, match="save_total_limit must be >= 0"):
        Checkpointer(tmp_path, save_total_limit=-1)


def flip_byte(path: Path, position: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 0x10
    path.write_bytes(bytes(data))


def test_a_state_altered_on_disk_never_restores_silently(tmp_path):
    """A flipped byte anywhere in the state's files: the restored state is the saved one, or the error
    names the checkpoint folder (a checksum mismatch names the leaf)."""
    state = make_state(7)
    # Small arrays are stored inside orbax's index nodes, which carry their own checksums; a larger one
    # lies in a data file whose bytes orbax reads back without checking them.
    big = np.random.default_rng(7).normal(size=(64, 32)).astype(np.float32)
    state = state.replace(params={**state.params, "big": jnp.asarray(big)})
    saved, altered = tmp_path / "saved", tmp_path / "altered"
    with Checkpointer(saved) as checkpointer:
        checkpointer.save(1, state, metadata={"step": 1})
    files = sorted(path.relative_to(saved) for path in (saved / "1" / "state").rglob("*") if path.is_file())
    outcomes = []
    for relative in files:
        size = (saved / relative).stat().st_size
        for position in sorted({0, size // 3, size // 2, size - 1}):
            shutil.rmtree(altered, ignore_errors=True)
            shutil.copytree(saved, altered)
            flip_byte(altered / relative, position)
            with Checkpointer(altered) as checkpointer:
                try:
                    restored, _ = checkpointer.restore(state)
                except CorruptCheckpointError as error:
                    assert str(altered / "1") in str(error)
                    outcomes.append("leaf" if "differs from what was saved" in str(error) else "unreadable")
                else:
                    assert_bit_identical(restored, state)
                    outcomes.append("unchanged")
    assert {"leaf", "unreadable"} <= set(outcomes)  # both kinds of damage occurred and were caught


def meta_file(step_dir: Path) -> Path:
    return step_dir / "meta" / "metadata"


def test_edited_metadata_are_refused_naming_the_checkpoint(tmp_path):
    state = make_state(8)
    loader = DataLoader([InputExample(texts=[str(i)]) for i in range(10)], batch_size=3)
    with Checkpointer(tmp_path) as checkpointer:
        checkpointer.save(1, state, metadata={"epoch": 0, "data": [loader.state_dict()]})
        meta = json.loads(meta_file(tmp_path / "1").read_text())
        meta["metadata"]["data"][0]["batch_index"] = 2
        meta_file(tmp_path / "1").write_text(json.dumps(meta))
        with pytest.raises(
            CorruptCheckpointError, match=f"checkpoint {tmp_path / '1'} was altered on disk: its metadata"
        ):
            checkpointer.restore(state)
        meta_file(tmp_path / "1").write_text("{not json")
        with pytest.raises(
            CorruptCheckpointError, match=f"Cannot read the metadata of the checkpoint {tmp_path / '1'}"
        ):
            checkpointer.restore(state)


def test_a_checkpoint_without_checksums_restores_with_a_warning(tmp_path, caplog):
    """As a checkpoint written before checksums existed: restored unverified, and the log says so."""
    state = make_state(9)
    with Checkpointer(tmp_path) as checkpointer:
        checkpointer.save(1, state, metadata={"step": 1})
        meta = json.loads(meta_file(tmp_path / "1").read_text())
        del meta["sha256"]
        for spec in meta["leaves"].values():
            del spec["sha256"]
        meta_file(tmp_path / "1").write_text(json.dumps(meta))
        with caplog.at_level(logging.WARNING, logger="jaxst.training.checkpoint"):
            restored, metadata = checkpointer.restore(make_state(0))
    assert_bit_identical(restored, state)
    assert metadata == {"step": 1}
    assert f"The checkpoint {tmp_path / '1'} has no checksum" in caplog.text


def fail_while_writing(*args, **kwargs):
    raise OSError("disk full (simulated) while writing the checkpoint")


def test_a_save_that_fails_midway_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    first, second = make_state(3), make_state(4)
    with Checkpointer(tmp_path, save_total_limit=1) as checkpointer:
        checkpointer.save(1, first, metadata={"step": 1})
        with monkeypatch.context() as patch:
            patch.setattr(ocp.handlers.JsonCheckpointHandler, "_save_fn", fail_while_writing)
            with pytest.raises(OSError, match="simulated"):
                checkpointer.save(2, second)
        assert checkpointer.all_steps() == [1]
        restored, metadata = checkpointer.restore(second)
        assert_bit_identical(restored, first)
        assert metadata == {"step": 1}
        checkpointer.save(2, second)  # the same checkpointer goes on after the failure
    with Checkpointer(tmp_path) as reopened:
        assert reopened.all_steps() == [2]
        assert_bit_identical(reopened.restore(first)[0], second)


CRASHING_WRITER = """
import os, signal, sys
from orbax.checkpoint._src.path import atomicity
from jaxst.training.checkpoint import Checkpointer, CorruptCheckpointError
from tests.training.test_checkpoint import make_state

directory = sys.argv[1]
checkpointer = Checkpointer(directory, save_total_limit=1)
checkpointer.save(1, make_state(5), metadata={"step": 1})

async def killed(*args, **kwargs):
    walk = os.walk(directory)
    print("\\n".join(sorted(os.path.relpath(os.path.join(d, f), directory) for d, _, fs in walk for f in fs)))
    os.kill(os.getpid(), signal.SIGKILL)

# Killed once arrays and JSON are written into temporary folders, before the renames that commit them.
# (A failure earlier in the write is test_a_save_that_fails_midway_leaves_the_previous_checkpoint.)
atomicity.AtomicRenameTemporaryPath.finalize = killed
checkpointer.save(2, make_state(6), metadata={"step": 2})
"""


def test_a_process_killed_while_saving_leaves_the_previous_checkpoint(tmp_path):
    directory = tmp_path / "ckpt"
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", CRASHING_WRITER, str(directory)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    files_at_kill = result.stdout.split()
    in_flight = [f for f in files_at_kill if f.startswith("2")]
    assert in_flight and all(f.startswith("2.orbax-checkpoint-tmp") for f in in_flight)
    assert any("/state" in f and "/ocdbt" in f for f in in_flight)  # arrays and JSON were written
    assert any("/meta" in f for f in in_flight)
    with Checkpointer(directory, save_total_limit=1) as checkpointer:
        assert checkpointer.latest_step() == 1
        restored, metadata = checkpointer.restore(make_state(0))
        assert_bit_identical(restored, make_state(5))
        assert metadata == {"step": 1}
        assert not [name for name in os.listdir(directory) if "tmp" in name]  # leftovers cleaned up
        checkpointer.save(2, make_state(6), metadata={"step": 2})
        assert checkpointer.all_steps() == [2]
