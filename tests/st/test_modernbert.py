"""A modernbert-embed-like sentence-transformers folder against PyTorch sentence-transformers: mean pooling
with prompts, a window shorter than the texts, packed rows, saving both ways."""

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer as TorchSentenceTransformer

from jaxst.batch_layouts import as_batch
from jaxst.sentence_transformer import SentenceTransformer
from jaxst.training.batching import batch_arrays
from jaxst.training.data import ExampleBatch
from tests.st.tiny_modernbert import PROMPTS, save_tiny_modernbert
from tests.st.tiny_st import MAX_TOKENS, TEXTS, build_torch_model

ATOL = 1e-5


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(jaxst, sentence-transformers) models: Transformer, mean Pooling, with modernbert-embed's prompts."""
    root = tmp_path_factory.mktemp("modernbert")
    theirs = build_torch_model(
        save_tiny_modernbert(root / "encoder"), root / "st", pooling_mode="mean", prompts=PROMPTS
    )
    return SentenceTransformer(root / "st"), theirs


def test_the_tokenizer_wraps_texts_without_token_types(models):
    ours, theirs = models
    padded = ours.tokenize(TEXTS)
    assert set(padded) == {"input_ids", "attention_mask"}
    lengths = padded["attention_mask"].sum(axis=1)
    assert lengths.max() == MAX_TOKENS > 2 * 4 + 1  # texts longer than the local layers' window
    for row, text in enumerate(TEXTS):
        expected = theirs.tokenizer(text, truncation=True, max_length=MAX_TOKENS)["input_ids"]
        assert padded["input_ids"][row, : lengths[row]].tolist() == expected


def test_embeddings_match_sentence_transformers(models):
    ours, theirs = models
    np.testing.assert_allclose(ours.encode(TEXTS), theirs.encode(TEXTS), atol=ATOL, rtol=0)
    np.testing.assert_allclose(
        ours.encode_query(TEXTS[:6]), theirs.encode_query(TEXTS[:6]), atol=ATOL, rtol=0
    )


def test_a_packed_batch_embeds_each_text_as_sentence_transformers_does(models):
    ours, theirs = models
    columns = [TEXTS[:12], TEXTS[12:24]]
    packed = as_batch(batch_arrays(ours, ExampleBatch(columns, None), packed=True))
    assert packed.packed_input_ids.shape[0] < 24  # several texts share a row
    embeddings = np.asarray(ours.forward(ours.params, packed.texts())["sentence_embedding"])
    np.testing.assert_allclose(embeddings, theirs.encode(TEXTS[:24]), atol=ATOL, rtol=0)


def test_saving_round_trips_both_ways(models, tmp_path):
    """jaxst saves what PyTorch sentence-transformers loads to the same embeddings, and loads it back."""
    ours, theirs = models
    expected = theirs.encode(TEXTS)
    ours.save(tmp_path / "saved")
    reloaded = TorchSentenceTransformer(str(tmp_path / "saved"), device="cpu")
    assert reloaded.prompts == theirs.prompts
    np.testing.assert_allclose(reloaded.encode(TEXTS), expected, atol=ATOL, rtol=0)
    np.testing.assert_array_equal(SentenceTransformer(tmp_path / "saved").encode(TEXTS), ours.encode(TEXTS))
