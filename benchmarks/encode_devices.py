"""Encode throughput on 1, 2, 4 and 8 devices (`encode(devices=n)`), on fake CPU devices by default.

The process starts with `--fake-devices` CPU devices (XLA's --xla_force_host_platform_device_count), so
on a CPU the figures are a sanity check of the multi-device path, not a speed-up: the fake devices share
the same cores. Real figures come from a machine with several GPUs or TPUs (run with --fake-devices 0).

Each device count gets a warm-up pass (compiling its bucket programs, reported apart), then `--rounds`
timed passes over the same texts; printed are sentences per second, their median, and the largest
difference from one-device encode (multi-device results equal it to a few float32 ulps).

    python benchmarks/encode_devices.py --texts 512 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else the platform's description."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    import platform

    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fake-devices", type=int, default=8, help="fake CPU devices (0: the real ones)")
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 2, 4, 8], help="device counts to run")
    parser.add_argument("--texts", type=int, default=512, help="STS-B test sentences to encode")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default=None, help="model folder (default: all-MiniLM-L6-v2)")
    args = parser.parse_args()

    if args.fake_devices:
        os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={args.fake_devices}"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.path.insert(0, str(Path(__file__).resolve().parent))

    import jax
    import numpy as np
    from bench_model import minilm_path

    from jaxst import SentenceTransformer
    from tests.shared_data import stsb_sentences

    model = SentenceTransformer(args.model or minilm_path())
    texts = stsb_sentences("test", args.texts)
    kind = "fake" if args.fake_devices else "real"
    print(
        f"{cpu_name()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; jax {jax.__version__}, "
        f"{jax.local_device_count()} {jax.default_backend()} devices ({kind}); "
        f"{len(texts)} STS-B test sentences, batch size {args.batch_size}, float32"
    )
    reference = None
    for count in args.counts:
        compiled, start = model.compile_count, time.perf_counter()
        embeddings = model.encode(texts, batch_size=args.batch_size, devices=count)
        cold = time.perf_counter() - start
        reference = embeddings if reference is None else reference
        rates = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            model.encode(texts, batch_size=args.batch_size, devices=count)
            rates.append(len(texts) / (time.perf_counter() - start))
        print(
            f"{count} devices: cold pass {cold:.1f} s ({model.compile_count - compiled} programs); "
            f"{' / '.join(f'{r:.0f}' for r in rates)} sentences/s, median {statistics.median(rates):.0f}; "
            f"max |difference| from {args.counts[0]} device(s) {np.abs(embeddings - reference).max():.1e}"
        )


if __name__ == "__main__":
    main()
