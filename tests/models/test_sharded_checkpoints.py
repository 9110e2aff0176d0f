"""Sharded checkpoints: transformers' layout read tensor by tensor, written back sharded, bad shards named."""

import json
import shutil
import tracemalloc
import weakref

import numpy as np
import pytest
import transformers
from flax import nnx
from safetensors.numpy import load_file, save_file

from jaxst.io import hf
from jaxst.io.hf import WeightLoadingError
from jaxst.models import load_checkpoint, load_encoder, save_encoder
from tests.models.tiny_models import jit_encode, padded_batch, save_tiny_model, torch_hidden_states

# The tiny BERT's tensors take 80,040 bytes: transformers splits them into 3 files at this threshold.
SHARD_SIZE = "30KB"
SHARD_FILES = [f"model-0000{k}-of-00003.safetensors" for k in (1, 2, 3)]
INDEX = "model.safetensors.index.json"


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    """(the torch model, its folder with model.safetensors, its folder sharded by transformers); never
    modified by the tests: copy a folder before changing files."""
    folder = tmp_path_factory.mktemp("bert")
    model = save_tiny_model(folder / "single", "bert")
    model.save_pretrained(folder / "sharded", max_shard_size=SHARD_SIZE)
    return model, folder / "single", folder / "sharded"


@pytest.fixture
def sharded_copy(bert, tmp_path):
    return shutil.copytree(bert[2], tmp_path / "copy")


def _batch():
    batch = padded_batch(0, length=10)
    return {key: batch[key] for key in ("input_ids", "attention_mask", "token_type_ids")}


def _hidden_states(encoder):
    _, hidden_states = jit_encode(encoder, output_hidden_states=True)(*_batch().values())
    return [np.asarray(state) for state in hidden_states]


def _weight_files(folder):
    return sorted(path.name for path in folder.iterdir() if path.name.startswith("model"))


def _edit_index(folder, edit):
    index = json.loads((folder / INDEX).read_text())
    edit(index["weight_map"])
    (folder / INDEX).write_text(json.dumps(index))


def test_transformers_shards_load_like_the_single_file(bert):
    _, single, sharded = bert
    assert _weight_files(sharded) == [*SHARD_FILES, INDEX]
    ours, expected = _hidden_states(load_encoder(sharded)), _hidden_states(load_encoder(single))
    assert len(ours) == len(expected) == 3
    for state, expected_state in zip(ours, expected, strict=True):
        np.testing.assert_array_equal(state, expected_state)


def test_saved_shards_follow_transformers_layout_and_load_there(bert, tmp_path):
    model, _, sharded = bert
    save_encoder(load_encoder(sharded), tmp_path, max_shard_size=SHARD_SIZE)
    assert _weight_files(tmp_path) == [*SHARD_FILES, INDEX]
    ours, theirs = json.loads((tmp_path / INDEX).read_text()), json.loads((sharded / INDEX).read_text())
    assert ours["weight_map"] == theirs["weight_map"]
    assert ours["metadata"]["total_size"] == theirs["metadata"]["total_size"] == 80_040
    for name in SHARD_FILES:  # the pooler, unused by jaxst, is written back unchanged
        saved, original = load_file(tmp_path / name), load_file(sharded / name)
        assert saved.keys() == original.keys()
        assert all(np.array_equal(saved[key], original[key]) for key in original)
    reloaded, info = transformers.AutoModel.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    batch = _batch()
    for state, expected in zip(
        torch_hidden_states(reloaded.eval(), batch), torch_hidden_states(model, batch), strict=True
    ):
        np.testing.assert_array_equal(state, expected)


def test_a_save_replaces_the_weight_files_of_the_other_layout(bert, tmp_path):
    _, single, sharded = bert
    encoder = load_encoder(sharded)
    save_encoder(encoder, tmp_path)
    assert _weight_files(tmp_path) == ["model.safetensors"]  # below transformers' 50GB threshold
    save_encoder(encoder, tmp_path, max_shard_size=SHARD_SIZE)
    assert _weight_files(tmp_path) == [*SHARD_FILES, INDEX]
    save_encoder(encoder, tmp_path, max_shard_size="20KB")
    assert _weight_files(tmp_path) == [f"model-0000{k}-of-00005.safetensors" for k in range(1, 6)] + [INDEX]
    save_encoder(encoder, tmp_path)
    assert _weight_files(tmp_path) == ["model.safetensors"]
    saved, original = load_file(tmp_path / "model.safetensors"), load_file(single / "model.safetensors")
    assert saved.keys() == original.keys()
    assert all(np.array_equal(saved[key], original[key]) for key in original)


def test_missing_shard_is_named(sharded_copy):
    (sharded_copy / SHARD_FILES[1]).unlink()
    with pytest.raises(
        WeightLoadingError, match=f"shard {SHARD_FILES[1]} listed in .*{INDEX} does not exist"
    ):
        load_encoder(sharded_copy)


