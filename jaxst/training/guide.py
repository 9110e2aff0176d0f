"""The guide model of GISTEmbedLoss / CachedGISTEmbedLoss: its embeddings of each training batch.

sentence-transformers runs the guide under `torch.no_grad()` in eval mode (only the trained model is put
in train mode), on the trained model's features when both tokenize alike, else on the model's tokens
decoded back to text (special tokens skipped) and re-tokenized by the guide. `GuideEmbedder` does the
same outside the compiled train step: the guide's embeddings enter the batch as its `guide_embeddings`
(`jaxst.batch_layouts`), so they carry no gradient and the guide's parameters never reach the optimizer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from jaxst.batch_layouts import PaddedBatch, as_batch


class GuideEmbedder:
    """Embeds a tokenized training batch with a frozen guide model.

    Args:
        guide: a jaxst SentenceTransformer.
        model: the trained jaxst SentenceTransformer whose token arrays the batches hold.
    """

    def __init__(self, guide: Any, model: Any):
        self.guide = guide
        self.model_tokenizer = model.tokenizer
        # sentence-transformers' must_retokenize, negated.
        self.same_tokens = (
            model.tokenizer.get_vocab() == guide.tokenizer.get_vocab()
            and guide.max_seq_length >= model.max_seq_length
        )
        self._forward = jax.jit(guide.forward)

    def __call__(self, batch: Mapping[str, np.ndarray] | PaddedBatch) -> np.ndarray:
        """A padded batch of the trained model (or its named arrays) -> the guide's embeddings of its
        texts, [k, B, D_guide] float32."""
        batch = as_batch(batch)
        k, b = batch.attention_mask.shape[:2]
        texts = batch.texts()
        if self.same_tokens:
            embeddings = np.asarray(self._forward(self.guide.params, texts)["sentence_embedding"])
        else:
            decoded = self.model_tokenizer.batch_decode(texts["input_ids"].tolist(), skip_special_tokens=True)
            # this process' batch, on the guide's device: devices= keeps encode from sharing the texts
            # out across the processes of a jax.distributed job, whose batches differ
            embeddings = self.guide.encode(
                decoded, batch_size=k * b, show_progress_bar=False, devices=[self.guide.device]
            )
        return embeddings.astype(np.float32).reshape(k, b, -1)
