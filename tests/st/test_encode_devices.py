"""encode on several devices (rows of each batch split over a 1-D Mesh) and across two processes.

Each of D devices runs the one-device program on its rows / D rows of a batch, so a row's embedding is
bit for bit what one device gives in a batch of rows / D rows of the same length. XLA's CPU programs for
other row counts may order their sums differently, so against one-device encode with the same batch size
the results differ by a few float32 ulps (1.5e-7 measured): 1e-6 there, and 1e-5 against PyTorch.
"""

import json

import jax
import numpy as np
import pytest

from jaxst.buckets import bucket_lengths, plan_batches
from jaxst.sentence_transformer import SentenceTransformer
from tests.shared_data import stsb_sentences
from tests.st.tiny_st import TEXTS, build_torch_model, save_tiny_encoder
from tests.training.test_parallel import run_two_processes

SAME = 1e-6  # multi-device against one-device encode
ATOL = 1e-5  # against PyTorch sentence-transformers


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("encode_devices")
    build_torch_model(save_tiny_encoder(root / "encoder"), root / "model", normalize=True)
    return root / "model"


@pytest.fixture(scope="module")
def texts():
    return [*stsb_sentences("dev", 80), *TEXTS]


@pytest.fixture(scope="module")
def one_device(folder, texts):
    """Single-device encode (devices=1) and PyTorch's, of `texts`."""
    from sentence_transformers import SentenceTransformer as TorchSentenceTransformer

    theirs = TorchSentenceTransformer(str(folder), device="cpu").encode(texts, batch_size=16)
    return SentenceTransformer(folder).encode(texts, batch_size=16, devices=1), theirs


def record_steps(model, monkeypatch):
    """Records the (rows, length) shape and the devices of every batch encode runs."""
    step, runs = model._inference_step, []

    class RecordingStep:
        lower = step.lower

        def __call__(self, params, features, **kwargs):
            result = step(params, features, **kwargs)
            runs.append((features["input_ids"].shape, result.sharding.device_set))
            return result

    monkeypatch.setattr(model, "_inference_step", RecordingStep())
    return runs


@pytest.mark.multi_device
@pytest.mark.parametrize(
    ("devices", "used"), [(None, range(8)), (["cpu:6", "cpu:1", "cpu:3"], (6, 1, 3))], ids=str
)
def test_every_device_count_gives_one_device_encode_in_input_order(
    folder, texts, one_device, devices, used, monkeypatch
):
    expected, theirs = one_device
    model = SentenceTransformer(folder)
    runs = record_steps(model, monkeypatch)
    got = model.encode(texts, batch_size=16, devices=devices)
    np.testing.assert_allclose(got, expected, atol=SAME, rtol=0)
    np.testing.assert_allclose(got, theirs, atol=ATOL, rtol=0)

    used = {jax.devices("cpu")[index] for index in used}
    assert runs and all(devices_of_batch == used for _, devices_of_batch in runs)
    assert all(rows % len(used) == 0 for (rows, _), _ in runs)


@pytest.mark.multi_device
def test_each_device_computes_what_one_device_computes_for_its_rows(folder):
    """16 texts of one bucket length (all truncated to the longest): batches of 16 rows on 8 devices
    equal batches of 2 rows on one device, bit for bit."""
    texts = [f"{word} {TEXTS[-1]}" for word in "abcdefghijklmnop"]
    model = SentenceTransformer(folder)
    lengths = model.transformer.tokenize(texts).lengths
    assert set(lengths) == {model.max_seq_length}
    eight = model.encode(texts, batch_size=16, devices=8)
    np.testing.assert_array_equal(eight, model.encode(texts, batch_size=2, devices=1))


@pytest.mark.multi_device
def test_token_embeddings_and_single_texts_on_every_device(folder):
    model = SentenceTransformer(folder)
    expected = model.encode(TEXTS, batch_size=64, output_value="token_embeddings", devices=1)
    got = model.encode(TEXTS, batch_size=64, output_value="token_embeddings", devices=3)  # one batch
    assert [g.shape for g in got] == [e.shape for e in expected]
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, atol=SAME, rtol=0)
    np.testing.assert_allclose(model.encode(TEXTS[1]), model.encode(TEXTS[1], devices=1), atol=SAME, rtol=0)


@pytest.mark.multi_device
def test_compile_count_per_device_count(folder):
    """tests/st/test_encode.py's guarantee on 8 devices: at most one program per bucket used, and the
    same programs again for the same texts in another order."""
    model = SentenceTransformer(folder)
    texts = stsb_sentences("train", 400)
    lengths = np.diff(model.transformer.tokenize(texts).offsets)
    buckets_used = {next(b for b in model.bucket_lengths if b >= n) for n in lengths}
    assert len(buckets_used) > 3
    model.encode(texts, batch_size=32)
    assert model.compile_count <= len(buckets_used)
    model.encode(texts[::-1], batch_size=32)
    assert model.compile_count <= len(buckets_used)


@pytest.mark.multi_device
def test_bad_devices_are_named(folder):
    model = SentenceTransformer(folder)
    with pytest.raises(ValueError, match=r"devices=0: the count must be from 1 to 8; JAX has cpu:0 to cpu:7"):
        model.encode(TEXTS, devices=0)
    with pytest.raises(ValueError, match=r"devices=9: the count must be from 1 to 8"):
        model.encode(TEXTS, devices=9)
    with pytest.raises(TypeError, match=r"devices must be a device count or a list .* got str 'cpu:1'"):
        model.encode(TEXTS, devices="cpu:1")
    with pytest.raises(ValueError, match=r"devices is an empty list"):
        model.encode(TEXTS, devices=[])
    with pytest.raises(ValueError, match=r"devices\[1\] \('CPU:2'\) is cpu:2, already listed"):
        model.encode(TEXTS, devices=["cpu:2", "CPU:2"])
    with pytest.raises(ValueError, match=r"device 'gpu' is not available"):
        model.encode(TEXTS, devices=["cpu:0", "gpu"])
    with pytest.raises(TypeError, match=r"device is one device, where the model moves; .* devices=\[...\]"):
        model.encode(TEXTS, device=["cpu:0", "cpu:1"])


def test_two_processes_encode_what_one_process_encodes(tmp_path, folder):
    """Two local processes of 2 devices each: both get every embedding, in input order, and texts that
    differ between them are refused on both."""
    texts_path = tmp_path / "texts.json"
    texts_path.write_text(json.dumps(TEXTS))
    result = run_two_processes(tmp_path / "encoded.npz", "encode", str(folder), str(texts_path))
    model = SentenceTransformer(folder)
    expected = model.encode(TEXTS, devices=1)
    for process in range(2):
        np.testing.assert_allclose(result["embeddings"][process], expected, atol=SAME, rtol=0)
        np.testing.assert_allclose(result["one_text"][process], expected[0], atol=SAME, rtol=0)
    assert str(result["error"]).startswith("encode across 2 processes needs the same texts on every process")


def test_planned_rows_are_padded_to_a_multiple_of_the_device_count():
    lengths = np.array([40, 5, 40, 5, 5, 40, 5, 5, 5, 5, 5, 5, 5])
    plain = plan_batches(lengths, 4, bucket_lengths(64))
    padded = plan_batches(lengths, 4, bucket_lengths(64), row_multiple=3)
    assert [b.length for b in padded] == [b.length for b in plain] == [48, 8, 8, 8]
    for p, b in zip(padded, plain, strict=True):
        np.testing.assert_array_equal(p.indices, b.indices)
    assert [b.rows for b in plain] == [4, 4, 4, 4]
    assert [b.rows for b in padded] == [6, 6, 6, 6]
