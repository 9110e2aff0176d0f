"""Model FLOPs utilisation of one jaxst train step, beside the same step in PyTorch.

The step: MultipleNegativesRankingLoss on `--batch-size` (anchor, positive) pairs of `--seq-len` tokens
each (random token ids, no padding), forward and backward through the encoder, gradient clipping and the
AdamW update: the program `fit` compiles, built from the same pieces (`make_train_step` under a one-device
`shard_map`). The encoder computes in bfloat16 with float32 parameters (`use_amp=True`) on a GPU, float32
on a CPU.

    MFU = FLOPs per step / step time / the device's peak FLOP/s

FLOPs per step are the matmuls' count, 6 x parameters in the layers x tokens + 12 x layers x hidden x
tokens x sequence length (forward and backward, attention included; the same count for both frameworks).
XLA's own count for the compiled program (`compiled.cost_analysis()["flops"]`) is printed beside it: on
a CPU the two agree, on an H200 (jax 0.11.2) XLA reported less than half the matmul count, so it is not
the basis of the figure. The peak is `--peak-tflops`
(default: the card's dense bfloat16 figure from its data sheet, 989 for H100 / H200 SXM).

PyTorch's figure is the same step (sentence-transformers' MultipleNegativesRankingLoss, AdamW, clipping
at 1) under float16 autocast, as sentence-transformers' fit runs with `use_amp=True`, timed the same way.

    python benchmarks/mfu.py --model bench_assets/bert-base --batch-size 128 --seq-len 128
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh, PartitionSpec  # noqa: E402

import jaxst  # noqa: E402
from jaxst.batch_layouts import PaddedBatch  # noqa: E402
from jaxst.training.optim import make_optimizer  # noqa: E402
from jaxst.training.precision import forward_in_dtype  # noqa: E402
from jaxst.training.step import AXIS_NAME, init_train_state, make_train_step  # noqa: E402

DATA_SHEET_TFLOPS = {"H100": 989.0, "H200": 989.0}  # dense bfloat16, SXM


def random_tokens(vocab_size: int, batch_size: int, seq_len: int, seed: int = 0) -> np.ndarray:
    """[2, batch_size, seq_len] int32 token ids in [1000, vocab_size): no special or padding ids."""
    return np.random.default_rng(seed).integers(1000, vocab_size, (2, batch_size, seq_len), dtype=np.int32)


def median_step_seconds(run_step, steps: int, warmup: int) -> float:
    """Median wall time of `steps` calls of run_step() (each waits for its result) after `warmup` calls."""
    for _ in range(warmup):
        run_step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        run_step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def analytic_flops(config: Any, tokens: int, seq_len: int) -> float:
    """Matmul FLOPs of a forward and backward pass: 6 x layer parameters x tokens + attention scores."""
    h, layers, inner = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    layer_params = 4 * h * h + 2 * h * inner
    return 6 * layers * layer_params * tokens + 12 * layers * h * tokens * seq_len


def jaxst_step(args: argparse.Namespace, tokens: np.ndarray) -> tuple[float, float]:
    """(XLA's count of FLOPs per step, median seconds per step) of jaxst's train step on the first device."""
    on_gpu = jax.default_backend() == "gpu"
    model = jaxst.SentenceTransformer(args.model)
    loss = jaxst.losses.MultipleNegativesRankingLoss(model)
    params = {"model": model.params, "losses": (loss.init_params(jax.random.PRNGKey(1), 0),)}
    tx = make_optimizer(params, lr=2e-5, scheduler="constantlr", warmup_steps=0, total_steps=1)
    forward = forward_in_dtype(model, "bfloat16" if on_gpu else None)
    step = make_train_step(forward, loss, tx)
    mesh = Mesh(np.array(jax.devices()[:1]), (AXIS_NAME,))
    batch = PaddedBatch(input_ids=jnp.asarray(tokens), attention_mask=jnp.ones_like(tokens))
    if "token_type_ids" in model.tokenize(["a"]):
        batch = batch.replace(token_type_ids=jnp.zeros_like(tokens))
    split = jax.tree.map(lambda axis: PartitionSpec(*[None] * axis, AXIS_NAME), batch.split_axes())
    mapped = jax.shard_map(
        step, mesh=mesh, in_specs=(PartitionSpec(), split), out_specs=(PartitionSpec(), PartitionSpec())
    )
    state = init_train_state(params, tx, seed=0)
    compiled = jax.jit(mapped, donate_argnums=0).lower(state, batch).compile()
    cost = compiled.cost_analysis()
    flops = float((cost[0] if isinstance(cost, list) else cost)["flops"])
    holder = {"state": state}

    def run_step() -> None:
        holder["state"], metrics = compiled(holder["state"], batch)
        metrics["loss"].block_until_ready()

    return flops, median_step_seconds(run_step, args.steps, args.warmup)


def torch_step(args: argparse.Namespace, tokens: np.ndarray) -> float:
    """Median seconds per step of the same step in PyTorch sentence-transformers."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = SentenceTransformer(args.model, device=device)
    loss = MultipleNegativesRankingLoss(model)
    optimizer = torch.optim.AdamW(loss.parameters(), lr=2e-5)
    scaler = torch.amp.GradScaler(device, enabled=device == "cuda")
    features = [
        {
            "input_ids": torch.as_tensor(column, device=device, dtype=torch.long),
            "attention_mask": torch.ones(column.shape, device=device, dtype=torch.long),
            "token_type_ids": torch.zeros(column.shape, device=device, dtype=torch.long),
        }
        for column in tokens
    ]
    labels = torch.zeros(tokens.shape[1], device=device)

    def run_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.float16, enabled=device == "cuda"):
            value = loss(features, labels)
        scaler.scale(value).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(loss.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
        value.item()

    return median_step_seconds(run_step, args.steps, args.warmup)


def peak_tflops(args: argparse.Namespace) -> tuple[float, str]:
    if args.peak_tflops:
        return args.peak_tflops, "--peak-tflops"
    kind = jax.devices()[0].device_kind
    for name, tflops in DATA_SHEET_TFLOPS.items():
        if name in kind:
            return tflops, f"{name} data sheet, dense bfloat16"
    sys.exit(f"No peak FLOP/s known for {kind!r}: give --peak-tflops.")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="a sentence-transformers folder (BERT family)")
    parser.add_argument("--batch-size", type=int, default=128, help="pairs per step")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--peak-tflops", type=float, help="the device's peak (default: by device kind)")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch's step")
    args = parser.parse_args()
    import transformers

    peak, source = peak_tflops(args)
    tokens = random_tokens(
        transformers.AutoConfig.from_pretrained(args.model).vocab_size, args.batch_size, args.seq_len
    )
    config = transformers.AutoConfig.from_pretrained(args.model)
    print(
        f"{jax.devices()[0].device_kind}, jax {jax.__version__}; {args.model}: {config.num_hidden_layers} "
        f"layers, hidden {config.hidden_size}; MNRL step on {args.batch_size} pairs x {args.seq_len} tokens"
    )
    flops, seconds = jaxst_step(args, tokens)
    analytic = analytic_flops(config, tokens.size, args.seq_len)
    achieved = analytic / seconds / 1e12
    print(
        f"jaxst: {seconds * 1e3:.1f} ms/step, {analytic / 1e12:.2f} TFLOP/step (XLA's count "
        f"{flops / 1e12:.2f}), {achieved:.0f} TFLOP/s = {100 * achieved / peak:.1f}% MFU "
        f"(peak {peak:.0f} TFLOP/s, {source})",
        flush=True,
    )
    if not args.no_torch:
        theirs = torch_step(args, tokens)
        print(
            f"sentence-transformers: {theirs * 1e3:.1f} ms/step, {analytic / theirs / 1e12:.0f} TFLOP/s = "
            f"{100 * analytic / theirs / 1e12 / peak:.1f}% MFU; jaxst / "
            f"sentence-transformers throughput {theirs / seconds:.2f}x"
        )


if __name__ == "__main__":
    main()
