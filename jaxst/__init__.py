"""jaxst: sentence embeddings in pure JAX, with sentence-transformers parity."""

__version__ = "0.1.0"
