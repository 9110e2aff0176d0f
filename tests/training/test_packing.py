"""Packed training batches: the layout, and packed forward passes against sentence-transformers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxst.packing import first_fit_decreasing, pack, row_bucket, row_length
from jaxst.sentence_transformer import SentenceTransformer
from jaxst.training.batching import batch_arrays
from jaxst.training.data import ExampleBatch
from tests.shared_data import stsb_sentences
from tests.st.tiny_st import build_torch_model, save_tiny_encoder

ARCHITECTURES = ("bert", "distilbert", "roberta", "mpnet")
POOLING = ("cls", "max", "mean", "weightedmean", "lasttoken")


def test_row_buckets_pad_at_most_a_quarter_of_the_rows():
    assert [row_bucket(r) for r in (1, 4, 5, 8, 9, 11, 16, 17, 33)] == [1, 4, 5, 8, 10, 12, 16, 20, 40]
    for rows in range(1, 300):
        assert rows <= row_bucket(rows) <= 1.25 * rows
        assert row_bucket(row_bucket(rows)) == row_bucket(rows)


def test_row_length_is_a_bucket_of_at_least_64_tokens_up_to_max_seq_length():
    assert [row_length(n, 256) for n in (1, 64, 65, 97, 256)] == [64, 64, 96, 128, 256]
    assert row_length(10, 32) == 32


def test_first_fit_decreasing_fills_rows_without_overlap():
    rng = np.random.default_rng(0)
    for _ in range(50):
        lengths = rng.integers(1, 65, rng.integers(1, 80))
        row, start, rows = first_fit_decreasing(lengths, 64)
        taken = np.zeros((rows, 64), int)
        for r, s, n in zip(row, start, lengths, strict=True):
            taken[r, s : s + n] += 1
        assert taken.max() == 1 and taken.sum() == lengths.sum()
        assert rows <= 2 * -(-lengths.sum() // 64)  # first fit never leaves two rows half empty


def packed_example(num_devices, agree_max=None):
    """Three columns of 8 examples with ragged lengths, tokens numbered by (text, position)."""
    rng = np.random.default_rng(1)
    lengths = rng.integers(0, 30, 24)
    offsets = np.r_[0, np.cumsum(lengths)]
    ids = np.concatenate([1000 * t + np.arange(n) + 1 for t, n in enumerate(lengths)]).astype(np.int32)
    kwargs = {} if agree_max is None else {"agree_max": agree_max}
    arrays = pack(
        ids, ids % 2, offsets, num_columns=3, num_devices=num_devices, max_seq_length=96, pad_id=-1, **kwargs
    )
    return lengths, ids, arrays


@pytest.mark.parametrize("num_devices", [1, 2, 4])
def test_pack_puts_every_text_on_its_examples_device_and_unpacks_it(num_devices):
    lengths, ids, arrays = packed_example(num_devices)
    rows_per_device = arrays["packed_input_ids"].shape[0] // num_devices
    length = arrays["packed_input_ids"].shape[1]
    assert length == 64
    per_device = 8 // num_devices
    for column in range(3):
        for example in range(8):
            text = column * 8 + example
            device = example // per_device
            rows = {
                k: v[device * rows_per_device : (device + 1) * rows_per_device].reshape(-1)
                for k, v in arrays.items()
                if k.startswith("packed_")
            }
            index = arrays["token_index"][column, example]
            mask = arrays["attention_mask"][column, example].astype(bool)
            assert mask.sum() == lengths[text]
            assert np.array_equal(
                rows["packed_input_ids"][index[mask]], 1000 * text + np.arange(lengths[text]) + 1
            )
            assert np.array_equal(
                rows["packed_token_type_ids"][index[mask]], rows["packed_input_ids"][index[mask]] % 2
            )
            assert np.array_equal(rows["packed_position_ids"][index[mask]], np.arange(lengths[text]))
            segment = rows["packed_segment_ids"][index[mask]]
            assert len(set(segment)) <= 1 and (segment > 0).all()
            # no other token of the row shares the text's segment number
            if lengths[text]:
                row = index[0] // length
                row_segments = rows["packed_segment_ids"][row * length : (row + 1) * length]
                assert (row_segments == segment[0]).sum() == lengths[text]
    padding = arrays["packed_segment_ids"] == 0
    assert (arrays["packed_input_ids"][padding] == -1).all()


def test_pack_takes_the_shapes_all_processes_agree_on():
    _, _, alone = packed_example(2)
    seen = []

    def agree_max(values):  # another process has a 70-token text and needs 11 rows
        seen.append(values)
        return [70] if len(seen) == 1 else [11]

    lengths, _, agreed = packed_example(2, agree_max=agree_max)
    assert alone["packed_input_ids"].shape[1] == 64 and agreed["packed_input_ids"].shape == (2 * 12, 96)
    assert seen[0] == [lengths.max()] and seen[1][0] <= 11


@pytest.fixture(scope="module", params=ARCHITECTURES)
def models(request, tmp_path_factory):
    """A tiny encoder of each architecture with every pooling mode concatenated: (jaxst, torch)."""
    folder = tmp_path_factory.mktemp(request.param)
    encoder = save_tiny_encoder(folder / "encoder", request.param)
    torch_model = build_torch_model(encoder, folder / "st", pooling_mode=POOLING)
    return SentenceTransformer(folder / "st"), torch_model


def texts():
    sentences = stsb_sentences("test", 24)
    return [sentences[:12], sentences[12:]]


@pytest.mark.parametrize("num_devices", [1, 3])
def test_packed_forward_matches_sentence_transformers(models, num_devices):
    """Every text of a packed batch embeds as sentence-transformers embeds it alone (all pooling modes)."""
    model, torch_model = models
    columns = texts()
    arrays = batch_arrays(model, ExampleBatch(columns, None), packed=True, num_devices=num_devices)
    rows = arrays["packed_input_ids"].shape[0] // num_devices
    per_device = 12 // num_devices
    for device in range(num_devices):
        features = {
            k: v[device * rows : (device + 1) * rows] for k, v in arrays.items() if k.startswith("packed_")
        }
        for name in ("token_index", "attention_mask"):
            features[name] = arrays[name][:, device * per_device : (device + 1) * per_device].reshape(
                2 * per_device, -1
            )
        ours = np.asarray(model.forward(model.params, features)["sentence_embedding"])
        theirs = np.concatenate(
            [
                torch_model.encode(
                    column[device * per_device : (device + 1) * per_device], convert_to_numpy=True
                )
                for column in columns
            ]
        )
        np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0)  # as tests/st/test_parity.py


def test_packed_gradients_equal_padded_gradients(models):
    """d(loss)/d(params) of a packed batch equals that of the same batch padded, with hidden states."""
    model, _ = models
    columns = texts()
    weights = jax.random.normal(jax.random.PRNGKey(0), (24, model.get_sentence_embedding_dimension()))

    def loss(params, features):
        out = model.forward(params, features, output_hidden_states=True)
        layers = sum(jnp.sum(h * out["attention_mask"][..., None]) for h in out["all_layer_embeddings"])
        return jnp.sum(out["sentence_embedding"] * weights) + 1e-3 * layers

    def flat(arrays):
        k, b, t = arrays["attention_mask"].shape
        return {k_: (v.reshape(k * b, t) if v.ndim == 3 else v) for k_, v in arrays.items()}

    padded = flat(batch_arrays(model, ExampleBatch(columns, None)))
    packed = flat(batch_arrays(model, ExampleBatch(columns, None), packed=True))
    assert packed["packed_input_ids"].size < padded["input_ids"].size
    value_padded, grads_padded = jax.value_and_grad(loss)(model.params, padded)
    value_packed, grads_packed = jax.value_and_grad(loss)(model.params, packed)
    np.testing.assert_allclose(value_packed, value_padded, rtol=1e-5)
    # Relative to the largest gradient: some leaves' true gradient is zero (the attention key bias
    # shifts all of a query's logits alike) and holds only rounding noise in both.
    scale = max(float(np.abs(b).max()) for b in jax.tree.leaves(grads_padded))
    for a, b in zip(jax.tree.leaves(grads_packed), jax.tree.leaves(grads_padded), strict=True):
        assert float(np.abs(np.asarray(a) - np.asarray(b)).max()) <= 1e-5 * scale
