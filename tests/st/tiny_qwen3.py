"""A tiny Qwen3-Embedding-like model folder, made offline: a random 2-layer Qwen3 (grouped-query
attention) behind a byte-level BPE tokenizer that, as Qwen3-Embedding's, pads on the left, pads with
<|endoftext|> and appends it to every text."""

from __future__ import annotations

from pathlib import Path

import torch
import transformers
from tokenizers import ByteLevelBPETokenizer, processors

from jaxst.data import load_stsb
from tests.models.tiny_models import perturb_
from tests.st.tiny_st import HIDDEN, MAX_TOKENS

END_OF_TEXT = "<|endoftext|>"
SPECIAL_TOKENS = (END_OF_TEXT, "<|im_start|>", "<|im_end|>")
# Qwen3-Embedding's query prompt (its documents get none).
QUERY_PROMPT = "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:"


def save_decoder_tokenizer(folder: Path) -> transformers.PreTrainedTokenizerBase:
    """A Qwen2Tokenizer of a 400-token byte-level BPE trained on STS-B train sentences, saved to `folder`."""
    sentences = [s for pair in load_stsb("train") for s in pair[:2]]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(sentences, vocab_size=400, min_frequency=2, special_tokens=list(SPECIAL_TOKENS))
    bpe._tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {END_OF_TEXT}", special_tokens=[(END_OF_TEXT, bpe.token_to_id(END_OF_TEXT))]
    )
    tokenizer = transformers.Qwen2Tokenizer(tokenizer_object=bpe._tokenizer, padding_side="left")
    tokenizer.save_pretrained(folder)
    return tokenizer


def save_tiny_qwen3(folder: Path) -> Path:
    """The tokenizer and a perturbed Qwen3Model (hidden 32, 2 layers, 4 query and 2 key / value heads of
    16, rotary base 1000) with the tokenizer's vocabulary and padding id, saved to `folder`."""
    tokenizer = save_decoder_tokenizer(folder)
    torch.manual_seed(0)
    config = transformers.Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        intermediate_size=48,
        max_position_embeddings=MAX_TOKENS + 16,
        rope_parameters={"rope_type": "default", "rope_theta": 1000.0},
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    perturb_(transformers.Qwen3Model(config), scale=0.1).save_pretrained(folder)
    return folder
