"""jaxst: sentence embeddings in pure JAX, with sentence-transformers parity.

The names sentence-transformers tutorials import: SentenceTransformer, InputExample, SentencesDataset,
DataLoader, NoDuplicatesDataLoader, LoggingHandler, losses, evaluation, util.
"""

__version__ = "0.1.0"

from jaxst import evaluation, losses, util  # noqa: E402
from jaxst.logging_handler import LoggingHandler  # noqa: E402
from jaxst.sentence_transformer import SentenceTransformer  # noqa: E402
from jaxst.training.data import DataLoader, InputExample, NoDuplicatesDataLoader, SentencesDataset  # noqa: E402

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
