"""encode on several devices and processes: batches split by rows over a 1-D Mesh, shares gathered in order.

Devices of one process: every encode batch (rows x bucket length, `jaxst.buckets`) is placed with a
`NamedSharding` over a 1-D `Mesh` of the devices, its rows split evenly along the mesh axis "batch"; the
parameters are replicated on every device. jit (GSPMD) then runs each batch as one program on all the
devices at once, each device computing its rows / D rows. The planned row count is padded to a multiple
of the device count D (`buckets.plan_batches(..., row_multiple=D)`), so a call still compiles one program
per bucket it uses, for each device count. The parameters are copied to the other devices once and kept
while the model's parameters stay the same arrays (`EncodeMesh.replicate`).

Each device runs the one-device program on its rows / D rows, so a text's embedding is bit for bit what
one device gives it in a batch of rows / D rows of the same length. XLA's CPU programs for other row
counts may order their sums differently, so against one-device encode with the same batch size the
results differ by a few float32 ulps (at most 1.5e-7 in the tests).

Processes of a `jax.distributed` job: process p of P encodes the contiguous share
`texts[p * N // P : (p + 1) * N // P]` on its own devices, and `gather_shares` concatenates the shares in
process order, so that every process ends with all N embeddings in input order. This makes encode a
collective: every process must call it with the same texts (`check_same_texts`, before any is encoded).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

BATCH_AXIS = "batch"


class EncodeMesh:
    """A 1-D Mesh over encode's devices: batches split by rows, parameters replicated.

    Args:
        devices: the devices, all of this process, none twice.
    """

    def __init__(self, devices: Sequence[jax.Device]):
        self.devices = tuple(devices)
        mesh = Mesh(np.array(self.devices), (BATCH_AXIS,))
        self._rows = NamedSharding(mesh, PartitionSpec(BATCH_AXIS))
        self._replicated = NamedSharding(mesh, PartitionSpec())
        self._replica_source: list[Any] = []
        self._replicas: Any = None

    def __len__(self) -> int:
        return len(self.devices)

    def put_batch(self, features: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        """Arrays [R, ...] split by rows over the devices (R a multiple of the count); scalars replicated."""
        return {
            name: jax.device_put(value, self._rows if np.ndim(value) else self._replicated)
            for name, value in features.items()
        }

    def replicate(self, params: Any) -> Any:
        """`params` on every device; the copies are kept while `params` holds the same arrays."""
        leaves = jax.tree.leaves(params)
        if len(leaves) != len(self._replica_source) or any(
            new is not old for new, old in zip(leaves, self._replica_source, strict=True)
        ):
            self._replicas = None  # the old copies go before the new ones are made
            self._replicas = jax.device_put(params, self._replicated)
            self._replica_source = leaves
        return self._replicas


def process_share(num_texts: int) -> slice:
    """The texts this process encodes in a job of several processes: a contiguous share, in process order."""
    index, count = jax.process_index(), jax.process_count()
    return slice(index * num_texts // count, (index + 1) * num_texts // count)


def check_same_texts(texts: Sequence[str]) -> None:
    """Raises ValueError, on every process, unless all processes hold the same texts (a collective on their
    count and a CRC-32 of them)."""
    fingerprint = np.array([len(texts), zlib.crc32("\0".join(texts).encode())], np.uint32)
    fingerprints = multihost_utils.process_allgather(fingerprint)
    if (fingerprints != fingerprints[0]).any():
        raise ValueError(
            f"encode across {jax.process_count()} processes needs the same texts on every process; their "
            f"(count, checksum) differ: {[tuple(int(v) for v in f) for f in fingerprints]}."
        )


def gather_shares(share: np.ndarray, num_texts: int) -> np.ndarray:
    """Every process' share of the embeddings, concatenated in process order (a collective).

    Args:
        share: [n_p, ...] the embeddings of this process' `process_share(num_texts)`.
        num_texts: N, the count of all texts.

    Returns:
        [N, ...] the embeddings of all texts, in input order, on every process.
    """
    count = jax.process_count()
    padded = np.zeros((-(-num_texts // count), *share.shape[1:]), share.dtype)  # the same shape everywhere
    padded[: len(share)] = share
    gathered = multihost_utils.process_allgather(padded)
    bounds = [index * num_texts // count for index in range(count + 1)]
    return np.concatenate([gathered[p, : bounds[p + 1] - bounds[p]] for p in range(count)])
