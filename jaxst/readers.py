"""sentence-transformers' `readers` module name, so that `from jaxst.readers import InputExample` works."""

from jaxst.training.data import InputExample

__all__ = ["InputExample"]
