"""The sentence-transformers pipeline modules: Transformer (encoder, tokenizer), Pooling, Dense, Normalize."""

from jaxst.modules.dense import Dense
from jaxst.modules.hf_transformer import Transformer
from jaxst.modules.normalize import Normalize
from jaxst.modules.pooling import Pooling
from jaxst.modules.transformer import Tokenized, TransformerTokenizer

__all__ = ["Dense", "Normalize", "Pooling", "Tokenized", "Transformer", "TransformerTokenizer"]
