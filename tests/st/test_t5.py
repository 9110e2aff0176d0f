"""A sentence-t5-like folder (T5 encoder, mean pooling, a Dense layer without bias, Normalize) against
PyTorch sentence-transformers, and saved by jaxst back into PyTorch."""

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer as TorchSentenceTransformer
from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer

from jaxst.batch_layouts import as_batch
from jaxst.sentence_transformer import SentenceTransformer
from jaxst.training.batching import batch_arrays
from jaxst.training.data import ExampleBatch
from tests.st.tiny_st import HIDDEN, MAX_TOKENS, TEXTS
from tests.st.tiny_t5 import save_tiny_t5

ATOL = 1e-5


@pytest.fixture(scope="module", params=["relu", "gated-gelu"])
def models(request, tmp_path_factory):
    """(jaxst, sentence-transformers) models as sentence-t5 (T5 v1.0, "relu") and GTR (T5 v1.1,
    "gated-gelu") are built: Transformer, mean Pooling, Dense(bias=False, Identity), Normalize."""
    root = tmp_path_factory.mktemp(request.param)
    save_tiny_t5(root / "encoder", request.param)
    torch.manual_seed(1)
    modules = [
        Transformer(str(root / "encoder")),
        Pooling(HIDDEN, pooling_mode="mean"),
        Dense(HIDDEN, 24, bias=False, activation_function=torch.nn.Identity()),
        Normalize(),
    ]
    theirs = TorchSentenceTransformer(modules=modules, device="cpu")
    theirs.max_seq_length = MAX_TOKENS
    theirs.save(str(root / "st"))
    return SentenceTransformer(root / "st"), theirs, root


def test_texts_tokenize_as_sentence_transformers_tokenizes_them(models):
    """T5's tokenizer gives no token type ids, and ends every text (also a truncated one) with </s>."""
    ours, theirs, _ = models
    padded = ours.tokenize(TEXTS)
    assert set(padded) == {"input_ids", "attention_mask"}
    expected = theirs.tokenize(TEXTS)
    lengths = padded["attention_mask"].sum(axis=1)
    assert lengths.tolist() == expected["attention_mask"].sum(dim=1).tolist() and lengths.max() == MAX_TOKENS
    for row, n in enumerate(lengths):
        assert padded["input_ids"][row, :n].tolist() == expected["input_ids"][row, :n].tolist()
        assert padded["input_ids"][row, n - 1] == 1  # </s>


def test_embeddings_match_sentence_transformers(models):
    ours, theirs, _ = models
    embeddings = ours.encode(TEXTS)
    assert embeddings.shape == (len(TEXTS), 24)
    np.testing.assert_allclose(embeddings, theirs.encode(TEXTS), atol=ATOL, rtol=0)


def test_saved_folder_loads_in_sentence_transformers(models):
    ours, theirs, root = models
    ours.save(str(root / "saved"))
    reloaded = TorchSentenceTransformer(str(root / "saved"), device="cpu")
    np.testing.assert_allclose(reloaded.encode(TEXTS), theirs.encode(TEXTS), atol=1e-6, rtol=0)


def test_a_packed_batch_embeds_each_text_as_sentence_transformers_does(models):
    """Texts packed several to a row, positions restarting per text: each gets its own relative bias."""
    ours, theirs, _ = models
    columns = [TEXTS[:16], TEXTS[16:32]]
    packed = as_batch(batch_arrays(ours, ExampleBatch(columns, None), packed=True))
    assert packed.packed_input_ids.shape[0] < 32  # several texts share a row
    embeddings = np.asarray(ours.forward(ours.params, packed.texts())["sentence_embedding"])
    np.testing.assert_allclose(embeddings, theirs.encode(TEXTS[:32]), atol=ATOL, rtol=0)
