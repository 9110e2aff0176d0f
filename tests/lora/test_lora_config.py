"""LoraConfig against peft's LoraConfig (defaults, scaling, adapter_config.json) and the errors for what
jaxst does not implement; the initialisation of a fresh adapter."""

import json
import math

import numpy as np
import peft
import pytest
import torch
from flax import nnx

from jaxst.io.hf import WeightLoadingError
from jaxst.lora import LoraConfig
from jaxst.lora.adapter_files import ADAPTER_WEIGHTS_FILE
from jaxst.lora.layers import adapted_layers, linear_layers
from jaxst.models import load_checkpoint
from jaxst.sentence_transformer import SentenceTransformer
from tests.models.tiny_models import ARCHITECTURES, save_tiny_model
from tests.st.tiny_st import TEXTS


def test_defaults_and_scaling_are_peft_s():
    ours, theirs = LoraConfig(), peft.LoraConfig()
    for name in (
        "r",
        "lora_alpha",
        "lora_dropout",
        "bias",
        "use_rslora",
        "init_lora_weights",
        "target_modules",
    ):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert LoraConfig(r=16, lora_alpha=32).scaling == 2.0
    assert LoraConfig(r=16, lora_alpha=32, use_rslora=True).scaling == 32 / math.sqrt(16)


def test_a_peft_adapter_config_reads_to_the_same_options(tmp_path):
    theirs = peft.LoraConfig(r=6, lora_alpha=12, lora_dropout=0.05, target_modules=["query"], use_rslora=True)
    theirs.save_pretrained(str(tmp_path))
    ours = LoraConfig.from_adapter_json(json.loads((tmp_path / "adapter_config.json").read_text()))
    assert (ours.r, ours.lora_alpha, ours.lora_dropout, ours.target_modules, ours.use_rslora) == (
        6,
        12,
        0.05,
        ("query",),
        True,
    )


@pytest.mark.parametrize(
    "options, named",
    [
        ({"use_dora": True}, "use_dora"),
        ({"modules_to_save": ["classifier"]}, "modules_to_save"),
        ({"bias": "all"}, "bias"),
        ({"init_lora_weights": "pissa"}, "init_lora_weights"),
        ({"r": 0}, "r"),
        ({"lora_dropout": 1.0}, "lora_dropout"),
    ],
)
def test_an_option_jaxst_does_not_implement_is_refused_by_name(options, named):
    with pytest.raises(ValueError, match=named):
        LoraConfig(**options)
    with pytest.raises(ValueError, match=named):
        LoraConfig.from_adapter_json({"peft_type": "LORA", **options})


def test_an_unknown_option_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match="rank"):
        LoraConfig(rank=4)


def test_a_fresh_adapter_starts_as_a_no_op_with_kaiming_uniform_a(tiny_folder):
    """init_lora_weights=True: B = 0 and A ~ U(-1/sqrt(in), 1/sqrt(in)), so the embeddings are the base's."""
    model = SentenceTransformer(tiny_folder)
    expected = model.encode(TEXTS[:8])
    model.add_adapter(LoraConfig(r=8))
    layers = dict(adapted_layers(nnx.merge(model.graphdef, model.params["encoder"])))
    assert sorted(name.rsplit(".", 1)[-1] for name in layers) == ["query", "query", "value", "value"]
    for layer in layers.values():
        a = np.asarray(layer.lora_a[...])
        assert not np.asarray(layer.lora_b[...]).any()
        bound = 1 / math.sqrt(a.shape[0])
        assert np.abs(a).max() <= bound and np.abs(a).max() > 0.8 * bound and abs(a.mean()) < 0.2 * bound
    np.testing.assert_array_equal(model.encode(TEXTS[:8]), expected)
    with pytest.raises(ValueError, match="adapter already"):
        model.add_adapter(LoraConfig())


def test_targets_that_match_no_layer_are_an_error(tiny_folder):
    with pytest.raises(ValueError, match="q_proj"):
        SentenceTransformer(tiny_folder).add_adapter(LoraConfig(target_modules=["q_proj"]))


def test_adapter_weights_that_do_not_fit_are_an_error_naming_the_key(tiny_folder, tmp_path):
    model = SentenceTransformer(tiny_folder)
    model.add_adapter(LoraConfig(r=2))
    model.save(tmp_path / "saved")
    config = json.loads((tmp_path / "saved" / "adapter_config.json").read_text())
    (tmp_path / "saved" / "adapter_config.json").write_text(json.dumps({**config, "r": 3}))
    with pytest.raises(WeightLoadingError, match="lora_A.weight"):
        SentenceTransformer(tmp_path / "saved")
    (tmp_path / "saved" / "adapter_config.json").write_text(
        json.dumps({**config, "target_modules": ["query"]})
    )
    with pytest.raises(WeightLoadingError, match="value.lora_A.weight"):
        SentenceTransformer(tmp_path / "saved")
    assert (tmp_path / "saved" / ADAPTER_WEIGHTS_FILE).is_file()


def test_the_adaptable_layers_are_transformers_linear_layers_in_every_family(tmp_path):
    """The names PEFT matches and writes keys under are the torch model's nn.Linear names, all of them
    but the pooler's, which jaxst does not compute."""
    for model_type in ARCHITECTURES:
        torch_model = save_tiny_model(tmp_path / model_type, model_type)
        linear = {name for name, module in torch_model.named_modules() if isinstance(module, torch.nn.Linear)}
        encoder, _ = load_checkpoint(tmp_path / model_type)
        assert set(linear_layers(encoder)) == linear - {"pooler.dense"}, model_type
