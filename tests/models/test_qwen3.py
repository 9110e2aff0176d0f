"""Qwen3 against transformers: grouped-query attention, odd lengths, left and right padding, packed causal
rows, checkpoints with the language-model head, and the config options jaxst refuses."""

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
from jaxst.models.attention import attention, text_attention_mask
from tests.models.tiny_models import batch_of_lengths, jit_encode, perturb_, torch_hidden_states

TOLERANCE = 1e-5
PAD = 0
# 3 layers; 6 query heads share 2 key / value heads (groups of 3); heads of 12 (N * D = 72, H = 48);
# a rotary base and an RMS norm epsilon away from the defaults, so that both are read from the config.
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
    rope_parameters={"rope_type": "default", "rope_theta": 500.0},
    pad_token_id=PAD,
)


def save_qwen3(folder, model_class=transformers.Qwen3Model, **overrides):
    """A perturbed tiny Qwen3 `model_class` saved to `folder`, returned in eval mode.

    Noise of 0.1 keeps the pre-norm residual stream, which no layer norm rescales, within a few units,
    where float32 rounding stays well under the tolerance (with 0.2 it reaches 11, and 10 ulps there
    are 1e-5)."""
    torch.manual_seed(0)
    model = perturb_(model_class(transformers.Qwen3Config(**{**CONFIG, **overrides})), scale=0.1).eval()
    model.save_pretrained(folder)
    return model


@pytest.fixture(scope="module")
def qwen3(tmp_path_factory):
    """(the torch Qwen3Model, the jaxst encoder loaded from its folder, the folder)."""
    folder = tmp_path_factory.mktemp("qwen3")
    model = save_qwen3(folder)
    return model, load_encoder(folder), folder


batch_of = partial(batch_of_lengths, vocab_size=CONFIG["vocab_size"], pad_token_id=PAD)


def encode(encoder, batch, **kwargs):
    return jit_encode(encoder, **kwargs)(batch["input_ids"], batch["attention_mask"])


def test_every_hidden_state_matches_transformers_with_left_and_right_padding(qwen3):
    """All positions of every hidden state, padding included: right padding, left padding (whose
    padding attends no key under the causal mask) and odd lengths."""
    model, encoder, _ = qwen3
    batch = batch_of([13, 7, 1, 9, 4], 13, left_padded=(3, 4))
    expected = torch_hidden_states(model, batch)
    last, hidden_states = encode(encoder, batch, output_hidden_states=True)
    assert len(hidden_states) == len(expected) == 4
    for layer, (ours, theirs) in enumerate(zip(hidden_states, expected, strict=True)):
        assert np.max(np.abs(np.asarray(ours) - theirs)) < TOLERANCE, f"hidden state {layer}"
    assert np.array_equal(last, hidden_states[-1])


def test_left_padding_gives_the_tokens_of_right_padding(qwen3):
    """transformers counts a left-padded text's positions from the row start; rotary attention depends
    on position differences only, so its tokens equal those of the same text padded on the right."""
    _, encoder, _ = qwen3
    right = batch_of([9], 12, seed=3)
    left = {name: np.roll(array, 3, axis=1) for name, array in right.items()}
    ours = np.asarray(encode(encoder, right))[0, :9]
    theirs = np.asarray(encode(encoder, left))[0, 3:]
    assert np.max(np.abs(ours - theirs)) < TOLERANCE


def test_the_mask_joins_texts_positions_and_causality():
    """Two packed texts and a padding position: a token attends its own text (up to its position when
    causal), never padding; padding attends every token (up to its position), as in a padded row."""
    segments, positions = np.array([[1, 1, 1, 2, 2, 0]]), np.array([[0, 1, 2, 0, 1, 0]])
    causal = [[1, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0]]
    causal += [[0, 0, 0, 1, 0, 0], [0, 0, 0, 1, 1, 0], [1, 0, 0, 1, 0, 0]]
    both = [[1, 1, 1, 0, 0, 0]] * 3 + [[0, 0, 0, 1, 1, 0]] * 2 + [[1, 1, 1, 1, 1, 0]]
    for is_causal, expected in ((True, causal), (False, both)):
        mask = text_attention_mask(jnp.asarray(segments), jnp.asarray(positions), causal=is_causal)
        np.testing.assert_array_equal(mask, np.array(expected, bool)[None, None])


