"""T5 and mT5 against transformers: both feed-forward layouts, relative buckets at their log-spaced and
far distances, padding on either side, packed rows and their gradients, full encoder-decoder checkpoints,
train-mode dropout, and the config options jaxst refuses."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers
from flax import nnx
from safetensors.numpy import load_file, save_file
from transformers.models.t5.modeling_t5 import T5Attention as TorchT5Attention

from jaxst.io.hf import WeightLoadingError
from jaxst.models import UnsupportedConfigError, load_checkpoint, load_encoder, save_encoder
from jaxst.models.attention import relative_position_buckets
from tests.models.tiny_models import batch_of_lengths, jit_encode, perturb_, torch_hidden_states

TOLERANCE = 1e-5
VOCAB = 120
LENGTH = 40
# 3 layers; 3 heads of 12 (N * D = 36, H = 32); an RMS norm epsilon away from the default.
SHAPE = dict(
    vocab_size=VOCAB, d_model=32, d_kv=12, num_heads=3, d_ff=40, num_layers=3, layer_norm_epsilon=1e-5
)
# T5 with "relu" and few buckets: distances 4..19 share 4 log-spaced buckets, 20 and beyond the last one.
# mT5 with "gated-gelu" and the default 32 buckets up to distance 128: distances 8..39 are log-spaced.
FAMILIES = {
    "t5": (
        transformers.T5Config,
        transformers.T5EncoderModel,
        dict(feed_forward_proj="relu", relative_attention_num_buckets=16, relative_attention_max_distance=20),
    ),
    "mt5": (transformers.MT5Config, transformers.MT5EncoderModel, dict(feed_forward_proj="gated-gelu")),
}


def save_t5(folder, model_type, model_class=None, **overrides):
    """A tiny `model_type` model (its encoder-only class by default), perturbed by noise of 0.1 (see
    tiny_models._NOISE_SCALES) and saved to `folder`, returned in eval mode."""
    config_class, encoder_class, options = FAMILIES[model_type]
    torch.manual_seed(0)
    config = config_class(**SHAPE, **{**options, **overrides})
    model = perturb_((model_class or encoder_class)(config), scale=0.1).eval()
    model.save_pretrained(folder)
    return model


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def tiny(request, tmp_path_factory):
    """(model_type, the torch encoder model, the jaxst encoder loaded from its folder, the folder)."""
    folder = tmp_path_factory.mktemp(request.param)
    model = save_t5(folder, request.param)
    return request.param, model, load_encoder(folder), folder


def batch_of(lengths, length=LENGTH, **kwargs):
    return batch_of_lengths(lengths, length, vocab_size=VOCAB, **kwargs)


def max_abs(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def test_every_hidden_state_matches_transformers(tiny):
    """Every position (padding included) of every hidden state, the last after the final norm; right and
    left padding and a one-token text."""
    _, model, encoder, _ = tiny
    batch = batch_of([40, 33, 1, 21, 12], left_padded=(3,))
    expected = torch_hidden_states(model, batch)
    last, hidden_states = jit_encode(encoder, output_hidden_states=True)(
        batch["input_ids"], batch["attention_mask"]
    )
    assert len(hidden_states) == len(expected) == 4
    for layer, (ours, theirs) in enumerate(zip(hidden_states, expected, strict=True)):
        assert max_abs(ours, theirs) < TOLERANCE, f"hidden state {layer}"
    assert np.array_equal(last, hidden_states[-1])


@pytest.mark.parametrize(("num_buckets", "max_distance"), [(32, 128), (16, 20), (7, 30), (64, 300)])
def test_relative_buckets_match_transformers(num_buckets, max_distance):
    """Every distance up to 1100 tokens either way, including the log-bucket boundaries where float32
    rounding decides the bucket."""
    relative = np.arange(-1100, 1101)
    expected = TorchT5Attention._relative_position_bucket(
        torch.from_numpy(relative), bidirectional=True, num_buckets=num_buckets, max_distance=max_distance
    ).numpy()
    ours = relative_position_buckets(relative, num_buckets=num_buckets, max_distance=max_distance)
    np.testing.assert_array_equal(ours, expected)


def test_save_round_trips_through_transformers(tiny, tmp_path):
    model_type, model, encoder, folder = tiny
    save_encoder(encoder, tmp_path)
    reloaded, info = FAMILIES[model_type][1].from_pretrained(tmp_path, output_loading_info=True)
    assert not any(info[kind] for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    batch = batch_of([12, 7], length=12)
    for ours, theirs in zip(
        torch_hidden_states(reloaded.eval(), batch), torch_hidden_states(model, batch), strict=True
    ):
        np.testing.assert_array_equal(ours, theirs)
    original, saved = load_file(folder / "model.safetensors"), load_file(tmp_path / "model.safetensors")
    assert saved.keys() == original.keys()
    assert all(np.array_equal(saved[key], original[key]) for key in original)


def test_a_full_t5_checkpoint_loads_its_encoder_and_writes_the_rest_back(tmp_path):
    """An mT5ForConditionalGeneration with fewer decoder than encoder layers, plus the tied embedding
    copies and the untied head older files hold: the encoder matches transformers' encoder stack; the
    decoder and head are kept aside and written back unchanged, the tied copies are not written (as
    transformers saves them), and transformers loads the saved folder."""
    model = save_t5(
        tmp_path / "full",
        "mt5",
        transformers.MT5ForConditionalGeneration,
        num_decoder_layers=2,
    )
    tensors = load_file(tmp_path / "full" / "model.safetensors")
    rng = np.random.default_rng(0)
    tensors["encoder.embed_tokens.weight"] = tensors["shared.weight"].copy()
    tensors["decoder.embed_tokens.weight"] = tensors["shared.weight"].copy()
    tensors["lm_head.weight"] = rng.normal(size=tensors["shared.weight"].shape).astype(np.float32)
    save_file(tensors, tmp_path / "full" / "model.safetensors", metadata={"format": "pt"})
    assert any(key.startswith("decoder.block.1.") for key in tensors)
    assert not any(key.startswith("decoder.block.2.") for key in tensors)

    encoder, extras = load_checkpoint(tmp_path / "full")
    batch = batch_of([9, 14], length=14)
    expected = torch_hidden_states(model.encoder, batch)
    _, hidden_states = jit_encode(encoder, output_hidden_states=True)(
        batch["input_ids"], batch["attention_mask"]
    )
    for layer, (ours, theirs) in enumerate(zip(hidden_states, expected, strict=True)):
        assert max_abs(ours, theirs) < TOLERANCE, f"hidden state {layer}"
    assert "decoder.block.0.layer.1.EncDecAttention.q.weight" in extras.unused_tensors

    save_encoder(encoder, tmp_path / "saved", extras)
    saved = load_file(tmp_path / "saved" / "model.safetensors")
    assert saved.keys() == tensors.keys() - {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight"}
    assert all(np.array_equal(saved[key], tensors[key]) for key in saved)
    reloaded, info = transformers.MT5ForConditionalGeneration.from_pretrained(
        tmp_path / "saved", output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"]
    for ours, theirs in zip(torch_hidden_states(reloaded.encoder.eval(), batch), expected, strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_a_tied_embedding_copy_must_equal_the_shared_embeddings(tmp_path):
    """transformers embeds the encoder's input with "encoder.embed_tokens.weight" when a file holds it:
    jaxst, which keeps one table, refuses a copy that differs from "shared.weight"."""
    save_t5(tmp_path, "t5")
    tensors = load_file(tmp_path / "model.safetensors")
    tensors["encoder.embed_tokens.weight"] = tensors["shared.weight"] + 1.0
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(
        WeightLoadingError, match="'encoder.embed_tokens.weight' differs from 'shared.weight'"
    ):
        load_encoder(tmp_path)


def test_packed_rows_equal_padded_texts_and_give_the_same_gradients(tmp_path):
    """Five texts padded one per row, and packed two and three to a row with positions restarting per
    text: each text's tokens agree within 1e-5 in every hidden state (each gets the relative bias of its
    own positions), and the gradients of a loss of all of them within 1e-5 of the largest gradient."""
    save_t5(tmp_path, "t5")
    encoder = load_encoder(tmp_path)
    lengths = [5, 30, 12, 17, 9]
    padded = batch_of(lengths, length=32, seed=5)
    rows = [[1, 4], [0, 2, 3]]  # texts per packed row: 39 and 34 tokens
    width = 40
    ids, segments, positions = (np.zeros((len(rows), width), np.int32) for _ in range(3))
    where = {}  # text -> (row, start)
    for r, texts in enumerate(rows):
        start = 0
        for number, text in enumerate(texts, 1):
            n = lengths[text]
            ids[r, start : start + n] = padded["input_ids"][text, :n]
            segments[r, start : start + n] = number
            positions[r, start : start + n] = np.arange(n)
            where[text] = (r, start)
            start += n
    weights = np.random.default_rng(1).normal(size=(5, 32, 32)).astype(np.float32)
    graphdef, state = nnx.split(encoder)

    def per_text(hidden_states, packed):
        """Each text's tokens [n, H] of every hidden state."""
        out = []
        for text, n in enumerate(lengths):
            if packed:
                r, start = where[text]
                out.append([h[r, start : start + n] for h in hidden_states])
            else:
                out.append([h[text, :n] for h in hidden_states])
        return out

    def loss(state, packed):
        model = nnx.merge(graphdef, state)
        if packed:
            _, hidden = model(ids, segments, position_ids=positions, output_hidden_states=True)
        else:
            _, hidden = model(padded["input_ids"], padded["attention_mask"], output_hidden_states=True)
        texts = per_text(hidden, packed)
        value = sum(jnp.sum(t[-1] * weights[i, : lengths[i]]) for i, t in enumerate(texts))
        value += 1e-3 * sum(jnp.sum(h) for t in texts for h in t)
        return value, texts

    (_, padded_texts), padded_grads = jax.jit(jax.value_and_grad(loss, has_aux=True), static_argnums=1)(
        state, False
    )
    (_, packed_texts), packed_grads = jax.jit(jax.value_and_grad(loss, has_aux=True), static_argnums=1)(
        state, True
    )
    for text, (ours, theirs) in enumerate(zip(packed_texts, padded_texts, strict=True)):
        for layer, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            assert max_abs(a, b) < TOLERANCE, f"text {text} hidden state {layer}"
    largest = max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(padded_grads))
    gaps = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), packed_grads, padded_grads)
    assert max(jax.tree.leaves(gaps)) <= 1e-5 * largest
    # Every bucket of the 16 is used and trained, but the 8th: "key after the query, at distance 0".
    bias_grad = np.abs(padded_grads["relative_attention_bias"]["embedding"][...]).sum(-1)
    assert np.flatnonzero(bias_grad == 0).tolist() == [8]


