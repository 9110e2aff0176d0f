"""ModernBERT against transformers: global and sliding-window layers, with and without biases, odd lengths,
left and right padding, packed rows (the window and the rotary positions count within a text), gradients,
train-mode dropout, masked-language-model checkpoints, and the config options jaxst refuses."""

import dataclasses
import json
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers
from flax import nnx
from safetensors.numpy import load_file

from jaxst.models import UnsupportedConfigError, load_checkpoint, load_encoder, save_encoder
from tests.models.tiny_models import batch_of_lengths, jit_encode, perturb_, torch_hidden_states

TOLERANCE = 1e-5
PAD = 0
# 4 layers: global, local, global, local (global_attn_every_n_layers=2); a window of 3 positions on either
# side (local_attention=6), shorter than the rows; heads of 12; rotary bases and a norm epsilon away from
# the defaults, so that each is read from the config.
CONFIG = dict(
    vocab_size=120,
    hidden_size=48,
    num_hidden_layers=4,
    num_attention_heads=4,
    intermediate_size=40,
    max_position_embeddings=64,
    global_attn_every_n_layers=2,
    local_attention=6,
    global_rope_theta=2000.0,
    local_rope_theta=300.0,
    norm_eps=1e-6,
    pad_token_id=PAD,
    bos_token_id=1,
    eos_token_id=2,
    cls_token_id=1,
    sep_token_id=2,
)
BIASES = dict(norm_bias=True, attention_bias=True, mlp_bias=True)


def save_modernbert(folder, model_class=transformers.ModernBertModel, **overrides):
    """A perturbed tiny ModernBERT `model_class` saved to `folder`, returned in eval mode.

    Noise of 0.1 keeps the pre-norm residual stream within a few units (with 0.2 it reaches 10 after
    four layers, where float32 rounding alone, torch's against float64, is 6e-6)."""
    torch.manual_seed(0)
    config = transformers.ModernBertConfig(**{**CONFIG, **overrides})
    model = perturb_(model_class(config), scale=0.1).eval()
    model.save_pretrained(folder)
    return model


def _loaded(tmp_path_factory, biases):
    folder = tmp_path_factory.mktemp("biases" if biases else "no_biases")
    model = save_modernbert(folder, **(BIASES if biases else {}))
    assert model.config.layer_types == ["full_attention", "sliding_attention"] * 2
    return model, load_encoder(folder), folder


@pytest.fixture(scope="module")
def without_biases(tmp_path_factory):
    """(the torch ModernBertModel without biases, the jaxst encoder loaded from its folder, the folder)."""
    return _loaded(tmp_path_factory, biases=False)


@pytest.fixture(scope="module")
def with_biases(tmp_path_factory):
    """The same with biases in the norms, the attention and the MLP."""
    return _loaded(tmp_path_factory, biases=True)


@pytest.fixture(params=["without_biases", "with_biases"])
def modernbert(request):
    return request.getfixturevalue(request.param)


batch_of = partial(batch_of_lengths, vocab_size=CONFIG["vocab_size"], pad_token_id=PAD, low=3)


def encode(encoder, batch, **kwargs):
    return jit_encode(encoder, **kwargs)(batch["input_ids"], batch["attention_mask"])


def test_every_hidden_state_matches_transformers(modernbert):
    """All positions of every hidden state, padding included: right and left padding, odd lengths, a
    one-token text. The left-padded rows' first padding positions find no text token within their window
    in the local layers (a zero attention output, as torch's sdpa gives)."""
    model, encoder, _ = modernbert
    batch = batch_of([13, 7, 1, 9, 4], 13, left_padded=(3, 4))
    expected = torch_hidden_states(model, batch)
    last, hidden_states = encode(encoder, batch, output_hidden_states=True)
    assert len(hidden_states) == len(expected) == 5
    for layer, (ours, theirs) in enumerate(zip(hidden_states, expected, strict=True)):
        assert np.max(np.abs(np.asarray(ours) - theirs)) < TOLERANCE, f"hidden state {layer}"
    assert np.array_equal(last, hidden_states[-1])


def test_the_window_reaches_half_of_local_attention_on_either_side(with_biases):
    """Through the second layer (local) alone, changing token 8 of a 13-token text changes exactly
    tokens 5..11; through the first (global) alone, every token."""
    _, encoder, _ = with_biases
    graphdef, state = nnx.split(encoder)
    local_only, global_only = nnx.merge(graphdef, state), nnx.merge(graphdef, state)
    local_only.layers, global_only.layers = (
        nnx.List([local_only.layers[1]]),
        nnx.List([global_only.layers[0]]),
    )
    assert local_only.layers[0].local and not global_only.layers[0].local
    batch = batch_of([13], 13, seed=1)
    changed = {**batch, "input_ids": batch["input_ids"].copy()}
    changed["input_ids"][0, 8] = changed["input_ids"][0, 8] % 100 + 3
    for model, reached in ((local_only, np.arange(5, 12)), (global_only, np.arange(13))):
        moved = np.abs(np.asarray(encode(model, changed)) - np.asarray(encode(model, batch)))[0]
        np.testing.assert_array_equal(np.flatnonzero(moved.max(axis=-1) > 0), reached)


