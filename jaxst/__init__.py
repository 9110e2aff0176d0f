"""jaxst: sentence embeddings in pure JAX, with sentence-transformers parity.

The names sentence-transformers tutorials import: SentenceTransformer, InputExample, SentencesDataset,
DataLoader, NoDuplicatesDataLoader, LoggingHandler, losses, evaluation, util.
"""

import importlib.metadata

from jaxst import evaluation, losses, util
from jaxst.logging_handler import LoggingHandler
from jaxst.sentence_transformer import SentenceTransformer
from jaxst.training.data import DataLoader, InputExample, NoDuplicatesDataLoader, SentencesDataset

try:
    __version__ = importlib.metadata.version("jaxst")
except importlib.metadata.PackageNotFoundError:  # imported from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "DataLoader",
    "InputExample",
    "LoggingHandler",
    "NoDuplicatesDataLoader",
    "SentenceTransformer",
    "SentencesDataset",
    "evaluation",
    "losses",
    "util",
]
