"""jaxst: sentence embeddings in pure JAX, with sentence-transformers parity.

The names sentence-transformers tutorials import: SentenceTransformer, InputExample, SentencesDataset,
DataLoader, NoDuplicatesDataLoader, LoggingHandler, LoraConfig, SentenceTransformerTrainer,
SentenceTransformerTrainingArguments, SimilarityFunction, losses, evaluation, models, util.

Each name is imported on first use (`jaxst.lazy_exports`): `import jaxst` alone loads neither JAX nor
transformers. Imported after JAX, and before JAX made its CPU backend, it turns JAX's asynchronous CPU
dispatch off (`jaxst.host_memory`: faster training steps on the CPU).
"""

import importlib.metadata
from typing import TYPE_CHECKING

from jaxst.host_memory import run_cpu_programs_on_the_calling_thread
from jaxst.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from jaxst import evaluation, losses, models, util
    from jaxst.logging_handler import LoggingHandler
    from jaxst.lora import LoraConfig
    from jaxst.sentence_transformer import SentenceTransformer
    from jaxst.similarity import SimilarityFunction
    from jaxst.training.data import DataLoader, InputExample, NoDuplicatesDataLoader, SentencesDataset
    from jaxst.training.trainer import SentenceTransformerTrainer
    from jaxst.training.training_args import SentenceTransformerTrainingArguments

try:
    __version__ = importlib.metadata.version("jaxst")
except importlib.metadata.PackageNotFoundError:  # imported from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "DataLoader",
    "InputExample",
    "LoggingHandler",
    "LoraConfig",
    "NoDuplicatesDataLoader",
    "SentenceTransformer",
    "SentenceTransformerTrainer",
    "SentenceTransformerTrainingArguments",
    "SentencesDataset",
    "SimilarityFunction",
    "evaluation",
    "losses",
    "models",
    "util",
]

# Where JAX is imported already, before it makes its CPU backend (`jaxst.host_memory`).
run_cpu_programs_on_the_calling_thread()

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "DataLoader": "jaxst.training.data",
        "InputExample": "jaxst.training.data",
        "LoggingHandler": "jaxst.logging_handler",
        "LoraConfig": "jaxst.lora",
        "NoDuplicatesDataLoader": "jaxst.training.data",
        "SentenceTransformer": "jaxst.sentence_transformer",
        "SentenceTransformerTrainer": "jaxst.training.trainer",
        "SentenceTransformerTrainingArguments": "jaxst.training.training_args",
        "SentencesDataset": "jaxst.training.data",
        "SimilarityFunction": "jaxst.similarity",
        "evaluation": "jaxst.evaluation",
        "losses": "jaxst.losses",
        "models": "jaxst.models",
        "util": "jaxst.util",
    },
)
