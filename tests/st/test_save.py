"""save replaces the model folder in one step: a failed save leaves the earlier model whole, a successful one
leaves none of the earlier model's files but keeps everything else in the folder (README.md too, when no
model card is written)."""

import os
import shutil

import jax
import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer as TorchSentenceTransformer

from jaxst.io import atomic_folder
from jaxst.io.st_format import model_entries
from jaxst.modules import Pooling
from jaxst.sentence_transformer import SentenceTransformer
from tests.st.tiny_st import TEXTS, build_torch_model, save_tiny_encoder

ATOL = 1e-5
# Files a training run and its user leave next to the model: none of them is the model's.
NOT_THE_MODEL = {
    "metrics.jsonl": '{"step": 1, "loss": 0.5}\n',
    "training.png": "not really a png",
    "eval/similarity_evaluation_results.csv": "epoch,steps,cosine_spearman\n0,10,0.8\n",
    "notes/my notes.txt": "keep me",
    "README.md": "# my model",
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A Transformer + Pooling + Dense + Normalize model saved by sentence-transformers, and a plain
    Transformer + Pooling one (no Dense)."""
    root = tmp_path_factory.mktemp("save")
    encoder = save_tiny_encoder(root / "encoder")
    build_torch_model(encoder, root / "dense", dense=((8, torch.nn.Tanh()),), normalize=True)
    build_torch_model(encoder, root / "plain")
    return root / "dense", root / "plain"


def snapshot(folder):
    """Every file under `folder` (relative path -> bytes); links as ("link", target)."""
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            files[str(path.relative_to(folder))] = ("link", os.readlink(path))
        elif path.is_file():
            files[str(path.relative_to(folder))] = path.read_bytes()
    return files


def leftovers(folder):
    """Hidden temporary or old folders next to `folder`."""
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}."))


def add_files(folder, files):
    for relative, text in files.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(text)


@pytest.mark.parametrize("failing_step", ["module save", "exchange"])
def test_a_failed_save_leaves_the_earlier_model_whole(folders, tmp_path, monkeypatch, failing_step):
    dense, _ = folders
    output = tmp_path / "output"
    shutil.copytree(dense, output)
    add_files(output, NOT_THE_MODEL)
    before = snapshot(output)
    expected = SentenceTransformer(output).encode(TEXTS)

    model = SentenceTransformer(dense)
    model.set_params(jax.tree.map(lambda p: p * 1.1, model.params))  # different weights, saved first
    if failing_step == "module save":

        def broken_save(self, folder, params=None):
            (folder / "config.json").write_text('{"embedding_dimension": ')  # half written
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(Pooling, "save", broken_save)
    else:

        def broken_exchange(first, second):
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(atomic_folder, "exchange", broken_exchange)
    with pytest.raises(OSError):
        model.save(output)

    assert snapshot(output) == before
    assert leftovers(output) == []
    np.testing.assert_array_equal(SentenceTransformer(output).encode(TEXTS), expected)


def test_a_save_drops_the_earlier_models_files_and_keeps_the_others(folders, tmp_path):
    dense, plain = folders
    output = tmp_path / "output"
    shutil.copytree(dense, output)
    add_files(output, NOT_THE_MODEL)
    # Weights of other formats and shards of a sharded checkpoint, all of the earlier model.
    stale = ["pytorch_model.bin", "model-00001-of-00002.safetensors", "model.safetensors.index.json"]
    add_files(output, {name: "stale" for name in stale})
    os.symlink("metrics.jsonl", output / "latest-metrics")
    os.chmod(output, 0o750)
    assert {"2_Dense", "3_Normalize", *stale} <= model_entries(output)
    assert model_entries(output).isdisjoint({"metrics.jsonl", "eval", "notes", "README.md", "training.png"})
    appending = (output / "metrics.jsonl").open("a")  # fit appends to its log between saves

    ours = SentenceTransformer(plain)
    ours.save(output, create_model_card=False)  # with a card, README.md is replaced (test_model_card.py)
    appending.write('{"step": 2}\n')
    appending.close()

    names = {path.name for path in output.iterdir()}
    assert names.isdisjoint({"2_Dense", "3_Normalize", *stale})
    assert {"1_Pooling", "model.safetensors", "modules.json", "latest-metrics"} <= names
    saved = snapshot(output)
    for relative, text in NOT_THE_MODEL.items():
        expected = text + '{"step": 2}\n' if relative == "metrics.jsonl" else text
        assert saved[relative] == expected.encode(), relative
    assert saved["latest-metrics"] == ("link", "metrics.jsonl")
    assert oct(output.stat().st_mode & 0o777) == oct(0o750)
    assert leftovers(output) == []
    reloaded = TorchSentenceTransformer(str(output), device="cpu")
    assert len(reloaded) == 2
    np.testing.assert_allclose(reloaded.encode(TEXTS), ours.encode(TEXTS), atol=ATOL, rtol=0)


def test_save_without_an_atomic_exchange_renames_twice(folders, tmp_path, monkeypatch):
    dense, plain = folders
    output = tmp_path / "output"
    shutil.copytree(dense, output)
    add_files(output, NOT_THE_MODEL)
    monkeypatch.setattr(atomic_folder, "exchange", lambda first, second: False)
    ours = SentenceTransformer(plain)
    ours.save(output)
    assert not (output / "2_Dense").exists()
    assert (output / "metrics.jsonl").read_text() == NOT_THE_MODEL["metrics.jsonl"]
    assert leftovers(output) == []
    np.testing.assert_array_equal(SentenceTransformer(output).encode(TEXTS), ours.encode(TEXTS))


def test_exchange_swaps_two_folders(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "from_a").write_text("a")
    (tmp_path / "b" / "from_b").write_text("b")
    if not atomic_folder.exchange(tmp_path / "a", tmp_path / "b"):
        pytest.skip("this system has no renameat2(RENAME_EXCHANGE)")
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["from_b"]
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["from_a"]


def test_save_into_a_new_folder_and_through_a_link(folders, tmp_path):
    _, plain = folders
    ours = SentenceTransformer(plain)
    ours.save(tmp_path / "new" / "model")
    (tmp_path / "link").symlink_to(tmp_path / "new" / "model")
    ours.save(tmp_path / "link")
    assert (tmp_path / "link").is_symlink()
    assert leftovers(tmp_path / "new" / "model") == []
    np.testing.assert_array_equal(SentenceTransformer(tmp_path / "link").encode(TEXTS), ours.encode(TEXTS))


def test_save_path_errors(folders, tmp_path, monkeypatch):
    _, plain = folders
    ours = SentenceTransformer(plain)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="folder path is empty"):
        ours.save("")
    with pytest.raises(ValueError, match="holds the current working directory"):
        ours.save(".")
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(NotADirectoryError, match="a_file exists and is not a folder"):
        ours.save(tmp_path / "a_file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]
