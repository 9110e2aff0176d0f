"""A tiny modernbert-embed-like model folder, made offline: a random 3-layer ModernBERT (global, local,
global attention, a window shorter than the texts) behind a byte-level BPE tokenizer that, as
ModernBERT's, wraps every text in [CLS] ... [SEP], pads on the right with [PAD] and makes no token types."""

from __future__ import annotations

from pathlib import Path

import torch
import transformers
from tokenizers import ByteLevelBPETokenizer, processors

from jaxst.data import load_stsb
from tests.models.tiny_models import perturb_
from tests.st.tiny_st import HIDDEN, MAX_TOKENS

SPECIAL_TOKENS = ("[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]")
# modernbert-embed's prompts.
PROMPTS = {"query": "search_query: ", "document": "search_document: "}


def save_modernbert_tokenizer(folder: Path) -> transformers.PreTrainedTokenizerBase:
    """A fast tokenizer of a 400-token byte-level BPE trained on STS-B train sentences, saved to `folder`."""
    sentences = [s for pair in load_stsb("train") for s in pair[:2]]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(sentences, vocab_size=400, min_frequency=2, special_tokens=list(SPECIAL_TOKENS))
    cls, sep = (bpe.token_to_id(token) for token in ("[CLS]", "[SEP]"))
    bpe._tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer,
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        mask_token="[MASK]",
        model_input_names=["input_ids", "attention_mask"],
    )
    tokenizer.save_pretrained(folder)
    return tokenizer


def save_tiny_modernbert(folder: Path) -> Path:
    """The tokenizer and a perturbed ModernBertModel (hidden 32, 3 layers of 4 heads, a window of 4
    positions on either side) with the tokenizer's vocabulary and special ids, saved to `folder`."""
    tokenizer = save_modernbert_tokenizer(folder)
    torch.manual_seed(0)
    config = transformers.ModernBertConfig(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=48,
        max_position_embeddings=MAX_TOKENS + 16,
        global_attn_every_n_layers=2,
        local_attention=8,
        pad_token_id=tokenizer.pad_token_id,
        cls_token_id=tokenizer.cls_token_id,
        sep_token_id=tokenizer.sep_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
    )
    perturb_(transformers.ModernBertModel(config), scale=0.1).save_pretrained(folder)
    return folder
