"""Pooling, Dense and Normalize against sentence-transformers' own torch modules, on random inputs."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from sentence_transformers.sentence_transformer.modules import Dense as TorchDense
from sentence_transformers.sentence_transformer.modules import Normalize as TorchNormalize
from sentence_transformers.sentence_transformer.modules import Pooling as TorchPooling

from jaxst.modules import Dense, Normalize, Pooling
from jaxst.modules.dense import ACTIVATIONS
from jaxst.modules.pooling import LEGACY_MODE_KEYS, POOLING_MODES

ATOL = 1e-5
HIDDEN = 16


def random_features(seed=0, batch=6, length=9):
    """Token embeddings and masks: full, right-padded, left-padded, one real token, and an empty row."""
    rng = np.random.default_rng(seed)
    tokens = rng.normal(size=(batch, length, HIDDEN)).astype(np.float32)
    mask = np.ones((batch, length), np.int64)
    mask[1, 5:] = 0  # right padding
    mask[2, :3] = 0  # left padding
    mask[3, 1:] = 0  # a single token
    mask[4, :] = 0  # no token at all
    mask[5, 7:] = 0
    return tokens, mask


def torch_pool(module, tokens, mask, prompt_length=None):
    features = {"token_embeddings": torch.from_numpy(tokens), "attention_mask": torch.from_numpy(mask)}
    if prompt_length is not None:
        features["prompt_length"] = prompt_length
    return module(features)["sentence_embedding"].numpy()


def jax_pool(module, tokens, mask, prompt_length=None):
    features = {"token_embeddings": jnp.asarray(tokens), "attention_mask": jnp.asarray(mask)}
    if prompt_length is not None:
        features["prompt_length"] = jnp.asarray(prompt_length)
    return np.asarray(module(None, features)["sentence_embedding"])


MODE_SETS = [(mode,) for mode in POOLING_MODES] + [
    ("mean", "cls"),
    ("cls", "max", "mean"),
    POOLING_MODES,
    tuple(reversed(POOLING_MODES)),
]


@pytest.mark.parametrize("modes", MODE_SETS, ids="+".join)
@pytest.mark.parametrize("include_prompt", [True, False])
def test_pooling_matches_sentence_transformers(modes, include_prompt):
    tokens, mask = random_features()
    ours = Pooling(HIDDEN, modes, include_prompt=include_prompt)
    theirs = TorchPooling(HIDDEN, pooling_mode=modes, include_prompt=include_prompt)
    for prompt_length in (None, 2):
        expected = torch_pool(theirs, tokens, mask, prompt_length)
        got = jax_pool(ours, tokens, mask, prompt_length)
        assert got.shape == (tokens.shape[0], len(modes) * HIDDEN) == expected.shape
        np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)
    assert ours.output_dimension == theirs.get_embedding_dimension()


def test_pooling_without_mask_uses_every_token():
    tokens, _ = random_features()
    ours, theirs = Pooling(HIDDEN, ("mean", "max")), TorchPooling(HIDDEN, pooling_mode=("mean", "max"))
    expected = theirs({"token_embeddings": torch.from_numpy(tokens)})["sentence_embedding"].numpy()
    got = np.asarray(ours(None, {"token_embeddings": jnp.asarray(tokens)})["sentence_embedding"])
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)


LEGACY_CONFIGS = [
    {"word_embedding_dimension": HIDDEN, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True},
    {"word_embedding_dimension": HIDDEN, **{key: True for key in LEGACY_MODE_KEYS}, "include_prompt": False},
    {"word_embedding_dimension": HIDDEN, **{key: False for key in LEGACY_MODE_KEYS}},
    {"word_embedding_dimension": HIDDEN, "pooling_mode_lasttoken": True, "pooling_mode_max_tokens": True},
    {"embedding_dimension": HIDDEN, "pooling_mode": ["weightedmean", "cls"], "include_prompt": True},
    {"embedding_dimension": HIDDEN, "pooling_mode": "max", "pooling_mode_mean_tokens": True},
]


@pytest.mark.parametrize("config", LEGACY_CONFIGS)
def test_pooling_config_formats_load_as_in_sentence_transformers(config, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(config))
    theirs = TorchPooling.load(str(tmp_path))
    ours = Pooling.load(tmp_path)
    their_modes = (
        (theirs.pooling_mode,) if isinstance(theirs.pooling_mode, str) else tuple(theirs.pooling_mode)
    )
    assert ours.pooling_mode == their_modes
    assert ours.include_prompt == theirs.include_prompt
    tokens, mask = random_features(seed=1)
    np.testing.assert_allclose(
        jax_pool(ours, tokens, mask), torch_pool(theirs, tokens, mask), atol=ATOL, rtol=0
    )


@pytest.mark.parametrize("modes", [("mean",), ("cls", "lasttoken")])
def test_pooling_saved_by_jaxst_loads_in_sentence_transformers(modes, tmp_path):
    Pooling(HIDDEN, modes, include_prompt=False).save(tmp_path)
    theirs = TorchPooling.load(str(tmp_path))
    ref = TorchPooling(HIDDEN, pooling_mode=modes, include_prompt=False)
    assert theirs.get_config_dict() == ref.get_config_dict()


def test_pooling_bad_config():
    with pytest.raises(ValueError, match="Invalid pooling mode 'median'"):
        Pooling(HIDDEN, ("median",))
    with pytest.raises(ValueError, match="Unknown Pooling config key"):
        Pooling.from_config({"embedding_dimension": HIDDEN, "pooling_mode_median": True})


def torch_activation(name):
    return getattr(torch.nn, name)()


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_dense_activations_match_sentence_transformers(activation, tmp_path):
    torch.manual_seed(0)
    theirs = TorchDense(HIDDEN, 8, activation_function=torch_activation(activation))
    theirs.save(str(tmp_path))
    ours, params = Dense.load(tmp_path)
    x = np.random.default_rng(0).normal(scale=3.0, size=(5, HIDDEN)).astype(np.float32)
    expected = theirs({"sentence_embedding": torch.from_numpy(x)})["sentence_embedding"].detach().numpy()
    got = np.asarray(ours(params, {"sentence_embedding": jnp.asarray(x)})["sentence_embedding"])
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize(
    ("out_features", "bias", "use_residual"), [(8, False, False), (8, True, True), (HIDDEN, True, True)]
)
def test_dense_bias_and_residual_round_trip(out_features, bias, use_residual, tmp_path):
    torch.manual_seed(1)
    theirs = TorchDense(HIDDEN, out_features, bias=bias, use_residual=use_residual)
    (tmp_path / "theirs").mkdir()
    (tmp_path / "ours").mkdir()
    theirs.save(str(tmp_path / "theirs"))
    ours, params = Dense.load(tmp_path / "theirs")
    ours.save(tmp_path / "ours", params)
    reloaded = TorchDense.load(str(tmp_path / "ours"))
    assert reloaded.get_config_dict() == theirs.get_config_dict()
    x = np.random.default_rng(1).normal(size=(4, HIDDEN)).astype(np.float32)
    expected = theirs({"sentence_embedding": torch.from_numpy(x)})["sentence_embedding"].detach().numpy()
    out = reloaded({"sentence_embedding": torch.from_numpy(x)})["sentence_embedding"].detach().numpy()
    np.testing.assert_array_equal(out, expected)
    got = np.asarray(ours(params, {"sentence_embedding": jnp.asarray(x)})["sentence_embedding"])
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)


def test_dense_bad_input(tmp_path):
    with pytest.raises(ValueError, match="torch.nn.modules.activation.Threshold"):
        Dense(4, 4, activation_function="torch.nn.modules.activation.Threshold")
    TorchDense(HIDDEN, 8).save(str(tmp_path))
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "out_features": 9}))
    with pytest.raises(ValueError, match=r"'linear.weight' has shape \(8, 16\), expected \(9, 16\)"):
        Dense.load(tmp_path)


def test_normalize_matches_sentence_transformers(tmp_path):
    x = np.random.default_rng(2).normal(size=(4, HIDDEN)).astype(np.float32)
    x[1] = 0.0
    expected = TorchNormalize()({"sentence_embedding": torch.from_numpy(x)})["sentence_embedding"].numpy()
    got = np.asarray(Normalize()(None, {"sentence_embedding": jnp.asarray(x)})["sentence_embedding"])
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)
    Normalize().save(tmp_path)
    assert TorchNormalize.load(str(tmp_path)).get_config_dict() == TorchNormalize().get_config_dict()
    assert Normalize.load(tmp_path / "missing") == Normalize()
