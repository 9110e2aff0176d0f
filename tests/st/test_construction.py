"""Building a model from modules, as sentence-transformers code does, against sentence-transformers itself.

`SentenceTransformer(modules=[models.Transformer(plain Hugging Face folder), models.Pooling, models.Dense,
models.Normalize])` must encode as sentence-transformers' same construction, print as it does, save a
folder PyTorch sentence-transformers loads, and train with fit (here from a torch DataLoader over a
SentencesDataset, as the seed tutorial writes it).
"""

from __future__ import annotations

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from sentence_transformers import SentenceTransformer as TorchSentenceTransformer
from sentence_transformers.sentence_transformer import modules as torch_modules

from jaxst import InputExample, SentencesDataset, SentenceTransformer, losses, models
from tests.shared_data import stsb
from tests.st.tiny_st import HIDDEN, MAX_TOKENS, MINILM, TEXTS, save_tiny_encoder

DENSE_OUT = 16


@pytest.fixture(scope="module")
def encoder_folder(tmp_path_factory):
    """A plain Hugging Face BERT folder (no sentence-transformers files) with a cased tokenizer."""
    return save_tiny_encoder(tmp_path_factory.mktemp("plain") / "bert", cased_tokenizer=True)


def build(module_classes, folder):
    """Transformer (lower-cased, max_seq_length) + cls-and-mean Pooling + Tanh Dense + Normalize."""
    return [
        module_classes.Transformer(str(folder), max_seq_length=MAX_TOKENS, do_lower_case=True),
        module_classes.Pooling(HIDDEN, pooling_mode=("cls", "mean")),
        module_classes.Dense(2 * HIDDEN, DENSE_OUT, activation_function=torch.nn.Tanh()),
        module_classes.Normalize(),
    ]


@pytest.fixture(scope="module")
def models_pair(encoder_folder):
    """(jaxst's, sentence-transformers') construction; jaxst's Dense takes the torch Dense's weights,
    which each library draws at random."""
    torch.manual_seed(0)
    theirs = TorchSentenceTransformer(modules=build(torch_modules, encoder_folder), device="cpu")
    ours = SentenceTransformer(modules=build(models, encoder_folder))
    linear = theirs[2].linear
    params = ours.params
    params["modules"]["2"] = {
        "linear": {
            "weight": jnp.asarray(linear.weight.detach().numpy()),
            "bias": jnp.asarray(linear.bias.detach().numpy()),
        }
    }
    ours.set_params(params)
    return ours, theirs


def test_construction_encodes_and_prints_as_sentence_transformers(models_pair):
    ours, theirs = models_pair
    np.testing.assert_allclose(ours.encode(TEXTS), theirs.encode(TEXTS), atol=1e-5, rtol=1e-5)
    assert repr(ours) == repr(theirs)
    assert str(ours) == str(theirs)


def test_saved_construction_loads_in_sentence_transformers(models_pair, tmp_path):
    ours, _ = models_pair
    ours.save_pretrained(str(tmp_path / "saved"))
    loaded = TorchSentenceTransformer(str(tmp_path / "saved"), device="cpu")
    np.testing.assert_allclose(loaded.encode(TEXTS), ours.encode(TEXTS), atol=1e-5, rtol=1e-5)
    assert repr(loaded) == repr(ours) == repr(SentenceTransformer(str(tmp_path / "saved")))


def test_modules_are_indexed_counted_and_iterated_as_sentence_transformers(models_pair):
    ours, theirs = models_pair
    assert len(ours) == len(theirs) == 4
    assert [type(m).__name__ for m in ours] == [type(m).__name__ for m in theirs]
    assert ours[0].get_max_seq_length() == ours.get_max_seq_length() == theirs.get_max_seq_length()
    assert ours[1].get_embedding_dimension() == theirs[1].get_embedding_dimension() == 2 * HIDDEN
    assert ours[0].get_word_embedding_dimension() == HIDDEN
    assert ours.device in jax.devices()
    their_keys = set(theirs.tokenize(["Hello there"])) - {"modality"}  # a string, not an array
    assert set(ours.tokenize(["Hello there"])) == their_keys


