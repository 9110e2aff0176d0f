"""Data parallelism: 8 fake CPU devices train exactly what one device trains on the same global batch."""

import logging
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxst.losses import MultipleNegativesRankingLoss
from jaxst.losses.base import Loss
from jaxst.similarity import pairwise_cos_sim
from jaxst.training.parallel import MeshParallel, PmapParallel
from jaxst.training.step import init_train_state, make_train_step

VOCAB, DIM, T = 50, 16, 6


def bag_of_words_forward(params, features, *, dropout_rng=None):
    """A toy encoder: masked mean of token embeddings through a tanh layer."""
    del dropout_rng
    mask = features["attention_mask"][..., None].astype(jnp.float32)
    tokens = params["embed"][features["input_ids"]]
    pooled = (tokens * mask).sum(1) / jnp.maximum(mask.sum(1), 1.0)
    return {"sentence_embedding": jnp.tanh(pooled @ params["dense"])}


class CosineMSE(Loss):
    min_texts = max_texts = 2
    needs_labels = True

    def compute(self, embeddings, labels, params=None):
        return jnp.mean((pairwise_cos_sim(*embeddings) - labels) ** 2)


def make_batches(seed, steps, batch_size):
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(steps):
        ids = rng.integers(1, VOCAB, size=(2, batch_size, T)).astype(np.int32)
        lengths = rng.integers(1, T + 1, size=(2, batch_size, 1))
        mask = (np.arange(T) < lengths).astype(np.int32)
        labels = rng.uniform(size=batch_size).astype(np.float32)
        batches.append({"input_ids": ids * mask, "attention_mask": mask, "labels": labels})
    return batches


OPTIMIZERS = {"adamw": lambda: optax.adamw(1e-2), "sgd": lambda: optax.sgd(0.1)}


LOSSES = {
    "cosine_mse": lambda: CosineMSE(None),
    "mnrl_gathered": lambda: MultipleNegativesRankingLoss(None, gather_across_devices=True),
}


def train(parallel, batches, steps=3, optimizer="adamw", loss="cosine_mse"):
    rng = np.random.default_rng(0)
    params = {
        "model": {
            "embed": rng.normal(size=(VOCAB, DIM)).astype(np.float32),
            "dense": rng.normal(size=(DIM, DIM)).astype(np.float32) / 4,
        },
        "losses": ({},),
    }
    tx = OPTIMIZERS[optimizer]()
    step = parallel.compile(
        make_train_step(
            bag_of_words_forward, LOSSES[loss](), tx, use_dropout=False, **parallel.step_options()
        )
    )
    state = parallel.put_state(init_train_state(params, tx, seed=0))
    losses = []
    for batch in batches[:steps]:
        state, metrics = step(state, parallel.put_batch(batch))
        losses.append(parallel.get_metrics(metrics)["loss"])
    return parallel.get_state(state), losses


@pytest.fixture(scope="module")
def batches():
    return make_batches(0, 3, batch_size=16)


@pytest.fixture(scope="module", params=sorted(OPTIMIZERS))
def optimizer(request):
    """SGD shows any gradient scaling error at once; AdamW is what fit uses."""
    return request.param


@pytest.fixture(scope="module", params=sorted(LOSSES))
def loss(request):
    """A per-example loss, and MNRL with negatives gathered from every device."""
    return request.param


@pytest.fixture(scope="module")
def single_device_run(batches, optimizer, loss):
    return train(PmapParallel(jax.local_devices()[:1]), batches, optimizer=optimizer, loss=loss)


def assert_same_params(a, b, atol=1e-5):
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_allclose(x, y, atol=atol, rtol=0)


@pytest.mark.multi_device
def test_pmap_on_eight_devices_equals_one_device(batches, single_device_run, optimizer, loss):
    assert jax.local_device_count() == 8
    state_1, losses_1 = single_device_run
    state_8, losses_8 = train(PmapParallel(), batches, optimizer=optimizer, loss=loss)
    assert int(state_8.step) == 3
    np.testing.assert_allclose(losses_8, losses_1, rtol=1e-5)
    assert_same_params(state_8, state_1)
    # The parameters did move: the comparison is not between two untouched copies.
    untouched, _ = train(PmapParallel(jax.local_devices()[:1]), batches, steps=0)
    assert not np.allclose(state_1.params["model"]["dense"], untouched.params["model"]["dense"])


