"""Memory plan of sharded training (`fit(..., mesh=...)`) without weights: what one device would hold.

Three reports; none allocates a parameter:

- `bytes`: the parameter + AdamW bytes one device holds under `jaxst.training.sharding`'s layout against
  the replicated (data-parallel) layout, for all-MiniLM-L6-v2's and Qwen3-Embedding-0.6B's shapes, on
  meshes of 8 and 64 devices. Exact: the sum of each tensor's shard.
- `plan`: the train step of Qwen3-Embedding-8B's configuration (36 layers, hidden 4096, 32 query / 8
  key-value heads of 128, MLP 12288, vocabulary 151,665), MNRL over a global batch of `--pairs` pairs of
  `--length` tokens, bfloat16 compute (use_amp), AOT-compiled by XLA for a mesh of 64 fake CPU devices
  from abstract parameters (`jax.eval_shape`), under remat policies; `compiled.memory_analysis()` gives
  one device's arguments, outputs and temporaries. XLA's CPU compiler folds remat's recomputation back
  into an unrolled program (see `jaxst.training.remat`) but not out of a loop: with `--scan` (the layers
  under `scan_layers`) the CPU plan shows what remat saves, and 36 layers compile as one body.
- `residuals`: what one layer keeps for the backward pass under each remat policy
  (`print_saved_residuals`, independent of any compiler), and the peak that implies.

    python benchmarks/memory_plan.py bytes
    python benchmarks/memory_plan.py plan --mesh fsdp=64 --pairs 512 --length 512 --layers 2
    python benchmarks/memory_plan.py residuals
    python benchmarks/memory_plan.py plan --mesh data=8,fsdp=8 --scan --remat nothing_saveable

The device count is set before JAX starts (`--xla_force_host_platform_device_count`).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import re
import sys
import time

DEVICES = 64
os.environ["XLA_FLAGS"] = (
    f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={DEVICES}"
)

import jax  # noqa: E402
import jax.ad_checkpoint  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import transformers  # noqa: E402
from flax import nnx  # noqa: E402
from jax.sharding import Mesh, NamedSharding  # noqa: E402

from jaxst.batch_layouts import PaddedBatch  # noqa: E402
from jaxst.losses import MultipleNegativesRankingLoss  # noqa: E402
from jaxst.models.bert import BertEncoder  # noqa: E402
from jaxst.models.encoder import DEFAULT_REMAT_POLICY  # noqa: E402
from jaxst.models.qwen3 import Qwen3Encoder  # noqa: E402
from jaxst.training.optim import make_optimizer  # noqa: E402
from jaxst.training.sharding import ShardedParallel, state_shardings  # noqa: E402
from jaxst.training.step import init_train_state, make_train_step  # noqa: E402

GIB = 2**30
SHORT_DTYPES = {"f32": "float32", "bf16": "bfloat16", "i32": "int32", "u32": "uint32", "bool": "bool"}
QWEN3 = dict(
    vocab_size=151665,
    num_key_value_heads=8,
    head_dim=128,
    rms_norm_eps=1e-6,
    rope_theta=1_000_000.0,
    max_position_embeddings=40960,
    tie_word_embeddings=False,
)
CONFIGS = {
    "all-MiniLM-L6-v2": (
        BertEncoder,
        transformers.BertConfig(
            vocab_size=30522,
            hidden_size=384,
            num_hidden_layers=6,
            num_attention_heads=12,
            intermediate_size=1536,
        ),
    ),
    "Qwen3-Embedding-0.6B": (
        Qwen3Encoder,
        transformers.Qwen3Config(
            hidden_size=1024, num_hidden_layers=28, num_attention_heads=16, intermediate_size=3072, **QWEN3
        ),
    ),
    "Qwen3-Embedding-8B": (
        Qwen3Encoder,
        transformers.Qwen3Config(
            hidden_size=4096, num_hidden_layers=36, num_attention_heads=32, intermediate_size=12288, **QWEN3
        ),
    ),
}


def abstract_encoder(
    name: str, *, layers: int | None = None, dtype=jnp.float32, remat: str | None = None, scan: bool = False
):
    """(encoder class, graphdef, abstract parameters) of a configuration, no parameter allocated; `remat`
    names the layers' remat policy (`REMAT_POLICIES`), `scan` runs them under `scan_layers`."""
    family, config = CONFIGS[name]
    if layers is not None:
        settings = {**config.to_dict(), "num_hidden_layers": layers}
        settings.pop("layer_types", None)
        config = type(config)(**settings)
    spec = family.spec_from_config(config)

    def build():
        encoder = family(spec, dtype=dtype, rngs=nnx.Rngs(0))
        encoder.remat_policy = remat
        encoder.use_scan_layers(scan)
        return encoder

    graphdef, params = nnx.split(nnx.eval_shape(build))
    return family, graphdef, params


