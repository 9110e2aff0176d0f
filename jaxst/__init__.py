"""jaxst: sentence embeddings in pure JAX, with sentence-transformers parity."""

__version__ = "0.1.0"

from jaxst.sentence_transformer import SentenceTransformer  # noqa: E402

__all__ = ["SentenceTransformer"]