def test_a_packed_row_matches_each_text_alone(modernbert):
    """Three texts in one row, then padding: each text's tokens equal the text alone (the window and
    the rotary positions count within the text), and changing one text leaves the others unchanged."""
    _, encoder, _ = modernbert
    lengths = [5, 11, 3]
    alone_batch = batch_of(lengths, 11, seed=4)
    alone = np.asarray(encode(encoder, alone_batch))
    starts = np.r_[0, np.cumsum(lengths)]
    width = 23  # the row: the three texts, then padding
    segments = np.pad(np.repeat(np.arange(1, 4), lengths), (0, width - starts[-1]))[None]
    positions = np.pad(np.concatenate([np.arange(n) for n in lengths]), (0, width - starts[-1]))[None]
    graphdef, state = nnx.split(encoder)
    packed = jax.jit(lambda state, ids: nnx.merge(graphdef, state)(ids, segments, position_ids=positions))

    def run(tokens):
        return np.asarray(packed(state, np.pad(tokens, (0, width - len(tokens)))[None].astype(np.int32)))[0]

    row = np.concatenate([alone_batch["input_ids"][text, :n] for text, n in enumerate(lengths)])
    out = run(row)
    for text, n in enumerate(lengths):
        assert np.max(np.abs(out[starts[text] : starts[text + 1]] - alone[text, :n])) < TOLERANCE
    changed = row.copy()
    changed[starts[1] : starts[2]] = changed[starts[1] : starts[2]] % 100 + 3
    changed_out = run(changed)
    assert np.array_equal(changed_out[: starts[1]], out[: starts[1]])
    assert np.array_equal(changed_out[starts[2] : starts[3]], out[starts[2] : starts[3]])


def test_packed_gradients_equal_padded_gradients(with_biases):
    """A loss of each text's mean token and of every hidden state, on three texts padded (one per row)
    and packed (one row): the gradients agree within 1e-5 of the largest gradient."""
    _, encoder, _ = with_biases
    lengths = [5, 11, 3]
    padded = batch_of(lengths, 11, seed=5)
    starts, width = np.r_[0, np.cumsum(lengths)], 20
    texts = np.repeat(np.arange(3), lengths)
    packed_ids = np.pad(padded["input_ids"][padded["attention_mask"] == 1], (0, width - starts[-1]))[None]
    segments = np.pad(texts + 1, (0, width - starts[-1]))[None]
    positions = np.pad(np.concatenate([np.arange(n) for n in lengths]), (0, width - starts[-1]))[None]
    # Each token's loss weight: its text's weight vector over its length (the mean), laid out as the
    # padded rows and as the packed row; every hidden state's text tokens also count, weighted 1e-3.
    text_weights = np.random.default_rng(0).normal(size=(3, CONFIG["hidden_size"])).astype(np.float32)
    token_weights = text_weights[texts] / np.asarray(lengths)[texts, None]
    padded_weights = np.zeros((3, 11, CONFIG["hidden_size"]), np.float32)
    padded_weights[padded["attention_mask"] == 1] = token_weights
    packed_weights = np.pad(token_weights, ((0, width - starts[-1]), (0, 0)))[None]
    graphdef, params = nnx.split(encoder, nnx.Param)

    def grad(ids, segments, positions, weights):
        def loss(params):
            last, states = nnx.merge(graphdef, params)(
                ids, segments, position_ids=positions, output_hidden_states=True
            )
            tokens = (segments > 0)[..., None]
            return jnp.sum(last * weights) + 1e-3 * sum(jnp.sum(state * tokens) for state in states)

        return jax.jit(jax.grad(loss))(params)

    padded_positions = np.broadcast_to(np.arange(11), (3, 11))
    padded_grad = grad(padded["input_ids"], padded["attention_mask"], padded_positions, padded_weights)
    packed_grad = grad(packed_ids, segments, positions, packed_weights)
    largest = max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(padded_grad))
    gaps = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), packed_grad, padded_grad)
    assert largest > 0 and max(jax.tree.leaves(gaps)) <= 1e-5 * largest


def test_save_round_trips_through_transformers(modernbert, tmp_path):
    """jaxst -> save -> transformers: the same keys and tensors (biases or not), equal hidden states."""
    model, encoder, folder = modernbert
    save_encoder(encoder, tmp_path)
    reloaded, info = transformers.ModernBertModel.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    original, saved = load_file(folder / "model.safetensors"), load_file(tmp_path / "model.safetensors")
    assert saved.keys() == original.keys()
    assert all(np.array_equal(saved[key], original[key]) for key in original)
    batch = batch_of([9, 4], 9, seed=6)
    for ours, theirs in zip(
        torch_hidden_states(reloaded.eval(), batch), torch_hidden_states(model, batch), strict=True
    ):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("tied", [True, False])
