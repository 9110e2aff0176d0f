"""The encoders' contracts: a frozen spec, checkpoint extras kept out of the graphdef, one key table per
family, and config.json written as transformers writes it."""

import dataclasses
import shutil

import jax
import pytest
import transformers
from flax import nnx
from safetensors.numpy import load_file, save_file

from jaxst.models import CheckpointExtras, UnsupportedConfigError, load_checkpoint, load_encoder, save_encoder
from jaxst.models.registry import ENCODER_CLASSES, key_table
from tests.models.tiny_models import (
    ARCHITECTURES,
    new_torch_model,
    padded_batch,
    save_tiny_model,
    tiny_config,
)


@pytest.fixture(scope="module")
def bert_folders(tmp_path_factory):
    """A tiny BERT saved as transformers saves it, and the same tensors with the "bert." key prefix."""
    plain = tmp_path_factory.mktemp("plain")
    save_tiny_model(plain, "bert")
    prefixed = shutil.copytree(plain, tmp_path_factory.mktemp("prefixed") / "model")
    tensors = load_file(prefixed / "model.safetensors")
    save_file({f"bert.{k}": v for k, v in tensors.items()}, prefixed / "model.safetensors", {"format": "pt"})
    return plain, prefixed


def test_spec_is_frozen_hashable_and_equal_across_loads(bert_folders):
    plain, _ = bert_folders
    first, second = load_encoder(plain), load_encoder(plain)
    assert first.spec == second.spec and hash(first.spec) == hash(second.spec)
    assert (first.spec.hidden_size, first.spec.num_layers, first.spec.type_vocab_size) == (32, 2, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.spec.hidden_size = 64


def test_checkpoint_extras_stay_out_of_the_graphdef(bert_folders, tmp_path):
    """Two checkpoints of one config with different key prefixes give equal graphdefs (one compile), and
    each is saved back with its own prefix, also after nnx.split / nnx.merge."""
    plain, prefixed = bert_folders
    plain_encoder, prefixed_encoder = load_encoder(plain), load_encoder(prefixed)
    (plain_graphdef, plain_state), (prefixed_graphdef, prefixed_state) = (
        nnx.split(plain_encoder),
        nnx.split(prefixed_encoder),
    )
    assert plain_graphdef == prefixed_graphdef and hash(plain_graphdef) == hash(prefixed_graphdef)
    traces = []

    @jax.jit
    def encode(state, input_ids, attention_mask):
        traces.append(input_ids.shape)
        return nnx.merge(plain_graphdef, state)(input_ids, attention_mask)

    batch = padded_batch(0, length=8)
    for state in (plain_state, prefixed_state):
        encode(state, batch["input_ids"], batch["attention_mask"])
    assert len(traces) == 1

    merged = nnx.merge(prefixed_graphdef, prefixed_state)
    for name, encoder, folder in (("plain", plain_encoder, plain), ("prefixed", merged, prefixed)):
        save_encoder(encoder, tmp_path / name)
        saved = load_file(tmp_path / name / "model.safetensors")
        assert saved.keys() == load_file(folder / "model.safetensors").keys()


def test_load_checkpoint_returns_the_extras_apart(tmp_path):
    save_tiny_model(tmp_path / "pretraining", "bert", transformers.BertForPreTraining)
    encoder, extras = load_checkpoint(tmp_path / "pretraining")
    assert extras.key_prefix == "bert." and "cls.predictions.bias" in extras.unused_tensors
    assert not any(isinstance(value, CheckpointExtras) for value in vars(encoder).values())
    original = load_file(tmp_path / "pretraining" / "model.safetensors")
    save_encoder(encoder, tmp_path / "with_extras", extras)
    assert load_file(tmp_path / "with_extras" / "model.safetensors").keys() == original.keys()
    save_encoder(encoder, tmp_path / "parameters_only")
    assert load_file(tmp_path / "parameters_only" / "model.safetensors").keys() == set(key_table("bert", 2))


@pytest.mark.parametrize("model_type", ARCHITECTURES)
def test_key_table_names_every_parameter_of_the_transformers_model(model_type):
    encoder_class = ENCODER_CLASSES[model_type]
    table = key_table(model_type, 2)
    mapping = encoder_class.key_mapping(encoder_class.spec_from_config(tiny_config(model_type)))
    state = new_torch_model(model_type, tiny_config(model_type)).state_dict()
    assert set(table) == set(mapping.table) <= state.keys()
    assert state.keys() - set(table) <= mapping.unused_keys | {key for key, _ in mapping.tied_keys}


@pytest.mark.parametrize("model_type", ARCHITECTURES)
def test_config_json_is_written_as_transformers_writes_it(model_type, tmp_path):
    save_tiny_model(tmp_path / "original", model_type)
    save_encoder(load_encoder(tmp_path / "original"), tmp_path / "saved")
    transformers.AutoConfig.from_pretrained(tmp_path / "original").save_pretrained(tmp_path / "theirs")
    assert (tmp_path / "saved" / "config.json").read_text() == (
        tmp_path / "theirs" / "config.json"
    ).read_text()


@pytest.mark.parametrize("model_type", ["bert", "roberta"])
def test_token_types_without_a_table_are_refused(model_type, tmp_path):
    save_tiny_model(tmp_path, model_type)
    config = tiny_config(model_type, type_vocab_size=0)
    config.save_pretrained(tmp_path)
    with pytest.raises(UnsupportedConfigError, match="type_vocab_size=0"):
        load_encoder(tmp_path)
