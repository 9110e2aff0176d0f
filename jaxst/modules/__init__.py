"""The sentence-transformers pipeline modules: Transformer (tokenizer side), Pooling, Dense, Normalize."""

from jaxst.modules.dense import Dense
from jaxst.modules.normalize import Normalize
from jaxst.modules.pooling import Pooling
from jaxst.modules.transformer import Tokenized, Transformer

__all__ = ["Dense", "Normalize", "Pooling", "Tokenized", "Transformer"]
