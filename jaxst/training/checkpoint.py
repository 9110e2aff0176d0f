"""Training checkpoints with orbax-checkpoint: atomic, bit-exact, newest N kept.

A checkpoint is the folder `<directory>/<step>/` holding
- `state/`: any pytree of arrays (the train state: parameters, optimizer state, step, rng key, loss
  parameters), written with orbax's StandardSave; typed PRNG keys are stored as their key data;
- `meta/`: JSON: the caller's metadata (data-loader positions, epoch, ...), the shape, dtype and sha256
  of every state leaf, so that restoring into a different structure fails with the leaf's path, and a
  sha256 of all that (`"sha256"`).

Restoring verifies both checksums: a checkpoint altered on disk (a flipped bit in an array file, an
edited position) is a `CorruptCheckpointError` naming its folder (and the first leaf that differs),
as is a file orbax cannot read. A checkpoint written before checksums existed (no `"sha256"`) is
restored unverified, with a warning.

Orbax writes each checkpoint into a temporary folder and renames it to `<step>` once complete, so a
save interrupted at any point (exception, kill, power loss) leaves the previous checkpoints intact and
never a half-written `<step>`; leftover temporary folders are removed when a `Checkpointer` opens the
directory. Saves are synchronous. In a multi-process run every process calls `save` and `restore`
with its state, as orbax requires: a replicated one (pmap-replicated states are saved unreplicated), or a
sharded one, of which each process writes and reads the shards it holds (`fit(mesh=...)`). The checksums
read each leaf whole, one leaf at a time (gathered from the other processes where this one holds part).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxst.training.parallel import to_host

logger = logging.getLogger(__name__)

# How long a failed save waits for orbax's writer threads it started.
_FAILED_SAVE_JOIN_SECONDS = 60.0


class CorruptCheckpointError(ValueError):
    """A checkpoint's files do not hold what was saved: altered, truncated or unreadable."""


def _leaf_specs(state: Any) -> dict[str, dict[str, Any]]:
    """{path: {"shape", "dtype"}} of every leaf, the paths as jax.tree_util.keystr writes them."""
    leaves = jax.tree_util.tree_flatten_with_path(state)[0]
    return {
        jax.tree_util.keystr(path): {
            "shape": list(jax.numpy.shape(leaf)),
            "dtype": str(jax.numpy.result_type(leaf)),
        }
        for path, leaf in leaves
    }


