"""A tiny sentence-t5-like model folder, made offline: a random 2-layer T5 encoder behind a SentencePiece
(Unigram) tokenizer that, as T5's, numbers <pad>, </s>, <unk> 0, 1, 2, pads on the right and appends </s>
to every text."""

from __future__ import annotations

from pathlib import Path

import torch
import transformers
from tokenizers import processors
from tokenizers.implementations import SentencePieceUnigramTokenizer

from jaxst.data import load_stsb
from tests.models.tiny_models import perturb_
from tests.st.tiny_st import HIDDEN

SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")


def save_t5_tokenizer(folder: Path) -> transformers.PreTrainedTokenizerBase:
    """A T5 tokenizer of a 300-piece Unigram model trained on 1,000 STS-B train sentences, saved to
    `folder` (the Unigram trainer takes seconds per thousand sentences)."""
    sentences = [s for pair in load_stsb("train")[:500] for s in pair[:2]]
    unigram = SentencePieceUnigramTokenizer()
    unigram.train_from_iterator(
        sentences, vocab_size=300, show_progress=False, special_tokens=list(SPECIAL_TOKENS), unk_token="<unk>"
    )
    unigram._tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", unigram.token_to_id("</s>"))]
    )
    tokenizer = transformers.T5TokenizerFast(
        tokenizer_object=unigram._tokenizer,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        extra_ids=0,
    )
    tokenizer.save_pretrained(folder)
    return tokenizer


def save_tiny_t5(folder: Path, feed_forward_proj: str = "relu") -> Path:
    """The tokenizer and a T5EncoderModel (hidden 32, 2 layers, 4 heads of 8, feed-forward 48, the default
    32 relative buckets up to distance 128) perturbed by noise of 0.1, saved to `folder`."""
    tokenizer = save_t5_tokenizer(folder)
    torch.manual_seed(0)
    config = transformers.T5Config(
        vocab_size=len(tokenizer),
        d_model=HIDDEN,
        num_layers=2,
        num_heads=4,
        d_kv=8,
        d_ff=48,
        feed_forward_proj=feed_forward_proj,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    perturb_(transformers.T5EncoderModel(config), scale=0.1).save_pretrained(folder)
    return folder