@pytest.mark.multi_device
def test_shard_map_equals_pmap(batches, single_device_run, optimizer, loss):
    state_mesh, losses_mesh = train(MeshParallel(), batches, optimizer=optimizer, loss=loss)
    state_1, losses_1 = single_device_run
    np.testing.assert_allclose(losses_mesh, losses_1, rtol=1e-5)
    assert_same_params(state_mesh, state_1)


@pytest.mark.multi_device
def test_reading_the_state_and_metrics_back_runs_no_device_program(caplog):
    """pmap's state and metrics are read from device 0's shard, not by indexing (which compiles and runs a
    program over all devices per leaf)."""
    parallel = PmapParallel()
    state = {"a": np.arange(7 * 13, dtype=np.float32).reshape(7, 13), "b": np.int32(5)}
    stacked = parallel.put_state(state)
    metrics = {"loss": parallel.put_state(np.float32(0.25))}
    with caplog.at_level(logging.WARNING), jax.log_compiles():
        host_state = parallel.get_state(stacked)
        host_metrics = parallel.get_metrics(metrics)
    assert not [r.message for r in caplog.records if "ompil" in r.message]
    np.testing.assert_array_equal(host_state["a"], state["a"])
    assert host_state["b"] == 5 and host_metrics == {"loss": 0.25}


@pytest.mark.multi_device
def test_batch_not_divisible_by_device_count_is_an_error(batches):
    odd = {k: (v[:, :12] if k != "labels" else v[:12]) for k, v in batches[0].items()}
    with pytest.raises(ValueError, match="batch size 12 is not divisible by the number of devices \\(8\\)"):
        PmapParallel().put_batch(odd)


def run_two_processes(out, *mode):
    """Runs tests/training/multihost_worker.py as processes 0 and 1 of one jax.distributed job."""
    import socket
    import subprocess
    import sys
    from pathlib import Path

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.training.multihost_worker", str(i), str(port), str(out), *mode],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(logs)
    return np.load(out)


def test_two_processes_train_what_one_process_trains(tmp_path, batches):
    """Two local processes (jax.distributed on 127.0.0.1, gloo) equal one process on the global batch."""
    result = run_two_processes(tmp_path / "params.npz")
    state_1, losses_1 = train(PmapParallel(jax.local_devices()[:1]), batches)
    np.testing.assert_allclose(result["losses"], losses_1, rtol=1e-5)
    for name in ("embed", "dense"):
        np.testing.assert_allclose(result[name], state_1.params["model"][name], atol=1e-5, rtol=0)


def test_two_processes_train_sharded_what_one_process_trains(tmp_path, batches):
    """An (fsdp=2, data=2) mesh over two processes of 2 devices, fsdp across them: each process holds half
    of each matrix and feeds half of each batch; the run equals one device on the global batch. A state
    checkpointed by both processes, each writing its half, restores with the same bits and shardings."""
    result = run_two_processes(tmp_path / "params.npz", "sharded")
    assert list(result["own_fraction"]) == [0.5, 0.5]  # embed, dense: half of each in each process
    assert result["restored_equal"]
    state_1, losses_1 = train(PmapParallel(jax.local_devices()[:1]), batches)
    np.testing.assert_allclose(result["losses"], losses_1, rtol=1e-5)
    for name in ("embed", "dense"):
        np.testing.assert_allclose(result[name], state_1.params["model"][name], atol=1e-5, rtol=0)


def test_two_processes_pack_their_texts_into_the_same_shapes(tmp_path):
    """Process 0 holds a 70-token text, process 1 needs the most rows: both pack to 96-token rows
    (the bucket of 70) and to the row count process 1 needs (its 60+-token texts take a row each)."""
    result = run_two_processes(tmp_path / "agreed.npz", "agree")
    assert list(result["agreed"]) == [1, 10]
    assert tuple(result["shape"]) == (2 * 2, 96)
