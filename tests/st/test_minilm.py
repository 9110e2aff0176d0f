"""The real all-MiniLM-L6-v2 on every STS-B test sentence: jaxst against PyTorch sentence-transformers.

Heavy (two full encodes of 2,758 sentences' unique texts), so marked slow and computed once per module.
"""

import numpy as np
import pytest
from scipy.stats import spearmanr
from sentence_transformers import SentenceTransformer as TorchSentenceTransformer

from jaxst.sentence_transformer import SentenceTransformer
from tests.shared_data import stsb
from tests.st.tiny_st import MINILM

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stsb_test():
    """STS-B test rows, its unique sentences, and their jaxst and sentence-transformers embeddings."""
    rows = stsb("test")
    sentences = sorted({row[key] for row in rows for key in ("sentence1", "sentence2")})
    ours = SentenceTransformer(MINILM).encode(sentences, batch_size=64)
    theirs = TorchSentenceTransformer(str(MINILM), device="cpu").encode(sentences, batch_size=64)
    return rows, sentences, ours, theirs


def test_embeddings_match_sentence_transformers(stsb_test):
    _, sentences, ours, theirs = stsb_test
    assert ours.shape == theirs.shape == (len(sentences), 384)
    np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0)


def test_stsb_spearman_is_the_published_figure(stsb_test):
    rows, sentences, ours, _ = stsb_test
    index = {sentence: i for i, sentence in enumerate(sentences)}
    first = ours[[index[row["sentence1"]] for row in rows]]
    second = ours[[index[row["sentence2"]] for row in rows]]
    cosine = np.sum(first * second, axis=1) / (np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1))
    gold = [float(row["score"]) for row in rows]
    assert round(100 * spearmanr(cosine, gold).statistic, 2) == 82.03
