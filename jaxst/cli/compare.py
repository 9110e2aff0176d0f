"""Compare a model in jaxst and in PyTorch sentence-transformers, stage by stage (and loss by loss).

Both frameworks get the same token ids (sentence-transformers' tokenization). The table lists, per stage
(token embeddings, each pipeline module's sentence embedding, the similarity matrix), the largest
absolute difference and the largest one relative to the reference's largest magnitude. A row is within
tolerance when either is at most --atol (loss values and gradients vary in scale, hence the relative
one). Exit status 0 when every row is within tolerance, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from jaxst.cli.errors import CliError, load_model
from jaxst.cli.files import output_path, read_text, text_lines, write_bytes
from jaxst.cli.options import NON_NEGATIVE

SAMPLE_TEXTS = (
    "A man is playing a guitar.",
    "A woman is slicing an onion.",
    "The cat sits on the mat.",
    "Stocks fell sharply on Monday after the announcement.",
    "Two dogs are running through a snowy field.",
    "How do I reset my password?",
    "The quick brown fox jumps over the lazy dog near the river bank at dawn.",
    "Ok.",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a sentence-transformers or Hugging Face model folder")
    parser.add_argument(
        "--reference", help="folder PyTorch loads (default: MODEL), e.g. the original of a converted model"
    )
    parser.add_argument(
        "--texts", help="UTF-8 text file, one text per line, empty lines skipped (default: a built-in sample)"
    )
    parser.add_argument(
        "--atol", type=NON_NEGATIVE, default=1e-5, help="largest absolute difference allowed (1e-5)"
    )
    parser.add_argument("--losses", action="store_true", help="also compare every loss: value and gradient")
    parser.add_argument("--json", dest="json_path", help="also write the table to this JSON file")


def difference(jaxst_value: np.ndarray, torch_value: np.ndarray, mask: np.ndarray | None = None) -> dict:
    """{"max_abs", "max_rel"}: max |a - b| (over unmasked rows) and that over max |b|."""
    a, b = np.asarray(jaxst_value, np.float64), np.asarray(torch_value, np.float64)
    if a.shape != b.shape:
        raise CliError(f"shapes differ: jaxst {a.shape}, torch {b.shape}")
    diff = np.abs(a - b)
    if mask is not None:
        diff, b = diff[mask.astype(bool)], b[mask.astype(bool)]
    max_abs = float(diff.max(initial=0.0))
    return {"max_abs": max_abs, "max_rel": max_abs / max(float(np.abs(b).max(initial=0.0)), 1e-30)}


def stage_outputs_torch(st_model, texts):
    """Features after every module of a PyTorch SentenceTransformer, and the tokenized inputs."""
    import torch

    features = st_model.tokenize(list(texts))
    inputs = {
        k: v.numpy() for k, v in features.items() if k in ("input_ids", "attention_mask", "token_type_ids")
    }
    stages = []
    with torch.no_grad():
        for index, module in enumerate(st_model):
            features = module(features)
            name = type(module).__name__
            key = "token_embeddings" if index == 0 else "sentence_embedding"
            stages.append((f"{index}:{name}", features[key].float().numpy()))
    return inputs, stages


def stage_outputs_jaxst(model, inputs):
    """Features after the encoder and after every pipeline module, on the given token ids."""
    import jax.numpy as jnp
    from flax import nnx

    features = {k: jnp.asarray(v, jnp.int32) for k, v in inputs.items()}
    encoder = nnx.merge(model.graphdef, model.params["encoder"])
    token_type_ids = features.get("token_type_ids") if model.transformer.uses_token_type_ids else None
    features["token_embeddings"] = encoder(features["input_ids"], features["attention_mask"], token_type_ids)
    features["prompt_length"] = jnp.int32(0)
    stages = [("0:Transformer", np.asarray(features["token_embeddings"], np.float32))]
    for index, (name, module) in enumerate(model.pipeline, start=1):
        features = module(model.params["modules"].get(name), features)
        stages.append(
            (f"{index}:{type(module).__name__}", np.asarray(features["sentence_embedding"], np.float32))
        )
    return stages


def compare_stages(model, st_model, texts) -> list[dict]:
    inputs, torch_stages = stage_outputs_torch(st_model, texts)
    jax_stages = stage_outputs_jaxst(model, inputs)
    rows = []
    for (name, ours), (torch_name, theirs) in zip(jax_stages, torch_stages, strict=True):
        mask = inputs["attention_mask"] if name.startswith("0:") else None
        rows.append({"stage": f"{name} / {torch_name.split(':')[1]}", **difference(ours, theirs, mask)})
    ours, theirs = jax_stages[-1][1], torch_stages[-1][1]
    rows.append({"stage": "similarity (cosine)", **difference(cosine_matrix(ours), cosine_matrix(theirs))})
    return rows


def cosine_matrix(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x @ x.T


def load_torch_model(path: str):
    try:
        from sentence_transformers import SentenceTransformer as TorchSentenceTransformer
    except ImportError:
        raise CliError(
            "compare needs PyTorch sentence-transformers: pip install torch==2.13.0 sentence-transformers"
        ) from None
    return TorchSentenceTransformer(path, device="cpu")


def within(row: dict, atol: float) -> bool:
    return row["max_abs"] <= atol or row["max_rel"] <= atol


def print_table(rows: list[dict], atol: float) -> None:
    width = max(len(r["stage"]) for r in rows)
    print(f"{'stage':<{width}}  {'max abs diff':>12}  {'max rel diff':>12}  ok")
    for r in rows:
        ok = "yes" if within(r, atol) else "NO"
        print(f"{r['stage']:<{width}}  {r['max_abs']:>12.3e}  {r['max_rel']:>12.3e}  {ok}")


def run(args: argparse.Namespace) -> int:
    import jax

    jax.config.update("jax_default_matmul_precision", "highest")
    json_path = output_path(args.json_path, "--json") if args.json_path else None
    texts = SAMPLE_TEXTS
    if args.texts:
        texts = [t for t in text_lines(read_text(args.texts, "texts file")) if t]
        if not texts:
            raise CliError(f"texts file {args.texts} holds no text")
    model = load_model(args.model)
    reference = args.reference or args.model
    if not Path(reference).is_dir():
        raise CliError(f"reference model folder not found: {reference}")
    st_model = load_torch_model(reference)
    rows = compare_stages(model, st_model, texts)
    if args.losses:
        from jaxst.validation.loss_parity import compare_losses

        embeddings = model.encode(list(texts) * (2 if len(texts) % 2 else 1))
        rows += compare_losses(embeddings)
    print_table(rows, args.atol)
    if json_path:
        write_bytes(json_path, json.dumps({"atol": args.atol, "rows": rows}, indent=2).encode())
    return 0 if all(within(r, args.atol) for r in rows) else 1
