"""LoRA dropout (`LoraConfig(lora_dropout=p)`), as PEFT's lora.Linear: in train mode the input of A has each
entry zeroed with probability p and the others scaled by 1 / (1 - p) (torch's Dropout); the base path
and eval mode see no dropout."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxst.lora import LoraConfig
from jaxst.lora.layers import LoraDense
from jaxst.models.layers import Dense, seed_dropout_keys
from jaxst.sentence_transformer import SentenceTransformer
from tests.shared_data import stsb_sentences

RATE = 0.25


def identity_adapter(width: int, rate: float) -> LoraDense:
    """A LoraDense whose output is exactly the dropped input of A: W = 0, b = 0, A = B = I, scaling 1."""
    base = Dense(width, width, dtype=jnp.float32, init_std=0.0, rngs=nnx.Rngs(0))
    layer = LoraDense(base, rank=width, scaling=1.0, init=True, rng=jax.random.PRNGKey(0), dropout_rate=rate)
    layer.lora_a[...] = jnp.eye(width)
    layer.lora_b[...] = jnp.eye(width)
    return layer


def dropped(layer: LoraDense, x: jax.Array, rng: jax.Array | None) -> np.ndarray:
    seed_dropout_keys(layer, rng)
    return np.asarray(layer(x))


def test_train_mode_zeroes_a_fraction_p_of_the_inputs_of_a_and_scales_the_rest():
    layer, x = identity_adapter(8, RATE), jnp.ones((64, 8))
    out = dropped(layer, x, jax.random.PRNGKey(1))
    assert set(np.unique(out)) == {0.0, np.float32(1 / (1 - RATE))}
    assert abs((out == 0).mean() - RATE) < 0.1  # 512 draws: the standard deviation is 0.019
    np.testing.assert_array_equal(out, dropped(layer, x, jax.random.PRNGKey(1)))  # one key, one mask
    assert not np.array_equal(out, dropped(layer, x, jax.random.PRNGKey(2)))  # each step its own mask
    np.testing.assert_array_equal(dropped(layer, x, None), x)  # eval mode


def test_the_base_path_is_not_dropped():
    layer = identity_adapter(8, 0.9)
    layer.kernel[...] = 2.0 * jnp.eye(8)
    layer.lora_b[...] = jnp.zeros((8, 8))  # no adapter contribution: only the base path remains
    x = jnp.ones((4, 8))
    np.testing.assert_array_equal(dropped(layer, x, jax.random.PRNGKey(1)), 2.0 * np.asarray(x))


def test_each_adapted_layer_drops_with_its_own_key_in_train_mode_only(tiny_folder):
    """Two models with equal weights, one with lora_dropout: equal in eval mode; in train mode (the same
    key for the encoder's own dropout) they differ, and the adapted layers' masks differ from each other."""
    config = dict(r=4, lora_alpha=8, init_lora_weights=False, target_modules=["query", "value"])
    plain, with_dropout = SentenceTransformer(tiny_folder), SentenceTransformer(tiny_folder)
    plain.add_adapter(LoraConfig(**config))
    with_dropout.add_adapter(LoraConfig(**config, lora_dropout=0.5))
    texts = plain.tokenize(stsb_sentences("test", 4))
    forward = jax.jit(
        lambda model, params, rng: model.forward(params, texts, dropout_rng=rng)["sentence_embedding"],
        static_argnums=0,
    )
    np.testing.assert_allclose(
        forward(plain, plain.params, None),
        forward(with_dropout, with_dropout.params, None),
        atol=1e-6,
        rtol=0,
    )
    rng = jax.random.PRNGKey(3)
    assert not np.allclose(forward(plain, plain.params, rng), forward(with_dropout, with_dropout.params, rng))

    encoder = nnx.merge(with_dropout.graphdef, with_dropout.params["encoder"])
    layers = [node for _, node in nnx.iter_graph(encoder) if isinstance(node, LoraDense)]
    seed_dropout_keys(encoder, rng)
    keys = {tuple(np.asarray(layer.dropout_key[...])) for layer in layers}
    assert len(layers) == 4 and len(keys) == 4