def abstract_state(params, total_steps: int = 1000):
    train_params = {"model": {"encoder": params, "modules": {}}, "losses": ({},)}
    tx = make_optimizer(
        train_params, lr=2e-5, scheduler="warmuplinear", warmup_steps=100, total_steps=total_steps
    )
    return tx, jax.eval_shape(lambda p: init_train_state(p, tx, 0), train_params)


def parse_mesh(text: str) -> Mesh:
    shape = {axis: int(size) for axis, size in (part.split("=") for part in text.split(","))}
    if math.prod(shape.values()) != DEVICES:
        raise SystemExit(f"--mesh {text}: the axes' sizes must multiply to {DEVICES}.")
    return Mesh(np.array(jax.devices()).reshape(tuple(shape.values())), tuple(shape))


def shard_bytes(state, mesh: Mesh, rules) -> int:
    """Bytes one device holds of `state` under the sharded layout."""
    shardings = state_shardings(state, mesh, rules)
    total = 0
    for x, sharding in zip(jax.tree.leaves(state), jax.tree.leaves(shardings), strict=True):
        total += math.prod(sharding.shard_shape(x.shape)) * jnp.dtype(x.dtype).itemsize
    return total


def bytes_report() -> list[dict]:
    rows = []
    for name in ("all-MiniLM-L6-v2", "Qwen3-Embedding-0.6B", "Qwen3-Embedding-8B"):
        family, _, params = abstract_encoder(name)
        _, state = abstract_state(params)
        replicated = sum(math.prod(x.shape) * jnp.dtype(x.dtype).itemsize for x in jax.tree.leaves(state))
        for mesh_text in ("fsdp=8,data=8", "fsdp=64", "model=4,fsdp=16"):
            sharded = shard_bytes(state, parse_mesh(mesh_text), family.partition_rules)
            rows.append(
                {
                    "model": name,
                    "mesh": mesh_text,
                    "replicated_GiB": round(replicated / GIB, 3),
                    "sharded_GiB": round(sharded / GIB, 4),
                    "ratio": round(replicated / sharded, 1),
                }
            )
    return rows


def last_token_forward(graphdef):
    """Qwen3-Embedding's model as a pure function: the encoder, last-token pooling (right padding),
    Normalize."""

    def forward(model_params, texts, *, dropout_rng=None, output_hidden_states=False):
        del output_hidden_states
        encoder = nnx.merge(graphdef, model_params["encoder"])
        hidden = encoder(texts["input_ids"], texts["attention_mask"], dropout_rng=dropout_rng)
        last = texts["attention_mask"].sum(axis=1) - 1
        pooled = hidden[jnp.arange(hidden.shape[0]), last].astype(jnp.float32)
        return {"sentence_embedding": pooled / jnp.linalg.norm(pooled, axis=-1, keepdims=True).clip(1e-12)}

    return forward


def plan(mesh_text: str, pairs: int, length: int, layers: int | None, remat: str | None, scan: bool) -> dict:
    mesh = parse_mesh(mesh_text)
    family, graphdef, params = abstract_encoder(
        "Qwen3-Embedding-8B", layers=layers, dtype=jnp.bfloat16, remat=remat, scan=scan
    )
    tx, state = abstract_state(params)
    parallel = ShardedParallel(mesh, family.partition_rules)
    shardings = state_shardings(state, mesh, family.partition_rules)
    step = make_train_step(
        last_token_forward(graphdef),
        MultipleNegativesRankingLoss(None),
        tx,
        use_dropout=False,
        **parallel.step_options(),
    )
    tokens = jax.ShapeDtypeStruct((2, pairs, length), jnp.int32, sharding=parallel.split_sharding(1))
    batch = PaddedBatch(input_ids=tokens, attention_mask=tokens)
    state = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, shardings)
    start = time.perf_counter()
    compiled = parallel.jit(step, shardings).lower(state, batch).compile()
    seconds = time.perf_counter() - start
    memory = compiled.memory_analysis()
    peak = memory.argument_size_in_bytes + memory.output_size_in_bytes - memory.alias_size_in_bytes
    peak += memory.temp_size_in_bytes
    return {
        "model": "Qwen3-Embedding-8B" + (f" ({layers} layers)" if layers else ""),
        "mesh": mesh_text,
        "pairs": pairs,
        "length": length,
        "remat": remat or "none",
        "scan_layers": scan,
        "arguments_GiB": round(memory.argument_size_in_bytes / GIB, 2),
        "temporaries_GiB": round(memory.temp_size_in_bytes / GIB, 2),
        "peak_GiB": round(peak / GIB, 2),
        "fits_16GiB": peak <= 16 * GIB,
        "fits_80GiB": peak <= 80 * GIB,
        "compile_s": round(seconds, 1),
        "sharding_of_state": isinstance(jax.tree.leaves(shardings)[0], NamedSharding),
    }


