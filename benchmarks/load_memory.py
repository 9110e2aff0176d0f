"""Peak host memory of loading a large sharded checkpoint: jaxst's streaming load against the weights' size.

Builds (once, in `--folder`, or in a temporary folder deleted afterwards) a random BERT checkpoint in
float32, by default hidden 1536, 24 layers, intermediate 6144, vocabulary 30,522 (727M parameters,
2.9 GB), saved by transformers' `save_pretrained` in shards of `--max-shard-size`. Then each loader
runs in a fresh process (peak RSS is per process) with one CPU device:

    jaxst:        jaxst.models.load_checkpoint, reading one tensor at a time (the current path);
    jaxst-before: the path before streaming, rebuilt here: every tensor of every shard read first
                  (memory-mapped, as safe_open does by default), then placed on the device;
    transformers: transformers.AutoModel.from_pretrained, then every parameter read once (its tensors
                  may be views of the memory-mapped files, resident only once read), as a reference.

Each reports the resident memory before loading (after imports and the backend's start), the peak
during the load (VmHWM, reset just before through /proc/self/clear_refs), and the resident memory
after; the rise is peak minus before, compared with the weights' size (the index's total_size).
Linux only (reads /proc).

    python benchmarks/load_memory.py                          # build in /tmp, measure, delete
    python benchmarks/load_memory.py --folder ckpt --keep     # build once into ckpt and keep it
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import multiprocessing
import os
import platform
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jaxst.models import CheckpointExtras, TransformerEncoder

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gradcache_memory import reset_peak_rss, status_kib  # noqa: E402

LOADERS = ("jaxst", "jaxst-before", "transformers")
INDEX = "model.safetensors.index.json"
VERSIONED = ("jax", "safetensors", "torch", "transformers")


def machine() -> str:
    """CPU model name, logical CPUs and total memory, from /proc."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or platform.machine(),
    )
    mem_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return f"{cpu}, {os.cpu_count()} CPUs, {mem_kib / 2**20:.1f} GiB"


def build(folder: Path, hidden: int, layers: int, max_shard_size: str) -> None:
    """A random float32 BERT of that width and depth, saved sharded by transformers into `folder`."""
    import torch
    import transformers

    config = transformers.BertConfig(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 64,
        intermediate_size=4 * hidden,
    )
    with torch.no_grad():
        model = transformers.BertModel(config)
    model.save_pretrained(folder, max_shard_size=max_shard_size)


def load_before(folder: Path) -> tuple[TransformerEncoder, CheckpointExtras]:
    """jaxst's load as it was before streaming: all tensors of all shards read into one dict first,
    then converted and placed (the float32 conversion copied nothing for a float32 checkpoint)."""
    from contextlib import ExitStack

    from safetensors import safe_open

    from jaxst.io import hf
    from jaxst.models import load_checkpoint

    open_lazily = hf.open_checkpoint

    def open_whole(folder: Path) -> hf.Checkpoint:
        with open_lazily(folder) as lazy:
            headers = lazy.headers
        tensors = {}
        for name in sorted({header.file for header in headers.values()}):
            with safe_open(str(folder / name), framework="numpy") as f:
                tensors.update({key: f.get_tensor(key) for key in f.keys()})  # noqa: SIM118
        return hf.Checkpoint(str(folder), headers, tensors.__getitem__, ExitStack())

    hf.open_checkpoint = open_whole
    try:
        return load_checkpoint(folder)
    finally:
        hf.open_checkpoint = open_lazily


def measure(loader: str, folder: Path) -> dict:
    """One loader, in this process: resident memory before, at the peak of and after the load, in MiB."""
    import jax
    import jax.numpy as jnp
    import transformers

    # Before the baseline: the backend starts, and transformers imports the config's module.
    jnp.zeros(1).block_until_ready()
    transformers.AutoConfig.from_pretrained(folder)
    if loader == "transformers":
        import torch

        def load():
            with torch.no_grad():
                model = transformers.AutoModel.from_pretrained(folder)
                # Its parameters may view the memory-mapped files: read each once, as a forward pass would.
                for parameter in model.parameters():
                    parameter.sum()
                return model
    else:
        from flax import nnx

        from jaxst.models import load_checkpoint

        def load():
            encoder, _ = (load_before if loader == "jaxst-before" else load_checkpoint)(folder)
            return jax.block_until_ready(nnx.state(encoder))

    before = status_kib("VmRSS")
    reset_peak_rss()
    start = time.perf_counter()
    loaded = load()
    seconds = time.perf_counter() - start
    peak, after = status_kib("VmHWM"), status_kib("VmRSS")
    del loaded
    return {
        "loader": loader,
        "before_mib": before / 1024,
        "peak_mib": peak / 1024,
        "after_mib": after / 1024,
        "seconds": seconds,
    }


def run_in_fresh_process(loader: str, folder: Path) -> dict:
    """`measure(loader, folder)` in a new interpreter (spawned), which exits afterwards."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(measure, loader, folder).result()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--folder", type=Path, help="where the checkpoint is (built there if missing)")
    parser.add_argument("--keep", action="store_true", help="keep a checkpoint this run built")
    parser.add_argument("--hidden", type=int, default=1536)
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--max-shard-size", default="1GB", help="transformers' shard threshold when building")
    parser.add_argument("--loaders", nargs="+", choices=LOADERS, default=list(LOADERS))
    args = parser.parse_args()
    # The spawned loaders inherit this environment: one CPU device.
    os.environ.pop("XLA_FLAGS", None)
    os.environ["JAX_PLATFORMS"] = "cpu"
    folder = args.folder or Path(tempfile.mkdtemp(prefix="jaxst_load_memory_")) / "checkpoint"
    built = not (folder / INDEX).is_file()
    try:
        if built:
            start = time.perf_counter()
            build(folder, args.hidden, args.layers, args.max_shard_size)
            print(f"built {folder} in {time.perf_counter() - start:.0f} s")
        index = json.loads((folder / INDEX).read_text())
        weights_mib = index["metadata"]["total_size"] / 2**20
        shards = len(set(index["weight_map"].values()))
        versions = ", ".join(f"{name} {importlib.metadata.version(name)}" for name in VERSIONED)
        print(
            f"{datetime.date.today()} | {machine()} | load average "
            f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} | {versions} | checkpoint: "
            f"{weights_mib:,.0f} MiB float32 in {shards} shards"
        )
        print(
            f"{'loader':<14}{'before':>10}{'peak':>10}{'rise':>10}{'rise / weights':>16}{'after':>10}{'s':>7}"
        )
        results = []
        for loader in args.loaders:
            r = run_in_fresh_process(loader, folder)
            rise = r["peak_mib"] - r["before_mib"]
            print(
                f"{loader:<14}{r['before_mib']:>10,.0f}{r['peak_mib']:>10,.0f}{rise:>10,.0f}"
                f"{rise / weights_mib:>16.2f}{r['after_mib']:>10,.0f}{r['seconds']:>7.1f}"
            )
            results.append(r)
        print("MiB of resident memory; rise = peak during the load - resident before it")
        print(json.dumps({"weights_mib": weights_mib, "shards": shards, "results": results}))
    finally:
        if built and not args.keep:
            shutil.rmtree(folder if args.folder else folder.parent)


if __name__ == "__main__":
    main()
