"""Time per call of jaxst's jitted losses against sentence-transformers' loss classes, same embeddings.

Each loss gets float32 embeddings of a batch of `--batch-size` x `--dim` (default 1,024 x 384) per text
column (and labels where it needs them). Timed is one training call: the loss value and its gradient
with respect to every embedding column, i.e. `jax.jit(jax.value_and_grad(loss))` against the torch
loss's forward and `backward()` on leaf embeddings (sentence-transformers' loss class run on a stand-in
model that returns the fixed embeddings, as the parity tests do). After one warm-up call each (jaxst
compiles there), they alternate for `--rounds` timed calls; printed are the medians in milliseconds
and the ratio jaxst / torch (below 1: jaxst is faster). Both run on the CPU here (torch with its
default threads), or jaxst on its default backend where JAX has an accelerator; the header says which.

    python benchmarks/losses.py
    python benchmarks/losses.py --losses mnrl gist --rounds 10
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import tokenizers  # noqa: E402
import torch  # noqa: E402
from sentence_transformers.sentence_transformer import losses as st_losses  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402

from jaxst.losses.batch_triplet import (  # noqa: E402
    batch_all_triplet_loss,
    batch_hard_triplet_loss,
    batch_semi_hard_triplet_loss,
)
from jaxst.losses.contrastive_tension import contrastive_tension_loss_in_batch_negatives  # noqa: E402
from jaxst.losses.gist import gist_embed_loss  # noqa: E402
from jaxst.losses.matryoshka import matryoshka_loss  # noqa: E402
from jaxst.losses.mega_batch import mega_batch_margin_loss  # noqa: E402
from jaxst.losses.orthogonal import global_orthogonal_regularization_loss  # noqa: E402
from jaxst.validation.torch_reference import FixedEmbeddingModel  # noqa: E402

NUM_CLASSES = 32  # labels of the batch triplet losses: 32 classes of about B / 32 examples each


class Benchmark:
    """A loss both ways: `jax_loss(columns, labels)`, `torch_loss(model)`, with its columns and labels.

    `max_batch` caps the batch size where the torch side cannot run the requested one (memory).
    """

    def __init__(
        self,
        num_columns: int,
        jax_loss: Callable,
        torch_loss: Callable,
        labels: bool = False,
        max_batch: int | None = None,
    ):
        self.num_columns, self.jax_loss, self.torch_loss = num_columns, jax_loss, torch_loss
        self.labels, self.max_batch = labels, max_batch


def with_tokenizer(model: FixedEmbeddingModel) -> FixedEmbeddingModel:
    """What GISTEmbedLoss checks on the model and the guide: a transformers tokenizer and max_seq_length."""
    vocabulary = tokenizers.models.WordLevel({"[UNK]": 0}, unk_token="[UNK]")
    model.tokenizer = PreTrainedTokenizerFast(tokenizer_object=tokenizers.Tokenizer(vocabulary))
    model.max_seq_length = 128
    return model


class FirstColumns(torch.nn.Module):
    """Runs a loss on the first `count` feature dicts (the guide answers for the rest)."""

    def __init__(self, loss: torch.nn.Module, count: int):
        super().__init__()
        self.loss, self.count = loss, count

    def forward(self, features, labels):
        return self.loss(features[: self.count], labels)


class TwoEncoders(torch.nn.Module):
    """ContrastiveTensionLossInBatchNegatives with its model copy answering column 0, the model column 1."""

    def __init__(self, model: FixedEmbeddingModel):
        super().__init__()
        self.loss = st_losses.ContrastiveTensionLossInBatchNegatives(model)
        self.loss.model1 = FixedEmbeddingModel(model.columns[:1])
        self.loss.model2 = FixedEmbeddingModel(model.columns[1:])

    def forward(self, features, labels):
        return self.loss(features, labels)


class SummedTerms(torch.nn.Module):
    """GlobalOrthogonalRegularizationLoss returns its terms; the trainer sums them."""

    def __init__(self, model: FixedEmbeddingModel):
        super().__init__()
        self.loss = st_losses.GlobalOrthogonalRegularizationLoss(model)

    def forward(self, features, labels):
        return torch.stack(list(self.loss(features, labels).values())).sum()


def st_gist(model: FixedEmbeddingModel) -> torch.nn.Module:
    guide = with_tokenizer(FixedEmbeddingModel(model.columns[3:]))
    return FirstColumns(st_losses.GISTEmbedLoss(with_tokenizer(model), guide), 3)


def st_matryoshka_mnrl(model: FixedEmbeddingModel) -> torch.nn.Module:
    model.get_embedding_dimension = model.get_sentence_embedding_dimension
    dims = [model.get_embedding_dimension() // 2**k for k in range(4)]
    return st_losses.MatryoshkaLoss(model, st_losses.MultipleNegativesRankingLoss(model), dims)


def jax_mnrl() -> Callable | None:
    """The MNRL of jaxst.losses.ranking, when that module exists in this tree."""
    try:
        from jaxst.losses.ranking import multiple_negatives_ranking_loss
    except ImportError:
        return None
    return lambda anchors, positives, negatives: multiple_negatives_ranking_loss(
        anchors, positives, negatives[:, None, :]
    )


def benchmarks(dim: int) -> dict[str, Benchmark]:
    dims = [dim // 2**k for k in range(4)]
    found = {
        # GISTEmbedLoss' nn.CosineSimilarity broadcasts every block to [B, B, D] in torch: at 1,024 x 384 its
        # forward and backward need more than 20 GB, so it runs at 256 rows.
        "gist": Benchmark(6, lambda c, _: gist_embed_loss(c[:3], c[3:]), st_gist, max_batch=256),
        "batch_hard_triplet": Benchmark(
            1,
            lambda c, labels: batch_hard_triplet_loss(c[0], labels),
            st_losses.BatchHardTripletLoss,
            labels=True,
        ),
        "batch_semi_hard_triplet": Benchmark(
            1,
            lambda c, labels: batch_semi_hard_triplet_loss(c[0], labels),
            st_losses.BatchSemiHardTripletLoss,
            labels=True,
        ),
        "batch_all_triplet": Benchmark(
            1,
            lambda c, labels: batch_all_triplet_loss(c[0], labels),
            st_losses.BatchAllTripletLoss,
            labels=True,
        ),
        "mega_batch_margin": Benchmark(
            2,
            lambda c, _: mega_batch_margin_loss(*c),
            lambda model: st_losses.MegaBatchMarginLoss(model, use_mini_batched_version=False),
        ),
        "contrastive_tension": Benchmark(
            2, lambda c, _: contrastive_tension_loss_in_batch_negatives(*c), TwoEncoders
        ),
        "global_orthogonal": Benchmark(2, lambda c, _: global_orthogonal_regularization_loss(c), SummedTerms),
    }
    mnrl = jax_mnrl()
    if mnrl is not None:
        found = {
            "mnrl": Benchmark(3, lambda c, _: mnrl(*c), st_losses.MultipleNegativesRankingLoss),
            "matryoshka_mnrl": Benchmark(
                3,
                lambda c, _: matryoshka_loss(lambda cols, labs: mnrl(*cols), c, matryoshka_dims=dims),
                st_matryoshka_mnrl,
            ),
            **found,
        }
    return found


def milliseconds(call: Callable[[], None]) -> float:
    start = time.perf_counter()
    call()
    return 1000 * (time.perf_counter() - start)


def run(name: str, benchmark: Benchmark, args: argparse.Namespace) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    batch_size = min(args.batch_size, benchmark.max_batch or args.batch_size)
    columns = [
        rng.standard_normal((batch_size, args.dim)).astype(np.float32) for _ in range(benchmark.num_columns)
    ]
    labels = rng.integers(0, NUM_CLASSES, batch_size) if benchmark.labels else None

    value_and_grad = jax.jit(jax.value_and_grad(benchmark.jax_loss))
    jax_columns = [jnp.asarray(c) for c in columns]
    jax_labels = None if labels is None else jnp.asarray(labels)

    def call_jax() -> None:
        jax.block_until_ready(value_and_grad(jax_columns, jax_labels))

    leaves = [torch.tensor(c, requires_grad=True) for c in columns]
    torch_loss = benchmark.torch_loss(FixedEmbeddingModel(leaves))
    features = [{"column": i} for i in range(len(leaves))]
    torch_labels = None if labels is None else torch.as_tensor(labels)

    def call_torch() -> None:
        for leaf in leaves:
            leaf.grad = None
        torch_loss(features, torch_labels).backward()

    cold = milliseconds(call_jax)
    milliseconds(call_torch)
    jax_times, torch_times = [], []
    for _ in range(args.rounds):
        torch_times.append(milliseconds(call_torch))
        jax_times.append(milliseconds(call_jax))
    jax_median, torch_median = statistics.median(jax_times), statistics.median(torch_times)
    print(
        f"{name:<24} {batch_size:>6} {torch_median:>10.1f} {jax_median:>10.1f} "
        f"{jax_median / torch_median:>8.2f}   (jaxst first call, with compilation: {cold:.0f} ms)",
        flush=True,
    )
    return jax_median, torch_median


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--losses", nargs="*", help="names to run (default: all); see the table")
    args = parser.parse_args()
    available = benchmarks(args.dim)
    unknown = sorted(set(args.losses or []) - set(available))
    if unknown:
        parser.error(f"unknown losses {unknown}; available: {sorted(available)}")
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    device = jax.devices()[0].device_kind
    print(
        f"{datetime.date.today()} | {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {load} | jax {jax.__version__} on {jax.default_backend()} ({device}) "
        f"| torch {torch.__version__} on CPU, {torch.get_num_threads()} threads"
    )
    if "mnrl" not in available:
        print("(jaxst.losses.ranking not found: MNRL and Matryoshka(MNRL) skipped)")
    print(
        f"value and gradient per call, batch {args.batch_size} (or as listed) x {args.dim}, float32, "
        f"median of {args.rounds} alternating rounds"
    )
    print(f"{'loss':<24} {'batch':>6} {'torch ms':>10} {'jaxst ms':>10} {'ratio':>8}")
    for name in args.losses or available:
        run(name, available[name], args)


if __name__ == "__main__":
    main()
