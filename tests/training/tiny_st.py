"""A tiny sentence-transformers model folder for training tests, made offline.

A WordPiece tokenizer trained on STS-B train sentences (vocabulary 1,000) and a random 2-layer BERT
(hidden 32, 4 heads), saved by PyTorch sentence-transformers as Transformer + mean Pooling.
"""

from __future__ import annotations

from pathlib import Path

import torch
import transformers
from sentence_transformers import SentenceTransformer as TorchSentenceTransformer
from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
from tokenizers import BertWordPieceTokenizer
from tokenizers.models import WordPiece

from jaxst.data import load_stsb

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # BertWordPieceTokenizer's


def sorted_vocabulary(vocabulary: dict[str, int]) -> dict[str, int]:
    """The trained vocabulary with its ids in a fixed order: the special tokens first, as trained, then the
    other tokens sorted. The trainer picks the same tokens every run but numbers them in an order that
    changes from run to run; fixed ids make each test's inputs, and so its rounding, the same every run."""
    specials = sorted(SPECIAL_TOKENS, key=vocabulary.get)  # the template of [CLS] ... [SEP] keeps its ids
    others = sorted(token for token in vocabulary if token not in SPECIAL_TOKENS)
    return {token: index for index, token in enumerate(specials + others)}


def make_tiny_st_model(folder: Path, *, seed: int = 0, max_seq_length: int = 32) -> Path:
    """Writes the tiny model to `folder` and returns it."""
    hf_folder = folder / "hf"
    sentences = [s for pair in load_stsb("train") for s in pair[:2]]
    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator(sentences, vocab_size=1000, min_frequency=2)
    wordpiece._tokenizer.model = WordPiece(
        sorted_vocabulary(wordpiece.get_vocab()), unk_token="[UNK]", continuing_subword_prefix="##"
    )
    tokenizer = transformers.BertTokenizerFast(tokenizer_object=wordpiece._tokenizer, do_lower_case=True)
    tokenizer.save_pretrained(hf_folder)
    torch.manual_seed(seed)
    config = transformers.BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    transformers.BertModel(config).save_pretrained(hf_folder)
    transformer = Transformer(str(hf_folder), max_seq_length=max_seq_length)
    model = TorchSentenceTransformer(modules=[transformer, Pooling(32, "mean")], device="cpu")
    model.save(str(folder / "model"))
    return folder / "model"
