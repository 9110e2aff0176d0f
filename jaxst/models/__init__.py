"""Flax NNX encoders that load Hugging Face checkpoints: BERT (MiniLM, BGE, E5, GTE), DistilBERT,
RoBERTa, XLM-RoBERTa, MPNet, ModernBERT, T5 / mT5 encoders, Qwen3 (Qwen3-Embedding) and Gemma 3 text
(EmbeddingGemma); `SUPPORTED_MODEL_TYPES` lists their model types.

Beside them, sentence-transformers' module classes under their names, so that its model-building code
runs with the import changed: `models.Transformer`, `models.Pooling`, `models.Dense`, `models.Normalize`
(from `jaxst.modules`, imported on first use: `jaxst.modules` builds on this package).
"""

from typing import TYPE_CHECKING

from jaxst.io.hf import CheckpointExtras, WeightLoadingError
from jaxst.lazy_exports import lazy_exports
from jaxst.models.config import UnsupportedConfigError
from jaxst.models.encoder import TransformerEncoder
from jaxst.models.loading import load_checkpoint, load_encoder, save_encoder
from jaxst.models.registry import SUPPORTED_MODEL_TYPES
from jaxst.models.spec import EncoderSpec

if TYPE_CHECKING:
    from jaxst.modules import Dense, Normalize, Pooling, Transformer

__all__ = [
    "SUPPORTED_MODEL_TYPES",
    "CheckpointExtras",
    "Dense",
    "EncoderSpec",
    "Normalize",
    "Pooling",
    "Transformer",
    "TransformerEncoder",
    "UnsupportedConfigError",
    "WeightLoadingError",
    "load_checkpoint",
    "load_encoder",
    "save_encoder",
]

__getattr__, __dir__ = lazy_exports(
    __name__, {name: "jaxst.modules" for name in ("Dense", "Normalize", "Pooling", "Transformer")}
)
