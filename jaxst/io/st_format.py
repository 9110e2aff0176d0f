"""The sentence-transformers folder format: `modules.json` and `config_sentence_transformers.json`.

A sentence-transformers folder lists its pipeline in `modules.json`, one entry per module:
`{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.base.modules.transformer.Transformer"}`.
jaxst reads the types any sentence-transformers version wrote (`sentence_transformers.models.Pooling`,
`sentence_transformers.sentence_transformer.modules.pooling.Pooling`, ...) by their class name, and
writes the paths sentence-transformers 6 writes. Model-level settings (prompts, default prompt, similarity
function, truncation dimension) live in `config_sentence_transformers.json`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path, PurePosixPath
from typing import Any

import jax
import transformers

import jaxst

MODULE_KINDS = ("Transformer", "Pooling", "Dense", "Normalize")
SIMILARITY_FN_NAMES = ("cosine", "dot", "euclidean", "manhattan")


@dataclasses.dataclass(frozen=True)
class ModuleEntry:
    """One `modules.json` entry: `kind` is its class name (in MODULE_KINDS), `path` relative to the model."""

    name: str
    path: str
    kind: str


@dataclasses.dataclass
class ModelConfig:
    """The model-level settings of `config_sentence_transformers.json`."""

    prompts: dict[str, str] = dataclasses.field(default_factory=dict)
    default_prompt_name: str | None = None
    similarity_fn_name: str | None = None
    truncate_dim: int | None = None


def module_kind(type_ref: str) -> str | None:
    """The jaxst module kind of a `modules.json` type, or None when jaxst does not implement it."""
    package, _, class_name = type_ref.rpartition(".")
    if package.split(".")[0] == "sentence_transformers" and class_name in MODULE_KINDS:
        return class_name
    return None


def read_modules_json(folder: str | Path) -> list[ModuleEntry] | None:
    """The pipeline listed in `folder/modules.json`, or None when the folder has none.

    Raises:
        ValueError: naming the entry, for a module type jaxst does not implement, a path outside the
            folder, or a malformed entry.
    """
    path = Path(folder) / "modules.json"
    if not path.is_file():
        return None
    raw = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{path} must hold a non-empty list of modules.")
    entries = []
    for position, item in enumerate(raw):
        if not isinstance(item, dict) or "type" not in item or "path" not in item:
            raise ValueError(f"{path}: entry {position} needs 'type' and 'path' keys, got {item!r}.")
        kind = module_kind(item["type"])
        if kind is None:
            raise ValueError(
                f"{path}: entry {position} has module type {item['type']!r}, which jaxst does not implement "
                f"(it supports the sentence-transformers modules {', '.join(MODULE_KINDS)})."
            )
        relative = PurePosixPath(item["path"].replace("\\", "/"))
        if relative.is_absolute() or ".." in relative.parts:
            raise ValueError(f"{path}: entry {position} has path {item['path']!r} outside the model folder.")
        entries.append(ModuleEntry(name=str(item.get("name", position)), path=str(relative), kind=kind))
    return entries


def write_modules_json(folder: str | Path, entries: list[tuple[ModuleEntry, str]]) -> None:
    """Writes `modules.json` from (entry, sentence-transformers type path) pairs, in pipeline order."""
    listing = [
        {"idx": idx, "name": entry.name, "path": "" if entry.path == "." else entry.path, "type": type_ref}
        for idx, (entry, type_ref) in enumerate(entries)
    ]
    with open(Path(folder) / "modules.json", "w", encoding="utf-8") as f:
        json.dump(listing, f, indent=2)


def read_model_config(folder: str | Path) -> ModelConfig:
    """Reads `config_sentence_transformers.json` (defaults when absent).

    Raises:
        ValueError: when the folder holds another kind of model (e.g. a CrossEncoder or SparseEncoder),
            or for an unknown similarity function.
    """
    path = Path(folder) / "config_sentence_transformers.json"
    raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    model_type = raw.get("model_type", "SentenceTransformer")
    if model_type != "SentenceTransformer":
        raise ValueError(f"{path}: model_type {model_type!r} is not a SentenceTransformer model.")
    similarity = raw.get("similarity_fn_name")
    if similarity is not None and similarity not in SIMILARITY_FN_NAMES:
        raise ValueError(f"{path}: similarity_fn_name {similarity!r} is not one of {SIMILARITY_FN_NAMES}.")
    return ModelConfig(
        prompts=dict(raw.get("prompts") or {}),
        default_prompt_name=raw.get("default_prompt_name"),
        similarity_fn_name=similarity,
        truncate_dim=raw.get("truncate_dim"),
    )


def write_model_config(folder: str | Path, config: ModelConfig) -> None:
    """Writes `config_sentence_transformers.json` as sentence-transformers does (sorted keys, indent 2)."""
    raw: dict[str, Any] = {
        "__version__": {
            "jaxst": jaxst.__version__,
            "jax": jax.__version__,
            "transformers": transformers.__version__,
        },
        "model_type": "SentenceTransformer",
        "prompts": config.prompts,
        "default_prompt_name": config.default_prompt_name,
        "similarity_fn_name": config.similarity_fn_name,
    }
    if config.truncate_dim is not None:
        raw["truncate_dim"] = config.truncate_dim
    with open(Path(folder) / "config_sentence_transformers.json", "w", encoding="utf-8") as f:
        json.dump(raw, f, indent=2, sort_keys=True)
