"""Dropout (torch train mode), compile counts, and the pure call under jit / grad / pmap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from jaxst.models import load_encoder
from jaxst.models.attention import attention
from jaxst.models.layers import dropout
from tests.models.tiny_models import padded_batch, save_tiny_model


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    """(loaded tiny BERT, a padded batch without token types)."""
    folder = tmp_path_factory.mktemp("bert")
    model = save_tiny_model(folder, "bert")
    batch = padded_batch(model.config.pad_token_id, length=12)
    return load_encoder(folder), {key: batch[key] for key in ("input_ids", "attention_mask")}


def test_dropout_rng_gives_deterministic_train_mode_outputs(bert):
    encoder, batch = bert
    run = jax.jit(lambda rng: encoder(**batch, output_hidden_states=True, dropout_rng=rng))
    evaluated = jax.jit(lambda: encoder(**batch))()
    (first, hidden_states), (again, _), (other, _) = (run(jax.random.key(i)) for i in (1, 1, 2))
    assert np.array_equal(first, again) and np.array_equal(hidden_states[-1], first)
    assert not np.allclose(first, evaluated, atol=1e-3)
    assert not np.allclose(first, other, atol=1e-3)
    assert not np.allclose(hidden_states[0], run(jax.random.key(2))[1][0], atol=1e-3)  # embedding dropout


def test_dropout_primitive_keeps_the_mean_and_drops_at_the_rate():
    x = jnp.ones((200_000,))
    y = dropout(x, 0.1, np.random.default_rng(0).integers(0, 2**32, x.shape, dtype=np.uint32))
    assert abs(float(jnp.mean(y == 0)) - 0.1) < 0.003
    assert abs(float(jnp.mean(y)) - 1.0) < 0.005
    assert np.allclose(y[y != 0], 1 / 0.9)
    assert dropout(x, 0.1, None) is x


def test_attention_probability_dropout_is_unbiased_and_never_attends_padding():
    rng = np.random.default_rng(0)
    q, k, v = rng.normal(size=(3, 2, 5, 2, 4)).astype(np.float32)
    key_mask = jnp.array([[True] * 5, [True, True, True, False, False]])[:, None, None, :]  # [B, 1, 1, T]
    v[1, 3:] = 1e6  # padded keys: any weight on them would explode the output
    expected = attention(q, k, v, key_mask, None, dropout_rate=0.0, dropout_bits=None)
    bits = rng.integers(0, 2**32, (4000, 2, 2, 5, 5), dtype=np.uint32)
    samples = jax.jit(
        jax.vmap(lambda b: attention(q, k, v, key_mask, None, dropout_rate=0.2, dropout_bits=b))
    )(bits)
    assert float(jnp.max(jnp.abs(samples))) < 100
    assert float(jnp.max(jnp.abs(samples.mean(0) - expected))) < 0.05
    assert float(jnp.min(samples.std(0))) > 0.01


def test_attention_in_a_packed_row_never_reaches_another_text_with_dropout():
    rng = np.random.default_rng(0)
    q, k, v = rng.normal(size=(3, 1, 6, 2, 4)).astype(np.float32)
    texts = jnp.array([[1, 1, 1, 4, 4, 0]])  # two texts and one padding position
    mask = ((texts[:, :, None] == texts[:, None, :]) & (texts[:, None, :] != 0))[:, None]  # [1, 1, T, T]
    v[0, 3:] = 1e6  # the second text and the padding: any weight on them from text 1 would explode
    bits = rng.integers(0, 2**32, (500, 1, 2, 6, 6), dtype=np.uint32)
    samples = jax.vmap(lambda b: attention(q, k, v, mask, None, dropout_rate=0.2, dropout_bits=b))(bits)
    assert float(jnp.max(jnp.abs(samples[:, :, :3]))) < 100
    alone = attention(
        q[:, :3], k[:, :3], v[:, :3], jnp.ones((1, 1, 1, 3), bool), None, dropout_rate=0.0, dropout_bits=None
    )
    packed = attention(q, k, v, mask, None, dropout_rate=0.0, dropout_bits=None)
    np.testing.assert_allclose(packed[:, :3], alone, rtol=1e-6)


@pytest.mark.parametrize("model_type", ["bert", "distilbert", "mpnet"])
def test_train_mode_statistics_match_torch(model_type, tmp_path):
    """Over 400 draws, the per-entry mean and spread of train-mode outputs equal torch's. The spread is
    sensitive to each dropout site: without attention-probability or hidden dropout it falls 7-19%."""
    rates = (
        {"dropout": 0.2, "attention_dropout": 0.3}
        if model_type == "distilbert"
        else {"hidden_dropout_prob": 0.2, "attention_probs_dropout_prob": 0.3}
    )
    model = save_tiny_model(tmp_path, model_type, **rates).train()
    batch = padded_batch(model.config.pad_token_id, length=12)
    draws = 400
    tiled = {key: np.tile(batch[key], (draws, 1)) for key in ("input_ids", "attention_mask")}
    torch.manual_seed(0)
    with torch.no_grad():
        theirs = model(**{key: torch.from_numpy(value.astype(np.int64)) for key, value in tiled.items()})
    theirs = theirs.last_hidden_state.numpy().reshape(draws, *batch["input_ids"].shape, -1)
    encoder = load_encoder(tmp_path)
    ours = jax.jit(lambda rng: encoder(**tiled, dropout_rng=rng))(jax.random.key(0))
    ours = np.asarray(ours).reshape(theirs.shape)
    tokens = batch["attention_mask"].astype(bool)
    spread = theirs.std(0)[tokens].mean()
    assert np.abs(ours.mean(0) - theirs.mean(0))[tokens].mean() < 0.075 * spread
    assert abs(ours.std(0)[tokens].mean() / spread - 1) < 0.03


def test_jit_compiles_once_per_shape(bert):
    encoder, batch = bert
    graphdef, state = nnx.split(encoder)
    traces = []

    @jax.jit
    def encode(state, input_ids, attention_mask, rng):
        traces.append(input_ids.shape)
        return nnx.merge(graphdef, state)(input_ids, attention_mask, dropout_rng=rng)

    first = encode(state, batch["input_ids"], batch["attention_mask"], jax.random.key(0))
    encode(state, batch["input_ids"] + 1, batch["attention_mask"], jax.random.key(1))
    assert len(traces) == 1
    np.testing.assert_array_equal(
        first, encode(state, batch["input_ids"], batch["attention_mask"], jax.random.key(0))
    )
    encode(state, batch["input_ids"][:, :8], batch["attention_mask"][:, :8], jax.random.key(0))
    assert len(traces) == 2


def test_grad_flows_to_every_parameter(bert):
    encoder, batch = bert
    graphdef, params = nnx.split(encoder, nnx.Param)

    def loss(params, rng):
        return jnp.sum(nnx.merge(graphdef, params)(**batch, dropout_rng=rng) ** 2)

    grads = jax.jit(jax.grad(loss))(params, jax.random.key(0))
    for path, grad in nnx.to_flat_state(grads):
        assert np.all(np.isfinite(grad[...])), path
        if path[-2:] != ("token_type", "embedding"):  # no token types in the batch: only row 0 is used
            assert np.any(grad[...] != 0), path


@pytest.mark.multi_device
def test_pmap_gives_the_single_device_result(bert):
    encoder, batch = bert
    devices = jax.local_device_count()
    assert devices == 8
    graphdef, state = nnx.split(encoder)
    tiled = {key: np.tile(value, (2 * devices, 1)) for key, value in batch.items()}
    sharded = {key: value.reshape(devices, -1, value.shape[-1]) for key, value in tiled.items()}
    out = jax.pmap(lambda state, ids, mask: nnx.merge(graphdef, state)(ids, mask), in_axes=(None, 0, 0))(
        state, sharded["input_ids"], sharded["attention_mask"]
    )
    expected = jax.jit(encoder)(tiled["input_ids"], tiled["attention_mask"])
    assert float(np.max(np.abs(np.asarray(out).reshape(expected.shape) - expected))) < 1e-6


def test_an_all_padding_row_stays_finite(bert):
    encoder, batch = bert
    mask = batch["attention_mask"].copy()
    mask[2] = 0
    encode = jax.jit(encoder)
    out = encode(batch["input_ids"], mask)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out[:2], encode(batch["input_ids"], batch["attention_mask"])[:2], atol=1e-6)
