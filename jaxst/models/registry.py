"""The encoder families by transformers model_type: the one place a new family is registered."""

from __future__ import annotations

from jaxst.io.hf import KeyTable
from jaxst.models.bert import BertEncoder
from jaxst.models.distilbert import DistilBertEncoder
from jaxst.models.encoder import TransformerEncoder
from jaxst.models.gemma3 import Gemma3Encoder
from jaxst.models.modernbert import ModernBertEncoder
from jaxst.models.mpnet import MPNetEncoder
from jaxst.models.qwen3 import Qwen3Encoder
from jaxst.models.roberta import RobertaEncoder
from jaxst.models.t5 import T5Encoder

# The bidirectional encoders, then the decoders: the order in which error messages list them.
ENCODER_CLASSES: dict[str, type[TransformerEncoder]] = {
    "bert": BertEncoder,
    "distilbert": DistilBertEncoder,
    "mpnet": MPNetEncoder,
    "roberta": RobertaEncoder,
    "xlm-roberta": RobertaEncoder,
    "modernbert": ModernBertEncoder,
    "t5": T5Encoder,
    "mt5": T5Encoder,
    "qwen3": Qwen3Encoder,
    "gemma3_text": Gemma3Encoder,
}
SUPPORTED_MODEL_TYPES: tuple[str, ...] = tuple(ENCODER_CLASSES)


def key_table(model_type: str, num_layers: int) -> KeyTable:
    """The checkpoint key (without prefix) -> (parameter path, transposed) table of a `model_type` encoder
    with `num_layers` layers."""
    return ENCODER_CLASSES[model_type].key_table(num_layers)
