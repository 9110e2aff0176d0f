"""An EmbeddingGemma-like sentence-transformers folder against PyTorch sentence-transformers: a
bidirectional Gemma 3, mean pooling, two Dense layers without bias, Normalize, retrieval prompts, and
saving both ways."""

import jax
import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer as TorchSentenceTransformer
from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer

from jaxst.sentence_transformer import SentenceTransformer
from tests.st.tiny_gemma3 import DOCUMENT_PROMPT, QUERY_PROMPT, save_tiny_gemma3
from tests.st.tiny_st import HIDDEN, MAX_TOKENS, TEXTS

ATOL = 1e-5


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(jaxst, sentence-transformers) models: Transformer, mean Pooling, Dense 32 -> 96 -> 24 (identity
    activation, no bias, as EmbeddingGemma's 768 -> 3072 -> 768), Normalize, with prompts."""
    encoder_folder = save_tiny_gemma3(tmp_path_factory.mktemp("gemma3"))
    torch.manual_seed(1)
    modules = [
        Transformer(str(encoder_folder)),
        Pooling(HIDDEN, pooling_mode="mean"),
        Dense(HIDDEN, 96, bias=False, activation_function=torch.nn.Identity()),
        Dense(96, 24, bias=False, activation_function=torch.nn.Identity()),
        Normalize(),
    ]
    theirs = TorchSentenceTransformer(
        modules=modules, device="cpu", prompts={"query": QUERY_PROMPT, "document": DOCUMENT_PROMPT}
    )
    theirs.max_seq_length = MAX_TOKENS
    folder = tmp_path_factory.mktemp("st")
    theirs.save(str(folder))
    return SentenceTransformer(folder), theirs


def test_the_tokenizer_adds_bos_and_eos_and_pads_on_the_right(models):
    ours, theirs = models
    features = theirs.tokenize(TEXTS[:4])
    assert (features["input_ids"][:, 0] == 2).all() and not features["attention_mask"][:, -1].all()
    padded = ours.tokenize(TEXTS)
    lengths = padded["attention_mask"].sum(axis=1)
    assert (
        lengths.max() == MAX_TOKENS and (padded["input_ids"][np.arange(len(TEXTS)), lengths - 1] == 1).all()
    )


def test_embeddings_match_sentence_transformers(models):
    ours, theirs = models
    assert ours.get_sentence_embedding_dimension() == 24
    np.testing.assert_allclose(ours.encode(TEXTS), theirs.encode(TEXTS), atol=ATOL, rtol=0)
    np.testing.assert_allclose(
        ours.encode_query(TEXTS[:6]), theirs.encode_query(TEXTS[:6]), atol=ATOL, rtol=0
    )
    np.testing.assert_allclose(
        ours.encode_document(TEXTS[:6]), theirs.encode_document(TEXTS[:6]), atol=ATOL, rtol=0
    )


def test_saving_round_trips_both_ways(models, tmp_path):
    """jaxst saves what PyTorch sentence-transformers loads to the same embeddings, and loads it back
    to the same parameters."""
    ours, theirs = models
    expected = theirs.encode(TEXTS)
    ours.save(tmp_path / "saved")
    reloaded = TorchSentenceTransformer(str(tmp_path / "saved"), device="cpu")
    assert reloaded.prompts == theirs.prompts
    np.testing.assert_allclose(reloaded.encode(TEXTS), expected, atol=ATOL, rtol=0)
    loaded = jax.tree.leaves_with_path(SentenceTransformer(tmp_path / "saved").params)
    assert [path for path, _ in loaded] == [path for path, _ in jax.tree.leaves_with_path(ours.params)]
    assert all(np.array_equal(a, b) for (_, a), b in zip(loaded, jax.tree.leaves(ours.params), strict=True))
