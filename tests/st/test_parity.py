"""jaxst.SentenceTransformer against PyTorch sentence-transformers on tiny models (CPU, float32, 1e-5)."""

import numpy as np
import pytest
import torch

from jaxst.modules.pooling import POOLING_MODES
from jaxst.quantization import PRECISIONS, quantize_embeddings
from jaxst.sentence_transformer import SentenceTransformer
from tests.st.tiny_st import HIDDEN, TEXTS, build_torch_model, save_tiny_encoder

ATOL = 1e-5


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    """Tiny encoder folders by architecture, built once."""
    cache = {}

    def get(model_type="bert"):
        if model_type not in cache:
            cache[model_type] = save_tiny_encoder(tmp_path_factory.mktemp(model_type), model_type)
        return cache[model_type]

    return get


def both(encoders, folder, model_type="bert", **kwargs):
    theirs = build_torch_model(encoders(model_type), folder / "model", **kwargs)
    return SentenceTransformer(folder / "model"), theirs


@pytest.fixture(scope="module")
def plain(encoders, tmp_path_factory):
    """Mean pooling, no Dense, no Normalize."""
    return both(encoders, tmp_path_factory.mktemp("plain"))


@pytest.fixture(scope="module")
def all_modes(encoders, tmp_path_factory):
    """Every pooling mode at once, concatenated (so one encode checks each), prompts left out of pooling."""
    return both(
        encoders,
        tmp_path_factory.mktemp("all_modes"),
        pooling_mode=POOLING_MODES,
        include_prompt=False,
        prompts={"query": "query: ", "document": "passage: ", "long": "Represent this sentence for search: "},
    )


def assert_close(ours, theirs):
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    np.testing.assert_allclose(ours, theirs, atol=ATOL, rtol=0)


def test_every_pooling_mode(all_modes):
    ours, theirs = all_modes
    got, expected = ours.encode(TEXTS, batch_size=64), theirs.encode(TEXTS, batch_size=64)
    assert got.shape == (len(TEXTS), len(POOLING_MODES) * HIDDEN)
    for index, mode in enumerate(POOLING_MODES):
        columns = slice(index * HIDDEN, (index + 1) * HIDDEN)
        np.testing.assert_allclose(got[:, columns], expected[:, columns], atol=ATOL, rtol=0, err_msg=mode)
    assert ours.get_sentence_embedding_dimension() == theirs.get_embedding_dimension()


@pytest.mark.parametrize(
    "kwargs", [{"prompt_name": "query"}, {"prompt_name": "long"}, {"prompt": "one two "}]
)
def test_prompts_left_out_of_pooling(all_modes, kwargs):
    ours, theirs = all_modes
    assert_close(ours.encode(TEXTS, batch_size=64, **kwargs), theirs.encode(TEXTS, batch_size=64, **kwargs))


def test_prompts_and_encode_query_document(encoders, tmp_path):
    prompts = {"query": "query: ", "document": "passage: ", "long": "Represent this sentence for search: "}
    ours, theirs = both(encoders, tmp_path, prompts=prompts, default_prompt_name="long")
    assert ours.prompts == theirs.prompts and ours.default_prompt_name == "long"
    for kwargs in ({}, {"prompt_name": "query"}, {"prompt": "custom prompt "}):
        assert_close(
            ours.encode(TEXTS, batch_size=64, **kwargs), theirs.encode(TEXTS, batch_size=64, **kwargs)
        )
    assert_close(ours.encode_query(TEXTS, batch_size=64), theirs.encode_query(TEXTS, batch_size=64))
    assert_close(ours.encode_document(TEXTS, batch_size=64), theirs.encode_document(TEXTS, batch_size=64))


@pytest.mark.parametrize("model_type", ["distilbert", "roberta", "mpnet"])
def test_other_architectures(encoders, tmp_path, model_type):
    ours, theirs = both(encoders, tmp_path, model_type)
    assert_close(ours.encode(TEXTS, batch_size=64), theirs.encode(TEXTS, batch_size=64))


@pytest.mark.parametrize(
    ("dense", "normalize"),
    [(((16, torch.nn.Identity()), (8, torch.nn.GELU())), False), ((), True)],
    ids=["two-dense", "normalize"],
)
def test_dense_or_normalize(encoders, tmp_path, dense, normalize):
    ours, theirs = both(encoders, tmp_path, dense=dense, normalize=normalize)
    assert_close(ours.encode(TEXTS, batch_size=64), theirs.encode(TEXTS, batch_size=64))
    assert ours.get_sentence_embedding_dimension() == theirs.get_embedding_dimension()


def test_truncate_dim_and_normalize_embeddings(plain):
    ours, theirs = plain
    for kwargs in (
        {"truncate_dim": 10},
        {"truncate_dim": 10, "normalize_embeddings": True},
        {"truncate_dim": 99},
    ):
        assert_close(ours.encode(TEXTS, **kwargs), theirs.encode(TEXTS, **kwargs))
    ours.truncate_dim = theirs.truncate_dim = 7
    try:
        assert ours.get_sentence_embedding_dimension() == theirs.get_embedding_dimension() == 7
        assert_close(ours.encode(TEXTS), theirs.encode(TEXTS))
    finally:
        ours.truncate_dim = theirs.truncate_dim = None


def test_token_embeddings(plain):
    ours, theirs = plain
    got = ours.encode(TEXTS, output_value="token_embeddings", batch_size=64)
    expected = theirs.encode(TEXTS, output_value="token_embeddings", batch_size=64)
    assert len(got) == len(expected) == len(TEXTS)
    for a, b in zip(got, expected, strict=True):
        assert_close(a, b.numpy())
    assert_close(ours.encode(TEXTS[3], output_value="token_embeddings"), expected[3].numpy())


def test_precisions(plain):
    """The quantized outputs are those of quantize_embeddings on jaxst's float embeddings (and those equal
    sentence-transformers' quantize_embeddings on the same floats, in test_quantization.py)."""
    ours, theirs = plain
    floats = ours.encode(TEXTS)
    tokens = ours.encode(TEXTS[:5], output_value="token_embeddings")
    for precision in PRECISIONS:
        quantized = ours.encode(TEXTS, precision=precision)
        np.testing.assert_array_equal(quantized, quantize_embeddings(floats, precision))
        expected = theirs.encode(TEXTS, precision=precision)
        assert quantized.dtype == expected.dtype and quantized.shape == expected.shape
        quantized_tokens = ours.encode(TEXTS[:5], output_value="token_embeddings", precision=precision)
        for a, b in zip(quantized_tokens, quantize_embeddings(tokens, precision), strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["cosine", "dot", "euclidean", "manhattan"])
def test_similarity(plain, name):
    ours, theirs = plain
    embeddings = theirs.encode(TEXTS[:6])
    ours.similarity_fn_name = theirs.similarity_fn_name = name
    try:
        np.testing.assert_allclose(
            ours.similarity(embeddings, embeddings[:3]),
            theirs.similarity(embeddings, embeddings[:3]),
            atol=ATOL,
        )
        np.testing.assert_allclose(
            ours.similarity_pairwise(embeddings[:3], embeddings[3:]),
            theirs.similarity_pairwise(embeddings[:3], embeddings[3:]),
            atol=ATOL,
        )
    finally:
        ours.similarity_fn_name = theirs.similarity_fn_name = "cosine"
