"""One process of the two-process training test: `python -m tests.training.multihost_worker ID PORT OUT`.

Each process sees 2 CPU devices, joins the job through `jax.distributed.initialize` on 127.0.0.1 with
gloo collectives, feeds only its own half of every global batch, and process 0 saves the parameters.
"""

import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"

import jax  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")
jax.config.update("jax_cpu_collectives_implementation", "gloo")


def main(process_id: int, port: int, out_path: str) -> None:
    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=process_id)
    from jaxst.training.parallel import MeshParallel
    from tests.training.test_parallel import make_batches, train

    def own_half(batch):
        half = {}
        for name, value in batch.items():
            axis = 0 if name == "labels" else 1
            half[name] = np.split(value, 2, axis=axis)[process_id]
        return half

    batches = [own_half(b) for b in make_batches(0, 3, batch_size=16)]
    state, losses = train(MeshParallel(), batches)
    if process_id == 0:
        np.savez(out_path, losses=np.array(losses), **state.params["model"])
    jax.distributed.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
