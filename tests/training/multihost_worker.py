"""One process of the two-process tests: `python -m tests.training.multihost_worker ID PORT OUT [MODE ...]`.

Each process sees 2 CPU devices, joins the job through `jax.distributed.initialize` on 127.0.0.1 with
gloo collectives, feeds only its own half of every global batch, and process 0 saves the parameters.
MODE "sharded" trains with `fit(mesh=...)`'s driver on an (fsdp=2, data=2) mesh, fsdp across processes;
"agree" checks the packed shapes both processes agree on; "encode FOLDER TEXTS" encodes the texts
of the JSON file TEXTS with the model in FOLDER (tests/st/test_encode_devices.py).
"""

import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"

import jax  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")
jax.config.update("jax_cpu_collectives_implementation", "gloo")


def agree_on_packed_shapes(process_id: int, out_path: str) -> None:
    """Each process packs texts of its own lengths; both must get the shapes of the larger."""
    from jaxst.packing import pack
    from jaxst.training.parallel import MeshParallel

    parallel = MeshParallel()
    lengths = np.array([70, 3, 5, 9] if process_id == 0 else [12, 60, 61, 62])  # 2 columns x 2 examples
    offsets = np.r_[0, np.cumsum(lengths)]
    ids = np.arange(1, offsets[-1] + 1, dtype=np.int32)
    arrays = pack(
        ids,
        None,
        offsets,
        num_columns=2,
        num_devices=2,
        max_seq_length=128,
        pad_id=0,
        agree_max=parallel.agree_max,
    )
    agreed = parallel.agree_max([process_id, 10 - process_id])  # a collective: both processes call it
    if process_id == 1:
        np.savez(out_path, agreed=agreed, shape=arrays["packed_input_ids"].shape)


def encode_across_processes(process_id: int, out_path: str, folder: str, texts_path: str) -> None:
    """Both processes encode the same texts (each its share); process 0 saves what each got, and the
    error each raised for texts that differ between the processes."""
    import json

    from jax.experimental import multihost_utils

    from jaxst.sentence_transformer import SentenceTransformer

    with open(texts_path) as file:
        texts = json.load(file)
    model = SentenceTransformer(folder)
    try:
        model.encode(texts[: 5 + process_id])
        error = ""
    except ValueError as raised:
        error = str(raised)
    embeddings = multihost_utils.process_allgather(model.encode(texts))
    one_text = multihost_utils.process_allgather(model.encode(texts[0]))  # process 0's share is empty
    if process_id == 0:
        np.savez(out_path, embeddings=embeddings, one_text=one_text, error=error)


def sharded_checkpoint_round_trip(parallel, directory: str) -> dict:
    """A state sharded over both processes (each holds half of each matrix) is checkpointed, each process
    writing its shards, and restored into its shardings: {"own_fraction": the share of each matrix this
    process holds, "restored_equal": whether the restored state has the same bits}."""
    from jaxst.training.checkpoint import Checkpointer
    from jaxst.training.parallel import to_host

    rng = np.random.default_rng(1)
    host = {
        "embed": rng.normal(size=(50, 16)).astype(np.float32),
        "dense": rng.normal(size=(16, 16)).astype(np.float32),
    }
    placed = parallel.put_state(host)
    distinct = lambda x: {str(shard.index): shard.data.size for shard in x.addressable_shards}  # noqa: E731
    with Checkpointer(directory) as checkpointer:
        checkpointer.save(1, placed)
        restored, _ = checkpointer.restore(parallel.restore_target(host))
    return {
        "own_fraction": [sum(distinct(x).values()) / x.size for x in placed.values()],
        "restored_equal": all(
            restored[name].sharding.is_equivalent_to(placed[name].sharding, 2)
            and np.array_equal(to_host(restored[name]), host[name])
            for name in host
        ),
    }


def main(process_id: int, port: int, out_path: str, mode: str = "train", *args: str) -> None:
    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=process_id)
    if mode in ("agree", "encode"):
        if mode == "agree":
            agree_on_packed_shapes(process_id, out_path)
        else:
            encode_across_processes(process_id, out_path, *args)
        jax.distributed.shutdown()
        return
    from jax.sharding import Mesh

    from jaxst.training.parallel import MeshParallel
    from jaxst.training.sharding import ShardedParallel
    from tests.training.test_parallel import make_batches, train

    def own_half(batch):
        half = {}
        for name, value in batch.items():
            axis = 0 if name == "labels" else 1
            half[name] = np.split(value, 2, axis=axis)[process_id]
        return half

    batches = [own_half(b) for b in make_batches(0, 3, batch_size=16)]
    if mode == "sharded":
        parallel = ShardedParallel(Mesh(np.array(jax.devices()).reshape(2, 2), ("fsdp", "data")), rules=())
        extra = sharded_checkpoint_round_trip(parallel, out_path + ".checkpoints")
    else:
        parallel, extra = MeshParallel(), {}
    state, losses = train(parallel, batches)
    if process_id == 0:
        np.savez(out_path, losses=np.array(losses), **state.params["model"], **extra)
    jax.distributed.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], *sys.argv[4:])
