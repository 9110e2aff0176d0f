"""Flax NNX encoders that load Hugging Face checkpoints: BERT (MiniLM, BGE, E5, GTE), DistilBERT,
RoBERTa, XLM-RoBERTa and MPNet."""

from jaxst.io.hf import WeightLoadingError
from jaxst.models.config import UnsupportedConfigError
from jaxst.models.encoder import TransformerEncoder
from jaxst.models.loading import load_encoder, save_encoder
from jaxst.models.registry import SUPPORTED_MODEL_TYPES

__all__ = [
    "SUPPORTED_MODEL_TYPES",
    "TransformerEncoder",
    "UnsupportedConfigError",
    "WeightLoadingError",
    "load_encoder",
    "save_encoder",
]