def _leaf_digests(state: Any) -> dict[str, str]:
    """{path: sha256 of the leaf's dtype, shape and bytes} (a typed PRNG key: of its key data)."""
    digests = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        if jax.dtypes.issubdtype(jax.numpy.result_type(leaf), jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        array = to_host(leaf)
        digest = hashlib.sha256(f"{array.dtype}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
        digests[jax.tree_util.keystr(path)] = digest.hexdigest()
    return digests


def _meta_digest(meta: Mapping[str, Any]) -> str:
    """sha256 of the JSON of `meta` without its own "sha256" (keys sorted: what a JSON round trip keeps)."""
    body = {key: value for key, value in meta.items() if key != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _check_matches(saved: Mapping[str, Any], like: Any, step_dir: Path) -> None:
    saved = {path: {"shape": spec["shape"], "dtype": spec["dtype"]} for path, spec in saved.items()}
    wanted = _leaf_specs(like)
    missing = sorted(set(saved) - set(wanted))
    unexpected = sorted(set(wanted) - set(saved))
    if missing or unexpected:
        raise ValueError(
            f"The checkpoint {step_dir} does not match the state structure given to restore: leaves only in "
            f"the checkpoint {missing[:5]}, leaves only in the given state {unexpected[:5]}."
        )
    for path, spec in wanted.items():
        if saved[path] != spec:
            raise ValueError(
                f"Leaf {path} of the checkpoint {step_dir} has shape {saved[path]['shape']} and dtype "
                f"{saved[path]['dtype']}; the given state has shape {spec['shape']} and dtype "
                f"{spec['dtype']}."
            )


class Checkpointer:
    """Saves and restores training states in `directory`, one sub-folder per step.

    Args:
        directory: the checkpoint folder (created if missing).
        save_total_limit: keep only the newest this many checkpoints; 0 keeps all (sentence-transformers'
            `checkpoint_save_total_limit`).
    """

    def __init__(self, directory: str | os.PathLike, *, save_total_limit: int = 0) -> None:
        if save_total_limit < 0:
            raise ValueError(f"save_total_limit must be >= 0 (0 keeps all), got {save_total_limit}.")
        self.directory = Path(directory).absolute()
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=save_total_limit or None,
                enable_async_checkpointing=False,
                cleanup_tmp_directories=True,
                create=True,
            ),
        )

    def all_steps(self) -> list[int]:
        """The steps of the complete checkpoints, ascending."""
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step (what `resume_from_checkpoint` continues), or None."""
        steps = self.all_steps()
        return steps[-1] if steps else None

    def step_dir(self, step: int) -> Path:
        """The folder of the checkpoint of `step`."""
        return self.directory / str(step)

    def delete(self, step: int) -> None:
        """Deletes the checkpoint of `step`."""
        self._manager.delete(step)

    def save(self, step: int, state: Any, *, metadata: Mapping[str, Any] | None = None) -> Path:
        """Writes `state` and JSON-serialisable `metadata` as the checkpoint of `step`; returns its folder.

        Afterwards the oldest checkpoints beyond `save_total_limit` are deleted.

        Raises:
            FileExistsError: a checkpoint of `step` (or of a later step) already exists.
        """
        latest = self.latest_step()
        if latest is not None and step <= latest:
            raise FileExistsError(
                f"Cannot save step {step} in {self.directory}: it already holds a checkpoint of step "
                f"{latest}."
            )
        digests = _leaf_digests(state)
        leaves = {path: {**spec, "sha256": digests[path]} for path, spec in _leaf_specs(state).items()}
        meta = {"metadata": dict(metadata or {}), "leaves": leaves}
        meta["sha256"] = _meta_digest(meta)
        threads_before = set(threading.enumerate())
        try:
            self._manager.save(
                step,
                args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
            )
            self._manager.wait_until_finished()
        except BaseException:
            # Orbax's writer threads of the other items go on after one item failed: let them finish, so
            # that nothing writes into the directory once save has raised (a retry would race them).
            for thread in set(threading.enumerate()) - threads_before:
                if type(thread).__module__.startswith("orbax."):
                    thread.join(_FAILED_SAVE_JOIN_SECONDS)
            raise
        return self.step_dir(step)

    def restore(self, like: Any, *, step: int | None = None) -> tuple[Any, dict[str, Any]]:
        """Reads a checkpoint into the structure, shapes, dtypes and shardings of `like`, bit for bit.

        Args:
            like: a state of the saved structure (e.g. a freshly initialised train state).
            step: the checkpoint to read; None reads the newest.

        Returns:
            (the state, the metadata given to `save`).

        Raises:
            FileNotFoundError: no checkpoint (of `step`) in the directory.
            ValueError: `like` differs from the saved state in structure, a shape or a dtype (named).
            CorruptCheckpointError: the files do not hold what was saved (a checksum differs, the first
                differing leaf named) or cannot be read.
        """
        steps = self.all_steps()
        if not steps:
            raise FileNotFoundError(f"No checkpoint in {self.directory}.")
        step = steps[-1] if step is None else step
        if step not in steps:
            raise FileNotFoundError(
                f"No checkpoint of step {step} in {self.directory}; its checkpoints: {steps}."
            )
        step_dir = self.step_dir(step)
        meta = self._read_meta(step, step_dir)
        _check_matches(meta["leaves"], like, step_dir)
        try:
            restored = self._manager.restore(
                step, args=ocp.args.Composite(state=ocp.args.StandardRestore(like))
            )
        except Exception as error:
            raise CorruptCheckpointError(
                f"Cannot read the state of the checkpoint {step_dir}: {type(error).__name__}: {error}"
            ) from error
        if "sha256" in meta:
            digests = _leaf_digests(restored.state)
            for path, digest in digests.items():
                if digest != meta["leaves"][path]["sha256"]:
                    raise CorruptCheckpointError(
                        f"The checkpoint {step_dir} was altered on disk: leaf {path} differs from what "
                        "was saved (sha256 mismatch)."
                    )
        return restored.state, meta["metadata"]

    def _read_meta(self, step: int, step_dir: Path) -> dict[str, Any]:
        """The `meta` item, its checksum verified (a checkpoint without one restores with a warning)."""
        try:
            meta = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
        except Exception as error:
            raise CorruptCheckpointError(
                f"Cannot read the metadata of the checkpoint {step_dir}: {type(error).__name__}: {error}"
            ) from error
        if not isinstance(meta, dict) or not {"metadata", "leaves"} <= set(meta):
            raise CorruptCheckpointError(
                f"The metadata of the checkpoint {step_dir} lack 'metadata' or 'leaves'."
            )
        if "sha256" not in meta:
            logger.warning(
                "The checkpoint %s has no checksum (it was written before jaxst wrote checksums): "
                "restoring it unverified.",
                step_dir,
            )
        elif meta["sha256"] != _meta_digest(meta):
            raise CorruptCheckpointError(
                f"The checkpoint {step_dir} was altered on disk: its metadata (data position, leaf "
                "shapes and checksums) differ from what was saved (sha256 mismatch)."
            )
        return meta

    def close(self) -> None:
        self._manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