def residual_bytes(layers: int, policy: str | None, texts: int, length: int) -> int:
    """Bytes of the activations the forward pass of `texts` x `length` tokens through `layers` layers of the
    8B configuration keeps for its backward pass (`jax.ad_checkpoint.print_saved_residuals`, parameters
    excluded): what remat's policy decides, independent of the compiler."""
    _, graphdef, params = abstract_encoder(
        "Qwen3-Embedding-8B", layers=layers, dtype=jnp.bfloat16, remat=policy
    )
    forward = last_token_forward(graphdef)

    def loss(params, ids):
        texts = {"input_ids": ids, "attention_mask": jnp.ones_like(ids)}
        return forward({"encoder": params}, texts)["sentence_embedding"].sum()

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        jax.ad_checkpoint.print_saved_residuals(
            loss, params, jax.ShapeDtypeStruct((texts, length), jnp.int32)
        )
    total = 0
    for line in printed.getvalue().splitlines():
        found = re.match(r"(\w+)\[([\d,]*)\]", line)
        if found and "argument" not in line:
            dims = [int(d) for d in found.group(2).split(",") if d]
            total += math.prod(dims) * jnp.dtype(SHORT_DTYPES.get(found.group(1), found.group(1))).itemsize
    return total


def residuals_report(
    mesh_text: str, pairs: int, length: int, fixed_gib: float, layer_gib: float
) -> list[dict]:
    """Per-device activation memory of the 36 layers under each remat policy, from the residuals one layer
    keeps (2 layers minus 1), and the estimated peak: the compiled plan's fixed part and one layer's working
    set (`--fixed`, `--layer`: from `plan` at 1 and 2+ layers without remat) plus 36 layers' residuals."""
    texts = 2 * pairs // math.prod(parse_mesh(mesh_text).shape.values())
    rows = []
    for policy in (None, DEFAULT_REMAT_POLICY, "nothing_saveable"):
        per_layer = (
            residual_bytes(2, policy, texts, length) - residual_bytes(1, policy, texts, length)
        ) / GIB
        peak = fixed_gib + 36 * per_layer + (layer_gib if policy else 0)
        rows.append(
            {
                "policy": policy or "no remat",
                "texts_per_device": texts,
                "residuals_per_layer_GiB": round(per_layer, 3),
                "estimated_peak_GiB": round(peak, 1),
                "fits_16GiB": peak <= 16,
                "fits_80GiB": peak <= 80,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("report", choices=["bytes", "plan", "residuals"])
    parser.add_argument("--mesh", default="fsdp=64")
    parser.add_argument("--pairs", type=int, default=512)
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--layers", type=int, default=None, help="fewer layers than 36, for a quick check")
    parser.add_argument(
        "--remat", nargs="+", default=["none", DEFAULT_REMAT_POLICY], help="policies (none: no remat)"
    )
    parser.add_argument("--scan", action="store_true", help="layers under scan_layers (36 compile as one)")
    parser.add_argument("--fixed", type=float, default=0.75, help="GiB: plan(1 layer) - one layer")
    parser.add_argument("--layer", type=float, default=5.04, help="GiB: plan(2 layers) - plan(1 layer)")
    args = parser.parse_args()
    print("#", os.popen("grep -m1 'model name' /proc/cpuinfo").read().strip(), "| jax", jax.__version__)
    if args.report in ("bytes", "residuals"):
        rows = (
            bytes_report()
            if args.report == "bytes"
            else residuals_report(args.mesh, args.pairs, args.length, args.fixed, args.layer)
        )
        for row in rows:
            print(json.dumps(row))
        return
    for remat in args.remat:
        policy = None if remat == "none" else remat
        print(json.dumps(plan(args.mesh, args.pairs, args.length, args.layers, policy, args.scan)))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
