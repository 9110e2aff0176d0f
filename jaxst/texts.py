"""The texts users hand to encode, tokenize and fit, checked once and turned into a list of str."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def check_texts(texts: Sequence[str]) -> list[str]:
    """The texts as a list.

    Raises:
        TypeError: when `texts` is not a list, tuple (or other sequence) or 1-D NumPy array, saying what it
            is; or naming the first element that is not a str.
    """
    if isinstance(texts, np.ndarray) and texts.ndim == 1:
        texts = texts.tolist()
    elif isinstance(texts, Sequence) and not isinstance(texts, (str, bytes, bytearray, np.ndarray)):
        texts = list(texts)
    else:
        kind = f"a {texts.ndim}-D NumPy array" if isinstance(texts, np.ndarray) else type(texts).__name__
        raise TypeError(
            f"sentences must be a str, or a list, tuple or 1-D NumPy array of str; got {kind} {texts!r:.60}."
        )
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"sentences[{index}] is a {type(text).__name__}, expected a str.")
    return texts
