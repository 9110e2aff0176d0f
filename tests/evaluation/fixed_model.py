"""A stand-in model with fixed embeddings, usable by jaxst's and by sentence-transformers' evaluators.

Every text maps to a fixed float32 vector (an explicit one, else a normal vector seeded by the text's
hash), so both libraries see exactly the same embeddings and their metrics can be compared at 1e-6.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np
import torch
from sentence_transformers.util import SimilarityFunction, quantize_embeddings


def hashed_vector(text: str, dim: int) -> np.ndarray:
    """A standard normal float32 vector seeded by the text."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


def sign_vector(text: str, dim: int) -> np.ndarray:
    """A float32 vector of +-1 entries seeded by the text, for exact ties.

    For dim a power of four its norm is a power of two, so the normalized entries, their products and every
    partial sum of a cosine are exact in float32: equal vectors score exactly alike in any matmul kernel,
    chunked or not, which vectors of arbitrary floats do not (their sums round by summation order).
    """
    return np.where(hashed_vector(text, dim) >= 0, 1.0, -1.0).astype(np.float32)


class _NoModelCard:
    def set_evaluation_metrics(self, *args, **kwargs) -> None:
        pass


class FixedEmbeddingModel:
    """`encode` (numpy, a torch tensor, or a list of torch tensors as sentence-transformers returns without
    convert_to_numpy; with sentence-transformers' truncation, normalization and quantization),
    `encode_query` / `encode_document`, `similarity_fn_name`, `similarity`."""

    device = torch.device("cpu")
    model_card_data = _NoModelCard()

    def __init__(
        self,
        vectors: Mapping[str, np.ndarray] | None = None,
        dim: int = 16,
        similarity_fn_name: str = "cosine",
        prompts: Mapping[str, str] | None = None,
    ) -> None:
        self.vectors = {text: np.asarray(v, dtype=np.float32) for text, v in (vectors or {}).items()}
        self.dim = dim
        self.similarity_fn_name = similarity_fn_name
        self.prompts = dict(prompts or {})
        self.encoded_texts: list[str] = []

    def vector(self, text: str) -> np.ndarray:
        return self.vectors[text] if text in self.vectors else hashed_vector(text, self.dim)

    def encode(
        self,
        sentences,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        normalize_embeddings: bool = False,
        prompt_name: str | None = None,
        prompt: str | None = None,
        truncate_dim: int | None = None,
        precision: str | None = "float32",
        **kwargs,
    ):
        texts = [sentences] if isinstance(sentences, str) else list(sentences)
        prefix = prompt if prompt is not None else self.prompts.get(prompt_name, "") if prompt_name else ""
        texts = [prefix + text for text in texts]
        self.encoded_texts += texts
        embeddings = np.stack([self.vector(text) for text in texts]) if texts else np.zeros((0, self.dim))
        embeddings = embeddings.astype(np.float32)[:, :truncate_dim]
        if normalize_embeddings:
            norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
            embeddings = embeddings / np.maximum(norms, 1e-12)
        if precision not in (
            None,
            "float32",
        ):  # sentence-transformers' own quantization, as its encode applies it
            embeddings = quantize_embeddings(embeddings, precision=precision)
        if isinstance(sentences, str):
            embeddings = embeddings[0]
        if convert_to_tensor:
            return torch.from_numpy(embeddings)
        return embeddings if convert_to_numpy else list(torch.from_numpy(embeddings))

    encode_query = encode
    encode_document = encode

    def similarity(self, a, b) -> torch.Tensor:
        return SimilarityFunction.to_similarity_fn(self.similarity_fn_name)(a, b)

    def similarity_pairwise(self, a, b) -> torch.Tensor:
        return SimilarityFunction.to_similarity_pairwise_fn(self.similarity_fn_name)(a, b)
