"""jaxst.SentenceTransformer against PyTorch sentence-transformers on tiny models (CPU, float32, 1e-5)."""

import numpy as np
import pytest
import torch

from jaxst.quantization import PRECISIONS, quantize_embeddings
from jaxst.sentence_transformer import SentenceTransformer
from tests.st.tiny_st import TEXTS, build_torch_model, save_tiny_encoder

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


def both(encoders, tmp_path, model_type="bert", **kwargs):
    theirs = build_torch_model(encoders(model_type), tmp_path / "model", **kwargs)
    return SentenceTransformer(tmp_path / "model"), theirs


def assert_close(ours, theirs):
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    np.testing.assert_allclose(ours, theirs, atol=ATOL, rtol=0)


@pytest.mark.parametrize(
    "pooling_mode",
    ["cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken", ("cls", "mean", "max")],
)
def test_pooling_modes(encoders, tmp_path, pooling_mode):
    ours, theirs = both(encoders, tmp_path, pooling_mode=pooling_mode)
    assert_close(ours.encode(TEXTS, batch_size=64), theirs.encode(TEXTS, batch_size=64))
    assert ours.get_sentence_embedding_dimension() == theirs.get_embedding_dimension()


@pytest.mark.parametrize("model_type", ["distilbert", "roberta", "mpnet"])
def test_other_architectures(encoders, tmp_path, model_type):
    ours, theirs = both(encoders, tmp_path, model_type, pooling_mode="mean")
    assert_close(ours.encode(TEXTS, batch_size=64), theirs.encode(TEXTS, batch_size=64))


@pytest.mark.parametrize(
    ("dense", "normalize"),
    [
        (((16, torch.nn.Tanh()),), False),
        (((16, torch.nn.Identity()), (8, torch.nn.GELU())), True),
        ((), True),
    ],
    ids=["dense", "two-dense-normalize", "normalize"],
)
def test_dense_and_normalize(encoders, tmp_path, dense, normalize):
    ours, theirs = both(encoders, tmp_path, dense=dense, normalize=normalize)
    assert_close(ours.encode(TEXTS, batch_size=64), theirs.encode(TEXTS, batch_size=64))
    assert ours.get_sentence_embedding_dimension() == theirs.get_embedding_dimension()


def test_small_batches_restore_order(encoders, tmp_path):
    ours, theirs = both(encoders, tmp_path, pooling_mode=("mean", "lasttoken"))
    assert_close(ours.encode(TEXTS, batch_size=3), theirs.encode(TEXTS, batch_size=3))


def test_prompts(encoders, tmp_path):
    prompts = {"query": "query: ", "document": "passage: ", "long": "Represent this sentence for search: "}
    ours, theirs = both(encoders, tmp_path, prompts=prompts, default_prompt_name="long")
    assert ours.prompts == theirs.prompts and ours.default_prompt_name == "long"
    for kwargs in ({}, {"prompt_name": "query"}, {"prompt": "custom prompt "}, {"prompt_name": "document"}):
        assert_close(
            ours.encode(TEXTS, batch_size=64, **kwargs), theirs.encode(TEXTS, batch_size=64, **kwargs)
        )
    assert_close(ours.encode_query(TEXTS), theirs.encode_query(TEXTS))
    assert_close(ours.encode_document(TEXTS), theirs.encode_document(TEXTS))


@pytest.mark.parametrize("pooling_mode", ["mean", "cls", "weightedmean", "lasttoken"])
def test_prompt_excluded_from_pooling(encoders, tmp_path, pooling_mode):
    ours, theirs = both(
        encoders, tmp_path, pooling_mode=pooling_mode, include_prompt=False, prompts={"query": "query: "}
    )
    assert_close(ours.encode_query(TEXTS), theirs.encode_query(TEXTS))
    assert_close(ours.encode(TEXTS, prompt="one two three "), theirs.encode(TEXTS, prompt="one two three "))


def test_truncate_dim_and_normalize_embeddings(encoders, tmp_path):
    ours, theirs = both(encoders, tmp_path, dense=((24, torch.nn.Tanh()),))
    for kwargs in (
        {"truncate_dim": 10},
        {"truncate_dim": 10, "normalize_embeddings": True},
        {"truncate_dim": 99},
    ):
        assert_close(ours.encode(TEXTS, **kwargs), theirs.encode(TEXTS, **kwargs))
    ours.truncate_dim = theirs.truncate_dim = 7
    assert ours.get_sentence_embedding_dimension() == theirs.get_embedding_dimension() == 7
    assert_close(
        ours.encode(TEXTS, normalize_embeddings=True), theirs.encode(TEXTS, normalize_embeddings=True)
    )


def test_token_embeddings(encoders, tmp_path):
    ours, theirs = both(encoders, tmp_path, normalize=True)
    got = ours.encode(TEXTS, output_value="token_embeddings", batch_size=4)
    expected = theirs.encode(TEXTS, output_value="token_embeddings", batch_size=4)
    assert len(got) == len(expected) == len(TEXTS)
    for a, b in zip(got, expected, strict=True):
        assert_close(a, b.numpy())
    single = ours.encode(TEXTS[3], output_value="token_embeddings")
    assert_close(single, expected[3].numpy())


def test_precisions(encoders, tmp_path):
    """The quantized outputs are those of quantize_embeddings on jaxst's float embeddings (and those equal
    sentence-transformers' quantize_embeddings on the same floats, in test_quantization.py)."""
    ours, theirs = both(encoders, tmp_path)
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


def test_similarity(encoders, tmp_path):
    ours, theirs = both(encoders, tmp_path, similarity_fn_name="euclidean")
    embeddings = theirs.encode(TEXTS[:6])
    assert ours.similarity_fn_name == "euclidean"
    np.testing.assert_allclose(
        ours.similarity(embeddings, embeddings[:3]), theirs.similarity(embeddings, embeddings[:3]), atol=ATOL
    )
    np.testing.assert_allclose(
        ours.similarity_pairwise(embeddings[:3], embeddings[3:]),
        theirs.similarity_pairwise(embeddings[:3], embeddings[3:]),
        atol=ATOL,
    )