def test_a_masked_lm_checkpoint_loads_its_model_and_saves_back_every_tensor(tmp_path, tied):
    """ModernBertForMaskedLM: body keys prefixed "model.", the prediction head and the decoder (its weight
    only when untied from the embeddings) kept aside and written back unchanged."""
    options = dict(tie_word_embeddings=tied, classifier_bias=True, norm_bias=not tied)
    model = save_modernbert(tmp_path / "mlm", transformers.ModernBertForMaskedLM, **options)
    original = load_file(tmp_path / "mlm" / "model.safetensors")
    assert ("decoder.weight" in original) is not tied and "head.dense.bias" in original
    encoder, extras = load_checkpoint(tmp_path / "mlm")
    assert extras.key_prefix == "model." and "decoder.bias" in extras.unused_tensors
    batch = batch_of([11, 6], 11, seed=8)
    expected = torch_hidden_states(model.model, batch)[-1]
    assert np.max(np.abs(np.asarray(encode(encoder, batch)) - expected)) < TOLERANCE
    save_encoder(encoder, tmp_path / "saved", extras)
    saved = load_file(tmp_path / "saved" / "model.safetensors")
    assert saved.keys() == original.keys()
    assert all(np.array_equal(saved[key], original[key]) for key in original)


def test_train_mode_statistics_match_torch(tmp_path):
    """Over 400 draws, the per-entry mean and spread of train-mode outputs equal torch's, with dropout on
    the embeddings, the attention probabilities and output, and the MLP's gated activations."""
    rates = dict(embedding_dropout=0.1, attention_dropout=0.2, mlp_dropout=0.3, num_hidden_layers=2)
    model = save_modernbert(tmp_path, **rates).train()
    batch = batch_of([12, 8, 5], 12, seed=9)
    draws = 400
    tiled = {key: np.tile(value, (draws, 1)) for key, value in batch.items()}
    torch.manual_seed(0)
    with torch.no_grad():
        theirs = model(**{key: torch.from_numpy(value.astype(np.int64)) for key, value in tiled.items()})
    theirs = theirs.last_hidden_state.numpy().reshape(draws, *batch["input_ids"].shape, -1)
    encoder = load_encoder(tmp_path)
    assert set(encoder.layers[0].dropout_shapes(1, 12)) == {"attention", "attention_output", "mlp"}
    ours = jax.jit(lambda rng: encoder(**tiled, dropout_rng=rng))(jax.random.key(0))
    ours = np.asarray(ours).reshape(theirs.shape)
    tokens = batch["attention_mask"].astype(bool)
    spread = theirs.std(0)[tokens].mean()
    assert np.abs(ours.mean(0) - theirs.mean(0))[tokens].mean() < 0.075 * spread
    assert abs(ours.std(0)[tokens].mean() / spread - 1) < 0.03


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"hidden_activation": "gelu_unknown"}, "hidden_activation"),
        ({"layer_types": ["full_attention", "chunked_attention"] * 2}, "layer_types"),
        (
            {
                "rope_parameters": {
                    "full_attention": {"rope_type": "default", "rope_theta": 2000.0},
                    "sliding_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 300.0},
                }
            },
            r"rope_parameters\['sliding_attention'\].rope_type='linear'",
        ),
        ({"attention_dropout": 1.0}, "attention_dropout"),
        ({"mlp_dropout": 1.0}, "mlp_dropout"),
        ({"embedding_dropout": -0.1}, "embedding_dropout"),
        ({"local_attention": -2}, "local_attention"),
        ({"head_dim": 16}, "head_dim"),
        ({"num_attention_heads": 5}, "5 attention heads"),
    ],
)
def test_unsupported_config_option_is_named(without_biases, tmp_path, changes, named):
    _, _, plain_folder = without_biases
    config = json.loads((plain_folder / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, **changes}))
    (tmp_path / "model.safetensors").symlink_to(plain_folder / "model.safetensors")
    with pytest.raises(UnsupportedConfigError, match=named):
        load_encoder(tmp_path)


def test_a_config_in_the_released_checkpoints_form_gives_the_same_spec(without_biases, tmp_path):
    """ModernBERT-base's config.json names global_attn_every_n_layers, global_rope_theta and
    local_rope_theta (transformers turns them into layer_types and rope_parameters), and options of
    kernels and heads (reference_compile, deterministic_flash_attn, classifier_pooling) that change no
    hidden state: the encoder's spec is that of the current form."""
    _, encoder, folder = without_biases
    config = json.loads((folder / "config.json").read_text())
    del config["layer_types"], config["rope_parameters"]
    config.update(
        global_attn_every_n_layers=2,
        global_rope_theta=CONFIG["global_rope_theta"],
        local_rope_theta=CONFIG["local_rope_theta"],
        reference_compile=None,
        deterministic_flash_attn=True,
        classifier_pooling="mean",
    )
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "model.safetensors").symlink_to(folder / "model.safetensors")
    released = load_encoder(tmp_path).spec
    assert dataclasses.replace(released, transformers_json="") == dataclasses.replace(
        encoder.spec, transformers_json=""
    )