def test_a_packed_causal_row_matches_each_text_alone_and_attends_only_its_own_earlier_tokens(qwen3):
    _, encoder, _ = qwen3
    lengths = [5, 8, 3]
    alone_batch = batch_of(lengths, 8, seed=4)
    alone = np.asarray(encode(encoder, alone_batch))
    starts = np.r_[0, np.cumsum(lengths)]
    width = 20  # the row: the three texts, then padding
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
    # New tokens in the second text from its fifth on change only that text's tokens from there on:
    # not its earlier tokens (causal), nor the texts before and after it in the row.
    cut = starts[1] + 4
    changed = row.copy()
    changed[cut : starts[2]] = changed[cut : starts[2]] % (CONFIG["vocab_size"] - 1) + 1
    changed_out = run(changed)
    assert np.array_equal(changed_out[:cut], out[:cut])
    assert np.array_equal(changed_out[starts[2] :], out[starts[2] :])
    assert not np.allclose(changed_out[cut : starts[2]], out[cut : starts[2]], atol=1e-3)


def test_the_padding_token_embedding_gets_no_gradient(qwen3):
    """As torch's Embedding(padding_idx=pad_token_id): Qwen3-Embedding's pad token also ends every text."""
    _, encoder, _ = qwen3
    batch = batch_of([6, 4], 6, seed=5)
    batch["input_ids"][:, 2] = PAD  # the padding id as a token of both texts
    graphdef, state = nnx.split(encoder)

    def total(state):
        return jnp.sum(nnx.merge(graphdef, state)(batch["input_ids"], batch["attention_mask"]) ** 2)

    table = jax.jit(jax.grad(total))(state)["embeddings"]["embedding"][...]
    assert not np.any(table[PAD]) and np.all(np.any(table[batch["input_ids"][0, :2]] != 0, axis=-1))


def test_grouped_heads_match_on_the_dropout_path():
    """The explicit softmax path (train mode) pairs query head n with key / value head n // 3 as
    jax.nn.dot_product_attention does: with every probability kept it is that output / (1 - rate)."""
    rng = np.random.default_rng(0)
    query = rng.normal(size=(2, 5, 6, 4)).astype(np.float32)
    key, value = rng.normal(size=(2, 2, 5, 2, 4)).astype(np.float32)
    mask = text_attention_mask(jnp.ones((2, 5), int), jnp.broadcast_to(jnp.arange(5), (2, 5)), causal=True)
    expected = attention(query, key, value, mask, None, dropout_rate=0.0, dropout_bits=None)
    kept = jnp.full((2, 6, 5, 5), 2**32 - 1, jnp.uint32)
    dropped = attention(query, key, value, mask, None, dropout_rate=0.25, dropout_bits=kept)
    np.testing.assert_allclose(dropped, expected / 0.75, rtol=1e-6, atol=1e-6)  # float rounding only


@pytest.mark.parametrize("tied", [False, True])
def test_a_causal_lm_checkpoint_loads_its_model_and_saves_back_every_tensor(tmp_path, tied):
    """Qwen3ForCausalLM: keys prefixed "model.", and lm_head.weight unless tied to the embeddings."""
    model = save_qwen3(tmp_path / "lm", transformers.Qwen3ForCausalLM, tie_word_embeddings=tied)
    original = load_file(tmp_path / "lm" / "model.safetensors")
    assert ("lm_head.weight" in original) is not tied
    encoder, extras = load_checkpoint(tmp_path / "lm")
    assert extras.key_prefix == "model."
    batch = batch_of([7, 3], 7, seed=7)
    expected = torch_hidden_states(model.model, batch)[-1]
    assert np.max(np.abs(np.asarray(encode(encoder, batch)) - expected)) < TOLERANCE
    save_encoder(encoder, tmp_path / "saved", extras)
    saved = load_file(tmp_path / "saved" / "model.safetensors")
    assert saved.keys() == original.keys()
    assert all(np.array_equal(saved[key], original[key]) for key in original)


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"use_sliding_window": True, "sliding_window": 8, "max_window_layers": 1}, "use_sliding_window"),
        ({"layer_types": ["full_attention", "sliding_attention", "full_attention"]}, "layer_types"),
        ({"rope_scaling": {"type": "yarn", "factor": 4.0, "rope_theta": 500.0}}, "rope_scaling.*'yarn'"),
        ({"rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 500.0}}, "'linear'"),
        ({"attention_bias": True}, "attention_bias"),
        ({"is_causal": False}, "is_causal"),
        ({"hidden_act": "gelu_unknown"}, "hidden_act"),
        ({"attention_dropout": 1.0}, "attention_dropout"),
        ({"num_key_value_heads": 4}, "num_key_value_heads"),
    ],
)
def test_unsupported_config_option_is_named(qwen3, tmp_path, changes, named):
    _, _, folder = qwen3
    config = json.loads((folder / "config.json").read_text())
    if "rope_scaling" in changes:
        config.pop("rope_parameters")
    (tmp_path / "config.json").write_text(json.dumps({**config, **changes}))
    (tmp_path / "model.safetensors").symlink_to(folder / "model.safetensors")
    with pytest.raises(UnsupportedConfigError, match=named):
        load_encoder(tmp_path)
