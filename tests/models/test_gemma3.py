"""Gemma 3 text (EmbeddingGemma) against transformers: local and global layers, grouped-query attention,
a sliding window shorter than the texts, causal and bidirectional attention, left and right padding,
packed rows (windows and rotary positions restart per text) and their gradients, checkpoints with the
language-model head, saving back to transformers, and the config options jaxst refuses."""

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
from tests.models.tiny_models import batch_of_lengths, perturb_, torch_hidden_states

TOLERANCE = 1e-5
PAD = 0
LOCAL, GLOBAL = "sliding_attention", "full_attention"
# 3 layers, local, global, local; 6 query heads share 2 key / value heads (groups of 3); heads of 12
# (N * D = 72, H = 48); a window of 5 positions (causal) on texts of up to 13 tokens; a logit scale,
# rotary bases and an RMS norm epsilon away from the defaults, so that each is read from the config.
CONFIG = dict(
    vocab_size=300,
    hidden_size=48,
    num_hidden_layers=3,
    num_attention_heads=6,
    num_key_value_heads=2,
    head_dim=12,
    intermediate_size=40,
    max_position_embeddings=64,
    rms_norm_eps=1e-5,
    query_pre_attn_scalar=10,
    layer_types=[LOCAL, GLOBAL, LOCAL],
    sliding_window=5,
    rope_parameters={
        GLOBAL: {"rope_type": "default", "rope_theta": 500.0},
        LOCAL: {"rope_type": "default", "rope_theta": 50.0},
    },
    pad_token_id=PAD,
)
# config.json's sliding_window for a bidirectional model: transformers keeps 6 // 2 + 1 = 4, and a local
# layer's token attends the tokens less than 4 positions away on either side (7 tokens).
BIDIRECTIONAL = dict(use_bidirectional_attention=True, sliding_window=6)


def save_gemma3(folder, model_class=transformers.Gemma3TextModel, **overrides):
    """A perturbed tiny Gemma 3 `model_class` saved to `folder`, returned in eval mode.

    Every layer adds the output of an RMS norm to the residual stream, which then reaches 8 after three
    layers whatever the noise: float32 rounding there is 5e-7, and torch's and jaxst's sums of
    different order differ by up to 7e-6 (each about as far from a float64 run as the other)."""
    torch.manual_seed(0)
    config = transformers.Gemma3TextConfig(**{**CONFIG, **overrides})
    model = perturb_(model_class(config), scale=0.1).eval()
    model.save_pretrained(folder)
    return model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """mode ("causal", "bidirectional") -> (the torch Gemma3TextModel, the jaxst encoder, its folder)."""
    models = {}
    for mode, overrides in (("causal", {}), ("bidirectional", BIDIRECTIONAL)):
        folder = tmp_path_factory.mktemp(mode)
        models[mode] = save_gemma3(folder, **overrides), load_encoder(folder), folder
    return models


@pytest.fixture(params=["causal", "bidirectional"])
def gemma3(request, models):
    return models[request.param]


batch_of = partial(batch_of_lengths, vocab_size=CONFIG["vocab_size"], pad_token_id=PAD)


@partial(jax.jit, static_argnums=0)
def _hidden_states(graphdef, state, input_ids, attention_mask, position_ids):
    return nnx.merge(graphdef, state)(
        input_ids, attention_mask, position_ids=position_ids, output_hidden_states=True
    )[1]


def hidden_states(encoder, input_ids, attention_mask, position_ids=None):
    """Every hidden state of the encoder, through one jitted function for all encoders of one spec, so
    that tests of one shape share a compile."""
    graphdef, state = nnx.split(encoder)
    return [np.asarray(h) for h in _hidden_states(graphdef, state, input_ids, attention_mask, position_ids)]


def encode(encoder, batch):
    """The last hidden state of a padded batch."""
    return hidden_states(encoder, batch["input_ids"], batch["attention_mask"])[-1]


def max_gap(ours, theirs, where=...):
    return float(np.max(np.abs(np.asarray(ours, np.float32) - theirs)[where]))


def test_every_hidden_state_matches_transformers_with_left_and_right_padding(gemma3):
    """All positions of every hidden state against transformers' default (SDPA) attention, padding
    included; the text tokens also against its eager attention (whose padding queries without a key
    average every value, where SDPA and jaxst give zeros)."""
    model, encoder, _ = gemma3
    assert encoder.causal is not model.config.use_bidirectional_attention
    batch = batch_of([13, 7, 1, 9, 4], 13, left_padded=(3, 4))
    ours = hidden_states(encoder, batch["input_ids"], batch["attention_mask"])
    tokens = batch["attention_mask"] == 1
    model.config._attn_implementation = "eager"
    eager = torch_hidden_states(model, batch)
    model.config._attn_implementation = "sdpa"
    sdpa = torch_hidden_states(model, batch)
    assert len(ours) == len(sdpa) == 4
    for layer in range(4):
        assert max_gap(ours[layer], sdpa[layer]) < TOLERANCE, f"hidden state {layer}"
        assert max_gap(ours[layer], eager[layer], tokens) < TOLERANCE, f"hidden state {layer} (eager)"


