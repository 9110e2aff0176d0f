"""Session fixtures of the loss tests that run a model: a tiny BERT in jaxst and sentence-transformers,
and a few SNLI rows."""

from __future__ import annotations

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer as TorchSentenceTransformer

from jaxst.sentence_transformer import SentenceTransformer
from tests.shared_data import read_tsv


@pytest.fixture(scope="session")
def models(tiny_folder):
    torch_model = TorchSentenceTransformer(str(tiny_folder), device="cpu")
    torch_model.eval()  # dropout off; autograd still runs
    return SentenceTransformer(tiny_folder), torch_model


@pytest.fixture(scope="session")
def rows():
    snli = read_tsv("pairs/snli_triplets.tsv.gz", "dev")[:6]
    texts = [[r["anchor"] for r in snli], [r["positive"] for r in snli]]
    labels = np.array([1.0, 0.2, 0.8, 0.0, 0.5, 0.9], np.float32)
    return texts, labels
