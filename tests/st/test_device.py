"""device=, as sentence-transformers takes it: the parameters, the computation and the outputs go there.

The tests run on 8 CPU devices (tests/conftest.py), so placing a model on the fourth one is a real move.
"""

import jax
import numpy as np
import pytest

from jaxst.sentence_transformer import SentenceTransformer
from tests.shared_data import stsb_sentences
from tests.st.tiny_st import TEXTS, build_torch_model, save_tiny_encoder

pytestmark = pytest.mark.multi_device


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("device")
    build_torch_model(save_tiny_encoder(root / "encoder"), root / "model", normalize=True)
    return root / "model"


@pytest.fixture(scope="module")
def expected(folder):
    return SentenceTransformer(folder).encode(TEXTS, devices=1)  # what a model on one chosen device gives


def parameter_devices(model):
    return {device for leaf in jax.tree.leaves(model.params) for device in leaf.devices()}


@pytest.mark.parametrize("device", ["jax.Device", "cpu:3", "CPU:3"])
def test_the_model_runs_on_the_chosen_device(folder, expected, device, monkeypatch):
    fourth = jax.devices("cpu")[3]  # looked up here, not at collection, where fewer devices may exist
    device = fourth if device == "jax.Device" else device
    model = SentenceTransformer(folder, device=device)
    assert model.device == fourth
    assert parameter_devices(model) == {fourth}

    step = model._inference_step
    result_devices = []

    class RecordingStep:
        lower = step.lower

        def __call__(self, *args, **kwargs):
            result = step(*args, **kwargs)
            result_devices.append(result.devices())
            return result

    monkeypatch.setattr(model, "_inference_step", RecordingStep())
    texts = stsb_sentences("test", 100)
    before = model.compile_count
    np.testing.assert_array_equal(model.encode(TEXTS), expected)
    model.encode(texts, batch_size=16)
    compiled = model.compile_count - before
    model.encode(texts[::-1], batch_size=16)
    assert model.compile_count - before == compiled  # the same programs again
    assert result_devices and all(devices == {fourth} for devices in result_devices)
    assert model.encode(TEXTS, convert_to_tensor=True).devices() == {fourth}
    assert all(row.devices() == {fourth} for row in model.encode(TEXTS[:3], convert_to_numpy=False))

    model.set_params(jax.tree.map(lambda p: p + 0, model.params))  # e.g. trained on another device
    assert parameter_devices(model) == {fourth}


def test_encode_moves_the_model_as_sentence_transformers_does(folder, expected):
    model = SentenceTransformer(folder)
    assert model.device == jax.devices()[0]
    got = model.encode(TEXTS, device="cpu:5")
    assert model.device == jax.devices("cpu")[5]
    assert parameter_devices(model) == {jax.devices("cpu")[5]}
    np.testing.assert_array_equal(got, expected)
    assert model.to("cpu") is model and model.device == jax.devices("cpu")[0]


@pytest.mark.parametrize("device", ["gpu", "cuda", "cuda:0", "tpu", "mps", "cpu:8", ""])
def test_an_unavailable_device_is_named_with_what_jax_has(folder, device):
    with pytest.raises(ValueError, match=rf"device '{device}' is not available; JAX has cpu:0 to cpu:7"):
        SentenceTransformer(folder, device=device)


def test_a_bad_device_argument(folder):
    with pytest.raises(ValueError, match=r"device 'cpu:one': the index after ':' must be a number"):
        SentenceTransformer(folder, device="cpu:one")
    model = SentenceTransformer(folder)
    with pytest.raises(TypeError, match="device must be a platform name .* got int 0"):
        model.encode(TEXTS, device=0)
    with pytest.raises(ValueError, match="device 'gpu:1' is not available"):
        model.encode(TEXTS, device="gpu:1")
    assert model.device == jax.devices()[0]
