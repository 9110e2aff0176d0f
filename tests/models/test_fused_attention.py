"""The fused attention kernels against the XLA path: each Pallas kernel in Pallas' interpret mode (value and
gradient), the arguments cuDNN gets, the fall back to XLA, and what each attention_dropout choice does."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxst.models import load_checkpoint
from jaxst.models.attention import TextMask, attention, text_attention_mask
from jaxst.models.fused_attention import FusedKernel, choose_kernel, cudnn_arguments
from jaxst.models.layers import draw_dropout_bits
from tests.models.tiny_models import VOCAB_SIZE, jit_encode, save_tiny_model

HEADS, KV_HEADS, HEAD_DIM = 4, 2, 8  # grouped-query attention: two query heads per key / value head
DROPOUT_RATE = 0.1
# The shortest length each Pallas kernel's blocks allow (GPU: 16, TPU: 128).
KERNEL_LENGTHS = {"pallas_gpu": 16, "pallas_tpu": 128}


def texts(length: int, causal: bool) -> tuple[jax.Array, jax.Array]:
    """(segment ids, positions) int [2, T]: row 0 one padded text (on the left when causal, as decoder
    tokenizers pad, positions 0..T-1 as the encoder counts them), row 1 two packed texts and padding."""
    first, second, pad = length // 4, length // 2, length - length // 4 - length // 2
    one_text = [0] * pad + [1] * (length - pad) if causal else [1] * (length - pad) + [0] * pad
    segments = np.array([one_text, [1] * first + [2] * second + [0] * pad])
    positions = np.array([np.arange(length), [*range(first), *range(second), *[0] * pad]])
    return jnp.asarray(segments, jnp.int32), jnp.asarray(positions, jnp.int32)


def qkv(length: int, seed: int = 0) -> tuple[jax.Array, ...]:
    keys = jax.random.split(jax.random.key(seed), 3)
    shapes = [(2, length, HEADS, HEAD_DIM), *[(2, length, KV_HEADS, HEAD_DIM)] * 2]
    return tuple(jax.random.normal(key, shape) for key, shape in zip(keys, shapes, strict=True))


@partial(jax.jit, static_argnames="dropout_rate")
def output_and_grads(mask, segments, inputs, bias=None, dropout_rate=0.0, dropout_bits=None):
    """attention's output on the text tokens (zeros at padding) and the gradient of a weighted sum of those
    outputs with respect to q, k, v, compiled as one program."""
    text_tokens = (segments != 0)[:, :, None, None]
    weights = jax.random.normal(jax.random.key(7), inputs[0].shape)

    def outputs(query, key, value):
        out = attention(query, key, value, mask, bias, dropout_rate=dropout_rate, dropout_bits=dropout_bits)
        return jnp.where(text_tokens, out, 0.0)

    out, pullback = jax.vjp(outputs, *inputs)
    return out, pullback(weights)


forward = jax.jit(attention, static_argnames=("dropout_rate", "scale"))


def assert_close(actual, expected):
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def gpu_kernel_bidirectional():
    """The GPU kernel's bidirectional output and gradients, shared by the comparison and the dropout test."""
    length = KERNEL_LENGTHS["pallas_gpu"]
    segments, positions = texts(length, causal=False)
    mask = TextMask(segments, positions, False, FusedKernel("pallas_gpu", interpret=True))
    return output_and_grads(mask, segments, qkv(length))


@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
@pytest.mark.parametrize("kernel", ["pallas_gpu", "pallas_tpu"])
def test_pallas_kernel_equals_xla_on_padded_and_packed_rows(kernel, causal, request):
    """Value and gradient (q, k, v) at 1e-5, grouped-query heads, on the text tokens."""
    length = KERNEL_LENGTHS[kernel]
    segments, positions = texts(length, causal)
    inputs = qkv(length)
    if kernel == "pallas_gpu" and not causal:
        fused = request.getfixturevalue("gpu_kernel_bidirectional")
    else:
        mask = TextMask(segments, positions, causal, FusedKernel(kernel, interpret=True))
        fused = output_and_grads(mask, segments, inputs)
    expected = output_and_grads(text_attention_mask(segments, positions, causal=causal), segments, inputs)
    assert_close(fused, expected)


def test_cudnn_arguments_mean_the_text_mask():
    """jax.nn.dot_product_attention with the keywords jaxst gives cuDNN (run by XLA here) computes what
    the XLA path computes with the text mask."""
    segments, positions = texts(16, causal=True)
    query, key, value = qkv(16)
    mask = text_attention_mask(segments, positions, causal=True)
    out = jax.nn.dot_product_attention(query, key, value, **cudnn_arguments(mask), implementation="xla")
    expected = attention(query, key, value, mask, None, dropout_rate=0.0, dropout_bits=None)
    text_tokens = (segments != 0)[:, :, None, None]
    assert_close(jnp.where(text_tokens, out, 0.0), jnp.where(text_tokens, expected, 0.0))


def test_xla_serves_what_a_kernel_cannot_express():
    """A bias (T5, MPNet) or a length off the kernel's blocks: the XLA path's output, bit for bit."""
    for length, bias in ((16, jax.random.normal(jax.random.key(3), (1, HEADS, 16, 16))), (12, None)):
        segments, positions = texts(length, causal=False)
        mask = TextMask(segments, positions, False, FusedKernel("pallas_gpu", interpret=True))
        fused, xla = (
            forward(*qkv(length), m, bias, dropout_rate=0.0, dropout_bits=None) for m in (mask, mask.dense())
        )
        np.testing.assert_array_equal(np.asarray(fused), np.asarray(xla))


