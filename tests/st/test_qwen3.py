"""A Qwen3-Embedding-like sentence-transformers folder against PyTorch sentence-transformers: last-token
and mean pooling, a left-padding decoder tokenizer (jaxst pads on the right), prompts, saving both ways."""

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer as TorchSentenceTransformer

from jaxst.sentence_transformer import SentenceTransformer
from tests.st.tiny_qwen3 import END_OF_TEXT, QUERY_PROMPT, save_tiny_qwen3
from tests.st.tiny_st import MAX_TOKENS, TEXTS, build_torch_model

ATOL = 1e-5


@pytest.fixture(scope="module")
def encoder_folder(tmp_path_factory):
    return save_tiny_qwen3(tmp_path_factory.mktemp("qwen3"))


@pytest.fixture(scope="module", params=["lasttoken", "mean"])
def models(request, encoder_folder, tmp_path_factory):
    """(jaxst, sentence-transformers) models: Transformer, Pooling (the mode), Normalize, with prompts."""
    folder = tmp_path_factory.mktemp(request.param)
    theirs = build_torch_model(
        encoder_folder,
        folder,
        pooling_mode=request.param,
        normalize=True,
        prompts={"query": QUERY_PROMPT, "document": ""},
    )
    return SentenceTransformer(folder), theirs


def test_the_tokenizer_pads_on_the_left_and_ends_each_text(models):
    """sentence-transformers pads on the left, as the tokenizer says; jaxst takes the same tokens, ending
    with <|endoftext|> (also when truncated), without token type ids, and pads them on the right."""
    ours, theirs = models
    assert theirs.tokenizer.padding_side == "left"
    features = theirs.tokenize(TEXTS[:4])
    assert (features["attention_mask"][:, -1] == 1).all() and not features["attention_mask"][:, 0].all()
    end = ours.transformer.tokenizer.convert_tokens_to_ids(END_OF_TEXT)
    padded = ours.tokenize(TEXTS)
    assert set(padded) == {"input_ids", "attention_mask"}
    lengths = padded["attention_mask"].sum(axis=1)
    assert lengths.max() == MAX_TOKENS  # the long text, truncated with its end token kept
    assert (padded["input_ids"][np.arange(len(TEXTS)), lengths - 1] == end).all()
    for row, text in enumerate(TEXTS):
        expected = theirs.tokenizer(text, truncation=True, max_length=MAX_TOKENS)["input_ids"]
        assert padded["input_ids"][row, : lengths[row]].tolist() == expected
    assert (padded["input_ids"][padded["attention_mask"] == 0] == end).all()


def test_embeddings_match_sentence_transformers(models):
    ours, theirs = models
    np.testing.assert_allclose(ours.encode(TEXTS), theirs.encode(TEXTS), atol=ATOL, rtol=0)
    np.testing.assert_allclose(
        ours.encode_query(TEXTS[:6]), theirs.encode_query(TEXTS[:6]), atol=ATOL, rtol=0
    )


def test_saving_round_trips_both_ways(models, tmp_path):
    """jaxst saves what PyTorch sentence-transformers loads to the same embeddings, and loads it back."""
    ours, theirs = models
    expected = theirs.encode(TEXTS)
    ours.save(tmp_path / "saved")
    reloaded = TorchSentenceTransformer(str(tmp_path / "saved"), device="cpu")
    assert reloaded.tokenizer.padding_side == "left" and reloaded.prompts == theirs.prompts
    np.testing.assert_allclose(reloaded.encode(TEXTS), expected, atol=ATOL, rtol=0)
    np.testing.assert_array_equal(SentenceTransformer(tmp_path / "saved").encode(TEXTS), ours.encode(TEXTS))
