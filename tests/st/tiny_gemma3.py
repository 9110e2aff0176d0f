"""A tiny EmbeddingGemma-like model folder, made offline: a random 3-layer bidirectional Gemma 3 (local
and global layers, grouped-query attention, a window shorter than the longest texts) behind a BPE
tokenizer that, as EmbeddingGemma's, starts each text with <bos>, ends it with <eos> and pads on the
right with <pad> (id 0)."""

from __future__ import annotations

from pathlib import Path

import torch
import transformers
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

from jaxst.data import load_stsb
from tests.models.tiny_models import perturb_
from tests.st.tiny_st import HIDDEN, MAX_TOKENS

SPECIAL_TOKENS = ("<pad>", "<eos>", "<bos>", "<unk>")  # ids 0..3, as Gemma's vocabulary
# EmbeddingGemma's retrieval prompts.
QUERY_PROMPT = "task: search result | query: "
DOCUMENT_PROMPT = "title: none | text: "


def save_gemma_tokenizer(folder: Path) -> transformers.PreTrainedTokenizerBase:
    """A GemmaTokenizer of a 400-token BPE trained on STS-B train sentences, saved to `folder`."""
    sentences = [s for pair in load_stsb("train") for s in pair[:2]]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=400, min_frequency=2, special_tokens=list(SPECIAL_TOKENS))
    bpe.train_from_iterator(sentences, trainer)
    bpe.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", 2), ("<eos>", 1)]
    )
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        pad_token="<pad>",
        eos_token="<eos>",
        bos_token="<bos>",
        unk_token="<unk>",
        padding_side="right",
    )
    tokenizer.save_pretrained(folder)
    return tokenizer


def save_tiny_gemma3(folder: Path) -> Path:
    """The tokenizer and a perturbed bidirectional Gemma3TextModel (hidden 32, layers local, global,
    local, 4 query and 2 key / value heads of 16, a window of 4 positions either side) with the
    tokenizer's vocabulary and padding id, saved to `folder`."""
    tokenizer = save_gemma_tokenizer(folder)
    torch.manual_seed(0)
    config = transformers.Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        intermediate_size=48,
        max_position_embeddings=MAX_TOKENS + 16,
        query_pre_attn_scalar=16,
        layer_types=["sliding_attention", "full_attention", "sliding_attention"],
        sliding_window=8,
        use_bidirectional_attention=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    perturb_(transformers.Gemma3TextModel(config), scale=0.1).save_pretrained(folder)
    return folder