def test_tensor_missing_from_its_shard_is_named(sharded_copy):
    key = "encoder.layer.1.output.dense.bias"
    shard = json.loads((sharded_copy / INDEX).read_text())["weight_map"][key]
    tensors = load_file(sharded_copy / shard)
    del tensors[key]
    save_file(tensors, sharded_copy / shard, metadata={"format": "pt"})
    with pytest.raises(WeightLoadingError, match=f"'{key}' listed in .*{INDEX} is not in its shard {shard}"):
        load_encoder(sharded_copy)


def test_tensor_listed_under_another_shard_is_named(sharded_copy):
    key = "embeddings.word_embeddings.weight"
    _edit_index(sharded_copy, lambda weight_map: weight_map.update({key: SHARD_FILES[2]}))
    with pytest.raises(
        WeightLoadingError, match=f"'{key}' listed in .* is not in its shard {SHARD_FILES[2]}"
    ):
        load_encoder(sharded_copy)


def test_tensor_in_two_shards_is_refused(sharded_copy):
    key = "embeddings.word_embeddings.weight"
    first, last = load_file(sharded_copy / SHARD_FILES[0]), load_file(sharded_copy / SHARD_FILES[2])
    save_file({**last, key: first[key]}, sharded_copy / SHARD_FILES[2], metadata={"format": "pt"})
    with pytest.raises(WeightLoadingError, match=f"'{key}' is in both {SHARD_FILES[0]} and {SHARD_FILES[2]}"):
        load_encoder(sharded_copy)


def test_truncated_shard_is_named(sharded_copy):
    file = sharded_copy / SHARD_FILES[2]
    file.write_bytes(file.read_bytes()[:-100])
    with pytest.raises(WeightLoadingError, match=f"cannot read {file}"):
        load_encoder(sharded_copy)


def test_unexpected_tensor_in_a_shard_is_named(sharded_copy):
    key = "encoder.layer.0.attention.self.rotary"
    tensors = load_file(sharded_copy / SHARD_FILES[0])
    save_file(
        {**tensors, key: np.zeros(3, np.float32)}, sharded_copy / SHARD_FILES[0], metadata={"format": "pt"}
    )
    with pytest.raises(WeightLoadingError, match=f"unexpected.*'{key}'"):
        load_encoder(sharded_copy)


@pytest.mark.parametrize("layout", ["single", "sharded"])
def test_parameters_are_read_one_tensor_at_a_time(bert, layout, monkeypatch):
    """Every tensor the reader returns is followed until it is freed: apart from the unused tensors kept
    in the extras, no two checkpoint tensors are alive on the host at once, and each is read once."""
    folder = bert[1] if layout == "single" else bert[2]
    events = []  # (+1 or -1, key) in the order tensors are read and freed
    read = hf.Checkpoint.read

    def followed_read(checkpoint, key):
        value = read(checkpoint, key)
        events.append((1, key))
        weakref.finalize(value, events.append, (-1, key))
        return value

    monkeypatch.setattr(hf.Checkpoint, "read", followed_read)
    _, extras = load_checkpoint(folder)
    kept = set(extras.unused_tensors)
    assert kept == {"pooler.dense.weight", "pooler.dense.bias"}
    read_keys = [key for change, key in events if change == 1]
    assert sorted(read_keys) == sorted(load_file(bert[1] / "model.safetensors"))
    alive, most = 0, 0
    for change, key in events:
        if key not in kept:
            alive += change
            most = max(most, alive)
    assert most == 1 and alive == 0


def test_host_allocations_while_loading_stay_near_one_tensor(tmp_path):
    """A float16 checkpoint of 10.6M parameters (42 MB once in float32): the float32 conversions are the
    loader's only large numpy allocations, and tracemalloc counts them exactly."""
    shape = dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=6, intermediate_size=1536)
    config = transformers.BertConfig(vocab_size=512, max_position_embeddings=64, **shape)
    transformers.BertModel(config).half().save_pretrained(tmp_path, max_shard_size="8MB")
    assert len(list(tmp_path.glob("model-*.safetensors"))) == 3
    float32_bytes = 4 * sum(value.size for value in _tensors(tmp_path))
    largest_bytes = 4 * 384 * 1536
    load_encoder(tmp_path)  # once before measuring: first-call costs (tracing, caches) are not the loader's
    tracemalloc.start()
    try:
        encoder = load_encoder(tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert float32_bytes > 40e6
    assert peak < 3 * largest_bytes < float32_bytes / 5
    assert sum(variable[...].size for _, variable in nnx.to_flat_state(nnx.state(encoder, nnx.Param))) > 10e6


def _tensors(folder):
    return [
        value for file in sorted(folder.glob("model-*.safetensors")) for value in load_file(file).values()
    ]
