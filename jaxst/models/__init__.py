"""Flax NNX encoders that load Hugging Face checkpoints: BERT (MiniLM, BGE, E5, GTE), DistilBERT,
RoBERTa, XLM-RoBERTa, MPNet, ModernBERT, T5 / mT5 encoders, Qwen3 (Qwen3-Embedding) and Gemma 3 text
(EmbeddingGemma); `SUPPORTED_MODEL_TYPES` lists their model types."""

from jaxst.io.hf import CheckpointExtras, WeightLoadingError
from jaxst.models.config import UnsupportedConfigError
from jaxst.models.encoder import TransformerEncoder
from jaxst.models.loading import load_checkpoint, load_encoder, save_encoder
from jaxst.models.registry import SUPPORTED_MODEL_TYPES
from jaxst.models.spec import EncoderSpec

__all__ = [
    "SUPPORTED_MODEL_TYPES",
    "CheckpointExtras",
    "EncoderSpec",
    "TransformerEncoder",
    "UnsupportedConfigError",
    "WeightLoadingError",
    "load_checkpoint",
    "load_encoder",
    "save_encoder",
]
