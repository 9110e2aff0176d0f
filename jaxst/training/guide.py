"""The guide model of GISTEmbedLoss / CachedGISTEmbedLoss: its embeddings of each training batch.

sentence-transformers runs the guide under `torch.no_grad()` in eval mode (only the trained model is put
in train mode), on the trained model's features when both tokenize alike, else on the model's tokens
decoded back to text (special tokens skipped) and re-tokenized by the guide. `GuideEmbedder` does the
same outside the compiled train step: the guide's embeddings enter the batch as `guide_embeddings`
[k, B, D_guide] float32, split over devices with the examples, so they carry no gradient and the guide's
parameters never reach the optimizer.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

TOKEN_FEATURES = ("input_ids", "attention_mask", "token_type_ids")


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

    def __call__(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """[k, B, T] token arrays of the trained model -> the guide's embeddings [k, B, D_guide] float32."""
        k, b, t = arrays["input_ids"].shape
        if self.same_tokens:
            features = {name: arrays[name].reshape(k * b, t) for name in TOKEN_FEATURES if name in arrays}
            embeddings = np.asarray(self._forward(self.guide.params, features)["sentence_embedding"])
        else:
            texts = self.model_tokenizer.batch_decode(
                arrays["input_ids"].reshape(k * b, t).tolist(), skip_special_tokens=True
            )
            embeddings = self.guide.encode(texts, batch_size=k * b, show_progress_bar=False)
        return embeddings.astype(np.float32).reshape(k, b, -1)
