"""Saving and loading both ways between jaxst and PyTorch sentence-transformers."""

import json
import math

import jax
import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer as TorchSentenceTransformer

from jaxst.sentence_transformer import SentenceTransformer
from tests.st.tiny_st import TEXTS, build_torch_model, save_tiny_encoder

ATOL = 1e-5


@pytest.fixture(scope="module")
def full_model(tmp_path_factory):
    """A PyTorch-saved model with every saved setting: Dense, Normalize, prompts, similarity, truncate_dim."""
    folder = tmp_path_factory.mktemp("full")
    theirs = build_torch_model(
        save_tiny_encoder(folder / "encoder"),
        folder / "model",
        pooling_mode=("mean", "cls"),
        include_prompt=False,
        dense=((20, torch.nn.Tanh()),),
        normalize=True,
        prompts={"query": "query: ", "document": ""},
        default_prompt_name="query",
        similarity_fn_name="dot",
        truncate_dim=12,
    )
    return folder / "model", theirs


def read_json(path):
    return json.loads(path.read_text())


def test_pytorch_saved_model_round_trips_through_jaxst(full_model, tmp_path):
    folder, theirs = full_model
    ours = SentenceTransformer(folder)
    expected = theirs.encode(TEXTS)
    np.testing.assert_allclose(ours.encode(TEXTS), expected, atol=ATOL, rtol=0)

    ours.save(tmp_path / "saved")
    reloaded = TorchSentenceTransformer(str(tmp_path / "saved"), device="cpu")
    np.testing.assert_allclose(reloaded.encode(TEXTS), expected, atol=ATOL, rtol=0)
    assert reloaded.prompts == theirs.prompts
    assert reloaded.default_prompt_name == "query"
    assert reloaded.similarity_fn_name == "dot"
    assert reloaded.truncate_dim == 12
    assert reloaded.max_seq_length == theirs.max_seq_length

    # The files say what sentence-transformers' own save says.
    theirs.save(str(tmp_path / "torch_saved"))
    for name in (
        "modules.json",
        "sentence_bert_config.json",
        "1_Pooling/config.json",
        "2_Dense/config.json",
        "3_Normalize/config.json",
    ):
        assert read_json(tmp_path / "saved" / name) == read_json(tmp_path / "torch_saved" / name), name
    ours_config = read_json(tmp_path / "saved" / "config_sentence_transformers.json")
    their_config = read_json(tmp_path / "torch_saved" / "config_sentence_transformers.json")
    assert {k: v for k, v in ours_config.items() if k != "__version__"} == {
        k: v for k, v in their_config.items() if k != "__version__"
    }

    again = SentenceTransformer(tmp_path / "saved")
    np.testing.assert_array_equal(again.encode(TEXTS), ours.encode(TEXTS))


def test_trained_parameters_are_saved(full_model, tmp_path):
    folder, _ = full_model
    ours = SentenceTransformer(folder)
    before = ours.encode(TEXTS[:8])
    ours.set_params(jax.tree.map(lambda p: p * 1.1, ours.params))
    after = ours.encode(TEXTS[:8])
    assert np.abs(after - before).max() > 1e-3
    ours.save(tmp_path / "trained")
    reloaded = TorchSentenceTransformer(str(tmp_path / "trained"), device="cpu")
    np.testing.assert_allclose(reloaded.encode(TEXTS[:8]), after, atol=ATOL, rtol=0)


def test_legacy_folder_format(tmp_path):
    """Old sentence-transformers names: models.* types, pooling booleans, max_seq_length and do_lower_case
    in sentence_bert_config.json, no Normalize folder; here with a cased tokenizer, so lower-casing shows."""
    folder = save_tiny_encoder(tmp_path / "legacy", cased_tokenizer=True)
    (folder / "modules.json").write_text(
        json.dumps(
            [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                {
                    "idx": 2,
                    "name": "2",
                    "path": "2_Normalize",
                    "type": "sentence_transformers.models.Normalize",
                },
            ]
        )
    )
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": 20, "do_lower_case": True})
    )
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {
                "word_embedding_dimension": 32,
                "pooling_mode_cls_token": True,
                "pooling_mode_mean_tokens": True,
                "pooling_mode_max_tokens": False,
                "pooling_mode_mean_sqrt_len_tokens": False,
            }
        )
    )
    theirs = TorchSentenceTransformer(str(folder), device="cpu")
    ours = SentenceTransformer(folder)
    assert ours.max_seq_length == theirs.max_seq_length == 20
    np.testing.assert_allclose(ours.encode(TEXTS), theirs.encode(TEXTS), atol=ATOL, rtol=0)
    np.testing.assert_allclose(ours.encode("HELLO World"), ours.encode("hello world"), atol=ATOL, rtol=0)

    ours.save(tmp_path / "resaved")
    reloaded = TorchSentenceTransformer(str(tmp_path / "resaved"), device="cpu")
    assert reloaded.max_seq_length == 20
    np.testing.assert_allclose(reloaded.encode(TEXTS), theirs.encode(TEXTS), atol=ATOL, rtol=0)


def test_plain_hugging_face_folder_loads_with_mean_pooling(tmp_path):
    folder = save_tiny_encoder(tmp_path / "plain")
    theirs = TorchSentenceTransformer(str(folder), device="cpu")
    ours = SentenceTransformer(folder)
    assert ours.max_seq_length == theirs.max_seq_length
    np.testing.assert_allclose(ours.encode(TEXTS), theirs.encode(TEXTS), atol=ATOL, rtol=0)
    ours.save(tmp_path / "saved")
    reloaded = TorchSentenceTransformer(str(tmp_path / "saved"), device="cpu")
    np.testing.assert_allclose(reloaded.encode(TEXTS), theirs.encode(TEXTS), atol=ATOL, rtol=0)


def test_unknown_module_type_is_named(full_model, tmp_path):
    folder = save_tiny_encoder(tmp_path / "lstm")
    (folder / "modules.json").write_text(
        json.dumps(
            [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_LSTM", "type": "sentence_transformers.models.LSTM"},
            ]
        )
    )
    with pytest.raises(ValueError, match=r"entry 1 has module type 'sentence_transformers.models.LSTM'"):
        SentenceTransformer(folder)
    with pytest.raises(FileNotFoundError, match="not a local model folder"):
        SentenceTransformer(tmp_path / "missing")


def test_empty_embedding_shapes(full_model):
    ours = SentenceTransformer(full_model[0])
    assert ours.encode([]).shape == (0, 12)
    assert ours.encode([], precision="ubinary").shape == (0, math.ceil(12 / 8))
    assert ours.encode([], output_value="token_embeddings") == []
