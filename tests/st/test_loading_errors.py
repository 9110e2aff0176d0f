"""A broken model folder is refused with an error naming the file, the key and the numbers involved."""

import json
import re
import shutil

import numpy as np
import pytest
import torch

from jaxst.sentence_transformer import SentenceTransformer
from tests.st.tiny_st import MINILM, TEXTS, build_torch_model, save_tiny_encoder

ATOL = 1e-5
BERT_POSITIONS = 50  # the tiny BERT's max_position_embeddings
ROBERTA_POSITIONS = 49  # the tiny RoBERTa's 50 position embeddings less padding_idx + 1 = 1


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Transformer + Pooling + Dense + Normalize, saved by sentence-transformers, and its embeddings."""
    root = tmp_path_factory.mktemp("loading")
    encoder = save_tiny_encoder(root / "encoder")
    build_torch_model(encoder, root / "model", dense=((8, torch.nn.Tanh()),), normalize=True)
    return root / "model", SentenceTransformer(root / "model").encode(TEXTS)


@pytest.fixture
def folder(base, tmp_path):
    """A fresh copy of the base model folder, to break."""
    return shutil.copytree(base[0], tmp_path / "model")


def edit(path, change):
    """Writes `change` (a str) into the file, or applies it (a function) to the file's JSON."""
    text = change if isinstance(change, str) else json.dumps(change(json.loads(path.read_text())))
    path.write_text(text)


def with_sentence_bert(**values):
    return "sentence_bert_config.json", lambda config: {**config, **values}


MALFORMED = {
    "modules not json": ("modules.json", "[{", "is not valid JSON"),
    "module path not a str": (
        "modules.json",
        lambda m: [m[0], {**m[1], "path": 1}, *m[2:]],
        r"entry 1: 'path' must be str, got int 1",
    ),
    "module type not a str": (
        "modules.json",
        lambda m: [*m[:2], {**m[2], "type": None}, m[3]],
        r"entry 2: 'type' must be str, got NoneType None",
    ),
    "two modules in one folder": (
        "modules.json",
        lambda m: [*m[:2], {**m[2], "path": "1_Pooling/../1_Pooling"}, m[3]],
        r"entries 1 and 2 both have the module folder '1_Pooling/../1_Pooling'",
    ),
    "pooling not json": ("1_Pooling/config.json", '{"embedding_dimension": ', "is not valid JSON"),
    "pooling not an object": ("1_Pooling/config.json", "[1]", "must hold a JSON object, got list"),
    "legacy pooling flag not a bool": (
        "1_Pooling/config.json",
        json.dumps({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": "yes"}),
        r"'pooling_mode_mean_tokens' must be bool, got str 'yes'",
    ),
    "pooling dimension a str": (
        "1_Pooling/config.json",
        lambda c: {**c, "embedding_dimension": "32"},
        r"'embedding_dimension' must be a positive integer, got str '32'",
    ),
    "pooling mode a number": (
        "1_Pooling/config.json",
        lambda c: {**c, "pooling_mode": 3},
        r"'pooling_mode' must be str or list or tuple, got int 3",
    ),
    "include_prompt a str": (
        "1_Pooling/config.json",
        lambda c: {**c, "include_prompt": "no"},
        r"'include_prompt' must be bool, got str 'no'",
    ),
    "dense in_features a str": (
        "2_Dense/config.json",
        lambda c: {**c, "in_features": "32"},
        r"'in_features' must be a positive integer, got str '32'",
    ),
    "dense bias a str": ("2_Dense/config.json", lambda c: {**c, "bias": "true"}, r"'bias' must be bool"),
    "dense in_features missing": (
        "2_Dense/config.json",
        lambda c: {k: v for k, v in c.items() if k != "in_features"},
        r"Dense config key\(s\) \['in_features'\] missing",
    ),
    "dense config null": ("2_Dense/config.json", "null", "must hold a JSON object, got NoneType"),
    "normalize input a number": (
        "3_Normalize/config.json",
        json.dumps({"module_input_name": 3}),
        r"'module_input_name' must be str, got int 3",
    ),
    "transformer config not json": ("sentence_bert_config.json", "{oops", "is not valid JSON"),
    "do_lower_case a str": (*with_sentence_bert(do_lower_case="yes"), r"'do_lower_case' must be bool"),
    "tokenizer_args a list": (*with_sentence_bert(tokenizer_args=["a"]), r"'tokenizer_args' must be dict"),
    "max_seq_length too long": (
        *with_sentence_bert(max_seq_length=51),
        r"max_seq_length 51 exceeds the model's 50 positions",
    ),
    "model_max_length too long": (
        *with_sentence_bert(tokenizer_args={"model_max_length": 60}),
        r"model_max_length 60 exceeds the model's 50 positions",
    ),
    **{
        f"max_seq_length {value!r}": (
            *with_sentence_bert(max_seq_length=value),
            r"max_seq_length must be an integer from 2 to the model's 50 positions, got \w+ "
            + re.escape(repr(value)),
        )
        for value in (0, -3, 128.0, True, "128")
    },
    "tokenizer's model_max_length a str": (
        "tokenizer_config.json",
        lambda c: {**c, "model_max_length": "48"},
        r"'model_max_length' must be an integer >= 2, got str '48'",
    ),
    "model config not json": ("config_sentence_transformers.json", "{", "is not valid JSON"),
    "model config a list": ("config_sentence_transformers.json", "[]", "must hold a JSON object, got list"),
    **{
        f"prompts {prompts!r}": (
            "config_sentence_transformers.json",
            lambda c, prompts=prompts: {**c, "prompts": prompts},
            r"'prompts' must be an object of prompt texts by name",
        )
        for prompts in (["a"], {"query": 1}, "query: ")
    },
    "default prompt name a number": (
        "config_sentence_transformers.json",
        lambda c: {**c, "default_prompt_name": 3},
        r"'default_prompt_name' must be str or null, got int 3",
    ),
    **{
        f"truncate_dim {value!r}": (
            "config_sentence_transformers.json",
            lambda c, value=value: {**c, "truncate_dim": value},
            rf"'truncate_dim' must be a positive integer, got \w+ {re.escape(repr(value))}",
        )
        for value in (0, -4, "12", True, 2.5)
    },
}


@pytest.mark.parametrize(("relative", "change", "message"), MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_file_is_named_with_its_key(folder, relative, change, message):
    edit(folder / relative, change)
    with pytest.raises(ValueError) as error:
        SentenceTransformer(folder)
    assert str(folder / relative) in str(error.value)
    assert re.search(message, str(error.value)), str(error.value)


def test_max_seq_length_setter_names_the_value_and_the_limit(base):
    model = SentenceTransformer(base[0])
    for value in (0, -1, 12.0, True, "12", None):
        with pytest.raises(
            ValueError, match=rf"from 2 to the model's 50 positions, got \w+ {re.escape(repr(value))}"
        ):
            model.max_seq_length = value
    with pytest.raises(ValueError, match="max_seq_length 51 exceeds the model's 50 positions"):
        model.max_seq_length = 51
    model.max_seq_length = BERT_POSITIONS
    assert model.max_seq_length == BERT_POSITIONS


def test_roberta_limit_is_its_usable_positions(tmp_path):
    """RoBERTa's positions start after the padding index: 50 position embeddings hold 49 tokens."""
    folder = save_tiny_encoder(tmp_path / "roberta", "roberta")
    plain = SentenceTransformer(folder)  # a Hugging Face folder: the tokenizer's 512 is capped
    assert plain.max_seq_length == ROBERTA_POSITIONS
    assert plain.encode("word " * 100).shape == (32,)
    with pytest.raises(ValueError, match="max_seq_length 50 exceeds the model's 49 positions"):
        plain.max_seq_length = 50
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 50}))
    with pytest.raises(
        ValueError, match=r"sentence_bert_config\.json: max_seq_length 50 exceeds .* 49 positions"
    ):
        SentenceTransformer(folder)


