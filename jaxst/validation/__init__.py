"""Cross-framework validation: run sentence-transformers (PyTorch) beside jaxst on the same numbers.

Needs torch and sentence-transformers; nothing else in jaxst imports this package.
"""