@pytest.mark.parametrize(
    "arguments",
    [
        {},
        {"max_seq_length": 20},
        {"tokenizer_args": {"model_max_length": 24}},
        {"processor_kwargs": {"model_max_length": 24}, "do_lower_case": True},
        {"tokenizer_name_or_path": str(MINILM)},
        {"cache_dir": "unused", "model_args": {"local_files_only": True}, "config_kwargs": {"token": None}},
    ],
    ids=["defaults", "max_seq_length", "tokenizer_args", "processor_kwargs", "tokenizer_path", "hub_options"],
)
def test_transformer_arguments_act_as_in_sentence_transformers(encoder_folder, arguments):
    ours = models.Transformer(str(encoder_folder), **arguments)
    theirs = torch_modules.Transformer(str(encoder_folder), **arguments)
    assert ours.max_seq_length == theirs.max_seq_length
    texts = TEXTS[-3:]
    assert ours.tokenizer(texts)["input_ids"] == theirs.tokenizer(texts)["input_ids"]


def test_pooling_takes_sentence_transformers_former_arguments():
    legacy = models.Pooling(
        word_embedding_dimension=HIDDEN, pooling_mode_cls_token=True, pooling_mode_max_tokens=True
    )
    with pytest.warns(FutureWarning):
        theirs = torch_modules.Pooling(HIDDEN, pooling_mode_cls_token=True, pooling_mode_max_tokens=True)
    assert repr(legacy) == repr(theirs)
    assert repr(models.Pooling(HIDDEN)) == repr(torch_modules.Pooling(HIDDEN))
    with pytest.raises(ValueError, match="Unknown Pooling argument\\(s\\) \\['pooling_mode_bogus'\\]"):
        models.Pooling(HIDDEN, pooling_mode_bogus=True)


@pytest.mark.parametrize(
    "first_import",
    ["from jaxst import models", "import jaxst.modules"],
)
def test_models_offers_the_module_classes_whatever_is_imported_first(first_import):
    """jaxst.modules builds on jaxst.models, which names the module classes lazily: no import cycle."""
    code = (
        f"{first_import}\n"
        "from jaxst import models, modules\n"
        "for name in ('Transformer', 'Pooling', 'Dense', 'Normalize'):\n"
        "    assert getattr(models, name) is getattr(modules, name), name\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bad_constructions_are_named(encoder_folder):
    transformer = models.Transformer(str(encoder_folder))
    with pytest.raises(TypeError, match="modules\\[1\\] is a str"):
        SentenceTransformer(modules=[transformer, "mean"])
    with pytest.raises(TypeError, match="modules\\[0\\] must be a jaxst.models.Transformer"):
        SentenceTransformer(modules=[models.Pooling(HIDDEN)])
    with pytest.raises(ValueError, match="a model name or path, or modules"):
        SentenceTransformer(str(encoder_folder), modules=[transformer])
    with pytest.raises(ValueError, match="dtype bfloat16 differs from the Transformer module's float32"):
        SentenceTransformer(dtype=jnp.bfloat16, modules=[transformer])
    with pytest.raises(ValueError, match="model_kwargs \\['attn_implementation'\\] are not supported"):
        models.Transformer(str(encoder_folder), model_args={"attn_implementation": "sdpa"})
    with pytest.raises(ValueError, match="processor_kwargs: trust_remote_code=True is not supported"):
        models.Transformer(str(encoder_folder), tokenizer_args={"trust_remote_code": True})
    with pytest.raises(ValueError, match="max_seq_length 4096 exceeds the model's 50 positions"):
        models.Transformer(str(encoder_folder), max_seq_length=4096)


def test_fit_trains_a_constructed_model_from_a_torch_data_loader(encoder_folder):
    rows = stsb("train")[:8]
    examples = [
        InputExample(texts=[r["sentence1"], r["sentence2"]], label=float(r["score"]) / 5) for r in rows
    ]
    model = SentenceTransformer(modules=build(models, encoder_folder))
    loader = torch.utils.data.DataLoader(SentencesDataset(examples, model), shuffle=True, batch_size=4)
    before = jax.tree.map(np.asarray, model.params)
    result = model.fit(
        train_objectives=[(loader, losses.CosineSimilarityLoss(model))],
        epochs=1,
        warmup_steps=1,
        show_progress_bar=False,
    )
    assert result["global_step"] == 2
    changed = jax.tree.map(lambda a, b: not np.array_equal(a, np.asarray(b)), before, model.params)
    assert all(jax.tree.leaves(changed["modules"])) and any(jax.tree.leaves(changed["encoder"]))
    # model[0]'s encoder holds the trained parameters
    for module_leaf, param_leaf in zip(
        jax.tree.leaves(nnx.state(model[0].auto_model)), jax.tree.leaves(model.params["encoder"]), strict=True
    ):
        assert module_leaf is param_leaf