def test_the_window_is_what_transformers_makes_of_the_config(gemma3):
    """A token's local layers see `sliding_window` tokens up to its own (causal), or those less than
    sliding_window // 2 + 1 positions away (bidirectional: 3 on each side for config.json's 6). A change
    of one token reaches the first (local) layer's output exactly there."""
    model, encoder, _ = gemma3
    batch = batch_of([13] * 5, 13, seed=1)
    before = hidden_states(encoder, batch["input_ids"], batch["attention_mask"])[1][0]
    batch["input_ids"][0, 6] = batch["input_ids"][0, 6] % (CONFIG["vocab_size"] - 1) + 1
    after = hidden_states(encoder, batch["input_ids"], batch["attention_mask"])[1][0]
    moved = np.flatnonzero(np.any(before != after, axis=-1))
    np.testing.assert_array_equal(moved, np.arange(6, 11) if encoder.causal else np.arange(3, 10))
    assert model.config.sliding_window == (5 if encoder.causal else 4)


def test_left_padding_gives_the_tokens_of_right_padding(gemma3):
    """transformers counts a left-padded text's positions from the row start; rotary attention and
    windows depend on position differences only, so its tokens equal those of the text padded on the
    right."""
    _, encoder, _ = gemma3
    batch = batch_of([9] * 5, 13, seed=3)
    for name in batch:
        batch[name][1] = np.roll(batch[name][0], 4)
    out = encode(encoder, batch)
    assert max_gap(out[0, :9], out[1, 4:]) < TOLERANCE


LENGTHS = [5, 11, 3]  # packed in one row of 22: the texts, then 3 padding positions
WIDTH = 22


def packed_inputs(batch):
    """The texts of a right-padded batch laid end to end in one row: ids, segment ids and positions."""
    lengths = batch["attention_mask"].sum(axis=1)
    ids = np.concatenate([row[:n] for row, n in zip(batch["input_ids"], lengths, strict=True)])
    segments = np.repeat(np.arange(1, len(lengths) + 1), lengths)
    positions = np.concatenate([np.arange(n) for n in lengths])

    def pad(x):
        return np.pad(x, (0, WIDTH - len(x)))[None].astype(np.int32)

    return pad(ids), pad(segments), pad(positions)


@partial(jax.jit, static_argnums=0)
def _states_and_grad(graphdef, state, input_ids, attention_mask, position_ids, weights):
    """Every hidden state, and the gradient of sum_layers sum(hidden * weights) at the texts' tokens."""

    def loss(state):
        call = nnx.merge(graphdef, state)
        _, hidden = call(input_ids, attention_mask, position_ids=position_ids, output_hidden_states=True)
        tokens = (attention_mask > 0)[..., None]
        return sum(jnp.sum(h * weights * tokens) for h in hidden), hidden

    grad, hidden = jax.grad(loss, has_aux=True)(state)
    return hidden, grad


def test_a_packed_row_matches_each_text_alone_with_its_gradients(gemma3):
    """Every hidden state of each text of a packed row equals the text's alone (windows and rotary
    positions count within a text, no token attends another text), and the gradients of a loss of all
    hidden states agree within 1e-5 of the largest gradient. The padding id, also a token of each text
    here, gets no gradient (as torch's Embedding(padding_idx=pad_token_id))."""
    _, encoder, _ = gemma3
    batch = batch_of(LENGTHS, 11, seed=4)
    batch["input_ids"][:, 2] = PAD
    ids, segments, positions = packed_inputs(batch)
    tokens = batch["attention_mask"] == 1
    weights = np.random.default_rng(5).normal(size=(*tokens.shape, CONFIG["hidden_size"]))
    weights = weights.astype(np.float32)
    packed_weights = np.zeros((1, WIDTH, CONFIG["hidden_size"]), np.float32)
    packed_weights[0, : tokens.sum()] = weights[tokens]
    graphdef, state = nnx.split(encoder)
    alone, padded_grad = _states_and_grad(
        graphdef, state, batch["input_ids"], batch["attention_mask"], None, weights
    )
    packed, packed_grad = _states_and_grad(graphdef, state, ids, segments, positions, packed_weights)
    starts = np.r_[0, np.cumsum(LENGTHS)]
    for layer, (row, padded) in enumerate(zip(packed, alone, strict=True)):
        for text, n in enumerate(LENGTHS):
            gap = max_gap(row[0, starts[text] : starts[text + 1]], np.asarray(padded)[text, :n])
            assert gap < TOLERANCE, f"hidden state {layer}, text {text}"
    largest = max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(padded_grad))
    gaps = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), packed_grad, padded_grad)
    assert largest > 0 and max(jax.tree.leaves(gaps)) <= 1e-5 * largest
    for grad in (padded_grad, packed_grad):
        table = np.asarray(grad["embeddings"]["embedding"][...])
        assert not np.any(table[PAD]) and np.all(np.any(table[batch["input_ids"][:, :2]] != 0, axis=-1))