def test_a_tokenizer_without_its_vocabulary_is_refused(base, folder):
    (folder / "tokenizer.json").unlink()
    with pytest.raises(
        FileNotFoundError,
        match=r"no vocabulary for its BertTokenizer: it needs tokenizer\.json or vocab\.txt",
    ):
        SentenceTransformer(folder)
    shutil.copy(MINILM / "vocab.txt", folder / "vocab.txt")  # what a BertTokenizer also builds from
    np.testing.assert_allclose(SentenceTransformer(folder).encode(TEXTS), base[1], atol=ATOL, rtol=0)


def test_a_module_folder_linked_from_outside_is_refused(folder, tmp_path):
    (tmp_path / "outside").mkdir()
    shutil.move(folder / "1_Pooling", tmp_path / "outside" / "1_Pooling")
    (folder / "1_Pooling").symlink_to(tmp_path / "outside" / "1_Pooling")
    with pytest.raises(
        ValueError,
        match=r"modules\.json: entry 1 has path '1_Pooling' resolves to .*outside the model folder",
    ):
        SentenceTransformer(folder)


@pytest.mark.parametrize("where", ["link", "parent"])
def test_a_tokenizer_file_outside_the_folder_is_refused(folder, tmp_path, where):
    (tmp_path / "outside").mkdir()
    shutil.move(folder / "tokenizer.json", tmp_path / "outside" / "tokenizer.json")
    (folder / "linked.json").symlink_to(tmp_path / "outside" / "tokenizer.json")
    path = "linked.json" if where == "link" else "../outside/tokenizer.json"
    edit(folder / "sentence_bert_config.json", lambda c: {**c, "tokenizer_args": {"tokenizer_file": path}})
    with pytest.raises(
        ValueError, match=rf"tokenizer argument 'tokenizer_file' = '{re.escape(path)}' resolves to .*outside"
    ):
        SentenceTransformer(folder)


def test_a_tokenizer_file_path_is_read_relative_to_the_folder(base, folder):
    (folder / "tokenizer").mkdir()
    shutil.move(folder / "tokenizer.json", folder / "tokenizer" / "renamed.json")
    edit(
        folder / "sentence_bert_config.json",
        lambda c: {**c, "tokenizer_args": {"tokenizer_file": "tokenizer/renamed.json"}},
    )
    np.testing.assert_allclose(SentenceTransformer(folder).encode(TEXTS), base[1], atol=ATOL, rtol=0)


@pytest.fixture(scope="module")
def model(base):
    return SentenceTransformer(base[0])


@pytest.mark.parametrize("value", [0, -2, True, 2.5, "8"])
def test_truncate_dim_must_be_a_positive_integer(base, model, value):
    message = rf"'truncate_dim' must be a positive integer, got \w+ {re.escape(repr(value))}"
    with pytest.raises(ValueError, match=message):
        SentenceTransformer(base[0], truncate_dim=value)
    with pytest.raises(ValueError, match=message):
        model.encode(TEXTS[:2], truncate_dim=value)
    with pytest.raises(ValueError, match=message):
        model.truncate_dim = value
    assert model.encode(TEXTS[:2], truncate_dim=3).shape == (2, 3)
