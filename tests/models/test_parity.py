"""jaxst encoders against transformers (torch, eval mode) on tiny random models of every architecture."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from transformers.activations import ACT2FN
from transformers.models.mpnet.modeling_mpnet import MPNetEncoder as TorchMPNetEncoder

from jaxst.models import load_encoder
from jaxst.models.layers import ACTIVATIONS
from jaxst.models.mpnet import relative_position_buckets
from tests.models.tiny_models import (
    ARCHITECTURES,
    WITH_TOKEN_TYPES,
    jit_encode,
    padded_batch,
    save_tiny_model,
    torch_hidden_states,
)

TOLERANCE = 1e-5


@pytest.fixture(scope="module", params=ARCHITECTURES)
def tiny(request, tmp_path_factory):
    """(model_type, torch model, its folder) for each architecture."""
    folder = tmp_path_factory.mktemp(request.param)
    return request.param, save_tiny_model(folder, request.param), folder


def _max_abs(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float32) - b)))


def test_hidden_states_match_transformers_on_padded_batch(tiny):
    model_type, model, folder = tiny
    batch = padded_batch(model.config.pad_token_id)
    expected = torch_hidden_states(model, {k: batch[k] for k in ("input_ids", "attention_mask")})
    encoder = load_encoder(folder)
    last, hidden_states = jit_encode(encoder, output_hidden_states=True)(
        batch["input_ids"], batch["attention_mask"]
    )
    assert len(hidden_states) == encoder.num_hidden_layers + 1 == len(expected)
    for layer, (ours, theirs) in enumerate(zip(hidden_states, expected, strict=True)):
        assert ours.shape == theirs.shape and ours.dtype == jnp.float32
        assert _max_abs(ours, theirs) < TOLERANCE, f"{model_type} hidden state {layer}"
    assert _max_abs(last, expected[-1]) < TOLERANCE


def test_token_type_ids_match_transformers(tiny):
    """Where the architecture has token types they match transformers; elsewhere they are refused."""
    model_type, model, folder = tiny
    batch = padded_batch(model.config.pad_token_id, seed=1)
    if model_type not in WITH_TOKEN_TYPES:
        with pytest.raises(ValueError, match=f"{model_type} has no token type embeddings"):
            load_encoder(folder)(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        return
    assert batch["token_type_ids"].any()
    expected = torch_hidden_states(model, batch)
    encoder = load_encoder(folder)
    _, hidden_states = jit_encode(encoder, output_hidden_states=True)(
        batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]
    )
    for layer, (ours, theirs) in enumerate(zip(hidden_states, expected, strict=True)):
        assert _max_abs(ours, theirs) < TOLERANCE, f"{model_type} hidden state {layer}"


def test_encoder_attributes(tiny):
    model_type, model, folder = tiny
    encoder = load_encoder(folder)
    assert encoder.config.model_type == model_type
    assert type(encoder.config) is type(model.config)
    written = json.loads((folder / "config.json").read_text())
    assert {key: encoder.config.to_dict()[key] for key in written} == written
    assert (encoder.hidden_size, encoder.num_hidden_layers, encoder.dtype) == (32, 2, jnp.float32)
    assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(nnx.state(encoder, nnx.Param)))


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activations_match_transformers(name):
    x = np.linspace(-6.0, 6.0, 2001, dtype=np.float32)
    expected = ACT2FN[name](torch.from_numpy(x)).numpy()
    assert _max_abs(ACTIVATIONS[name](jnp.asarray(x)), expected) < 1e-6


def test_mpnet_relative_position_buckets_match_transformers():
    # Every relative distance up to 1100 tokens, including the log-bucket boundaries (16, 32, 64, 128)
    # where float32 rounding decides the bucket.
    length = 1100
    positions = torch.arange(length)
    expected = TorchMPNetEncoder.relative_position_bucket(positions[None, :] - positions[:, None]).numpy()
    np.testing.assert_array_equal(relative_position_buckets(length), expected)