def test_saving_round_trips_through_transformers(gemma3, tmp_path):
    """jaxst's folder loads in transformers as the same model: same config, same outputs."""
    model, encoder, folder = gemma3
    save_encoder(encoder, tmp_path)
    reloaded, info = transformers.AutoModel.from_pretrained(tmp_path, output_loading_info=True)
    assert type(reloaded) is transformers.Gemma3TextModel
    assert not any(info[kind] for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    assert (tmp_path / "config.json").read_text() == (folder / "config.json").read_text()
    batch = batch_of([13, 6], 13, left_padded=(1,), seed=6)
    for ours, theirs in zip(
        torch_hidden_states(reloaded.eval(), batch), torch_hidden_states(model, batch), strict=True
    ):
        np.testing.assert_array_equal(ours, theirs)


def test_linear_rope_scaling_of_the_global_layers_matches_transformers(tmp_path):
    """rope_scaling (Gemma 3 4B and larger: linear, factor 8) applies to the global layers only."""
    model = save_gemma3(tmp_path, rope_scaling={"rope_type": "linear", "factor": 8.0})
    assert model.config.rope_parameters[GLOBAL]["factor"] == 8.0
    assert model.config.rope_parameters[LOCAL]["rope_type"] == "default"
    batch = batch_of([13, 7, 1, 9, 4], 13, seed=7)
    expected = torch_hidden_states(model, batch)[-1]
    assert max_gap(encode(load_encoder(tmp_path), batch), expected) < TOLERANCE


@pytest.mark.parametrize("tied", [False, True])
def test_a_causal_lm_checkpoint_loads_its_model_and_saves_back_every_tensor(tmp_path, tied):
    """Gemma3ForCausalLM: keys prefixed "model.", and lm_head.weight unless tied to the embeddings."""
    model = save_gemma3(tmp_path / "lm", transformers.Gemma3ForCausalLM, tie_word_embeddings=tied)
    original = load_file(tmp_path / "lm" / "model.safetensors")
    assert ("lm_head.weight" in original) is not tied
    encoder, extras = load_checkpoint(tmp_path / "lm")
    assert extras.key_prefix == "model."
    batch = batch_of([13, 7, 1, 9, 4], 13, seed=10)
    assert max_gap(encode(encoder, batch), torch_hidden_states(model.model, batch)[-1]) < TOLERANCE
    save_encoder(encoder, tmp_path / "saved", extras)
    saved = load_file(tmp_path / "saved" / "model.safetensors")
    assert saved.keys() == original.keys()
    assert all(np.array_equal(saved[key], original[key]) for key in original)


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"attention_bias": True}, "attention_bias"),
        ({"attn_logit_softcapping": 50.0}, "attn_logit_softcapping"),
        (
            {"rope_scaling": {"rope_type": "yarn", "factor": 4.0}},
            r"rope_parameters\['full_attention'\].*'yarn'",
        ),
        (
            {
                "rope_parameters": {
                    **CONFIG["rope_parameters"],
                    LOCAL: {"rope_type": "dynamic", "factor": 2.0},
                }
            },
            r"rope_parameters\['sliding_attention'\].*'dynamic'",
        ),
        (
            {
                "rope_parameters": {
                    **CONFIG["rope_parameters"],
                    GLOBAL: {**CONFIG["rope_parameters"][GLOBAL], "partial_rotary_factor": 0.5},
                }
            },
            "partial_rotary_factor",
        ),
        ({"layer_types": [LOCAL, "chunked_attention", GLOBAL]}, "layer_types"),
        ({"hidden_activation": "gelu_unknown"}, "hidden_activation"),
        ({"attention_dropout": 1.0}, "attention_dropout"),
        ({"num_key_value_heads": 4}, "num_key_value_heads"),
    ],
)
def test_unsupported_config_option_is_named(models, tmp_path, changes, named):
    _, _, folder = models["causal"]
    config = json.loads((folder / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, **changes}))
    (tmp_path / "model.safetensors").symlink_to(folder / "model.safetensors")
    with pytest.raises(UnsupportedConfigError, match=named):
        load_encoder(tmp_path)