def test_train_mode_statistics_match_torch(tmp_path):
    """Over 400 draws, the per-entry mean and spread of train-mode outputs equal torch's: T5's dropout
    on the embeddings, attention probabilities, attention outputs, feed-forward activations and outputs,
    and after the final norm."""
    model = save_t5(tmp_path, "t5", dropout_rate=0.2).train()
    batch = batch_of([12, 7, 10], length=12)
    draws = 400
    tiled = {key: np.tile(value, (draws, 1)) for key, value in batch.items()}
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


def test_sequence_length_is_the_configs_n_positions_or_512(tmp_path):
    save_t5(tmp_path, "t5")
    assert load_encoder(tmp_path).embeddings.max_length == 512
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "n_positions": 24}))
    encoder = load_encoder(tmp_path)
    with pytest.raises(ValueError, match="sequence length 25 exceeds the 24 positions"):
        encoder(np.ones((1, 25), np.int32), np.ones((1, 25), np.int32))


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("is_decoder", True),
        ("add_cross_attention", True),
        ("feed_forward_proj", "gated-swiglu"),
        ("feed_forward_proj", "softplus"),
        ("dense_act_fn", "softplus"),
        ("relative_attention_num_buckets", 2),
        ("relative_attention_max_distance", 4),
        ("dropout_rate", 1.0),
    ],
)
def test_unsupported_config_option_is_named(option, value, tmp_path):
    save_t5(tmp_path, "t5")
    config = json.loads((tmp_path / "config.json").read_text())
    if option == "feed_forward_proj":  # as in configs written before transformers derived these two
        del config["dense_act_fn"], config["is_gated_act"]
    (tmp_path / "config.json").write_text(json.dumps({**config, option: value}))
    with pytest.raises(UnsupportedConfigError, match=option):
        load_encoder(tmp_path)