def dropout_bits(length: int) -> jax.Array:
    shapes = {"attention": (2, HEADS, length, length)}
    return draw_dropout_bits(jax.random.key(5), [shapes])[0]["attention"]


def test_exact_dropout_is_the_xla_dropout_path_bit_for_bit():
    """attention_implementation="auto" with attention_dropout="exact" in train mode: the XLA path."""
    length = KERNEL_LENGTHS["pallas_gpu"]
    segments, positions = texts(length, causal=False)
    auto = TextMask(segments, positions, False, FusedKernel("pallas_gpu", chosen=False, interpret=True))
    dropout = {"dropout_rate": DROPOUT_RATE, "dropout_bits": dropout_bits(length)}
    fused, xla = (forward(*qkv(length), m, None, **dropout) for m in (auto, auto.dense()))
    np.testing.assert_array_equal(np.asarray(fused), np.asarray(xla))


def test_skip_dropout_is_attention_without_dropout(gpu_kernel_bidirectional):
    length = KERNEL_LENGTHS["pallas_gpu"]
    segments, positions = texts(length, causal=False)
    skip = TextMask(segments, positions, False, FusedKernel("pallas_gpu", skip_dropout=True, interpret=True))
    fused = forward(*qkv(length), skip, None, dropout_rate=DROPOUT_RATE, dropout_bits=dropout_bits(length))
    np.testing.assert_array_equal(np.asarray(fused), np.asarray(gpu_kernel_bidirectional[0]))


def test_named_kernel_with_exact_dropout_is_an_error():
    length = KERNEL_LENGTHS["pallas_gpu"]
    segments, positions = texts(length, causal=False)
    mask = TextMask(segments, positions, False, FusedKernel("pallas_gpu", interpret=True))
    with pytest.raises(ValueError, match="attention_dropout='skip'"):
        forward(*qkv(length), mask, None, dropout_rate=DROPOUT_RATE, dropout_bits=dropout_bits(length))


def test_kernel_choice_by_backend():
    assert choose_kernel("auto", "exact", "cpu") is None
    assert choose_kernel("xla", "skip", "gpu") is None
    assert choose_kernel("auto", "skip", "gpu") == FusedKernel("pallas_gpu", chosen=False, skip_dropout=True)
    assert choose_kernel("auto", "exact", "tpu") == FusedKernel("pallas_tpu", chosen=False)
    assert choose_kernel("pallas", "exact", "tpu") == FusedKernel("pallas_tpu")
    assert choose_kernel("pallas", "exact", "cpu") == FusedKernel("pallas_gpu", interpret=True)
    assert choose_kernel("cudnn", "exact", "gpu") == FusedKernel("cudnn")
    with pytest.raises(ValueError, match="attention_implementation='cudnn' needs a CUDA GPU.*'cpu'"):
        choose_kernel("cudnn", "exact", "cpu")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"attention_implementation": "flash"}, "attention_implementation must be one of .*got 'flash'"),
        ({"attention_dropout": "drop"}, "attention_dropout must be one of .*got 'drop'"),
        ({"attention_implementation": "cudnn"}, "attention_implementation='cudnn' needs a CUDA GPU"),
    ],
)
def test_attention_options_fail_at_loading_naming_the_option(options, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        load_checkpoint(tmp_path, **options)


def test_encoder_runs_the_kernel_chosen_on_packed_rows(tmp_path):
    """Gemma 3 (causal, grouped-query heads, its own logit scale) with "pallas" on CPU (the GPU kernel,
    interpreted): its global layer on the kernel, its local layer's sliding window on XLA; the text
    tokens' outputs equal the XLA path's."""
    save_tiny_model(tmp_path, "gemma3_text")
    length = KERNEL_LENGTHS["pallas_gpu"]
    segments, positions = texts(length, causal=True)
    input_ids = jax.random.randint(jax.random.key(1), segments.shape, 1, VOCAB_SIZE)
    outputs = {}
    for implementation in ("pallas", "xla"):
        encoder, _ = load_checkpoint(tmp_path, attention_implementation=implementation)
        encode = jit_encode(encoder, position_ids=positions)
        kernels = str(jax.make_jaxpr(encode)(input_ids, segments)).count("pallas_call")
        assert kernels == (1 if implementation == "pallas" else 0)  # the global layer's
        outputs[implementation] = jnp.where((segments != 0)[..., None], encode(input_ids, segments), 0.0)
    assert_close(outputs["pallas"], outputs["xla"])


def test_encoder_with_a_named_kernel_refuses_exact_dropout(tmp_path):
    save_tiny_model(tmp_path, "bert")  # attention_probs_dropout_prob 0.1
    encoder, _ = load_checkpoint(tmp_path, attention_implementation="pallas")
    ids = jnp.ones((1, KERNEL_LENGTHS["pallas_gpu"]), jnp.int32)
    with pytest.raises(ValueError, match="attention_dropout='skip'"):
        encoder(ids, jnp.ones_like(ids), dropout_rng=jax.random.key(0))
