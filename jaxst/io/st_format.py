"""The sentence-transformers folder format: `modules.json` and `config_sentence_transformers.json`.

A sentence-transformers folder lists its pipeline in `modules.json`, one entry per module:
`{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.base.modules.transformer.Transformer"}`.
jaxst reads the types any sentence-transformers version wrote (`sentence_transformers.models.Pooling`,
`sentence_transformers.sentence_transformer.modules.pooling.Pooling`, ...) by their class name, and
writes the paths sentence-transformers 6 writes. Model-level settings (prompts, default prompt, similarity
function, truncation dimension) live in `config_sentence_transformers.json`.

Every JSON file of a model folder is read through `read_json` / `read_json_object`, so that a file that
is not JSON, or holds the wrong kind of value, is an error naming the file; `check_type` and
`check_positive_int` check single values and name their key.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib.metadata
import json
from pathlib import Path, PurePosixPath
from typing import Any

import jax
import transformers

MODULE_KINDS = ("Transformer", "Pooling", "Dense", "Normalize")
SIMILARITY_FN_NAMES = ("cosine", "dot", "euclidean", "manhattan")
# The files at a model folder's root that belong to the model (fnmatch patterns): the sentence-transformers
# and transformers configs, the tokenizer files, and the weights with their shards and indexes.
MODEL_ROOT_FILES = (
    "modules.json",
    "config_sentence_transformers.json",
    "sentence_*_config.json",
    "config.json",
    "adapter_config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "sentencepiece.bpe.model",
    "spiece.model",
    "tokenizer.model",
    "chat_template.jinja",
    "*.safetensors",
    "*.safetensors.index.json",
    "pytorch_model*.bin",
    "pytorch_model*.bin.index.json",
    "tf_model*.h5",
    "flax_model*.msgpack",
)


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


def read_json(path: Path) -> Any:
    """The parsed content of the JSON file `path`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: naming the file, when it is not UTF-8 JSON.
    """
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object (a dict) in `path`; ValueError naming the file when it holds anything else."""
    raw = read_json(path)
    if not isinstance(raw, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(raw).__name__} {raw!r:.80}.")
    return raw


def check_type(key: str, value: Any, *types: type) -> Any:
    """Returns `value` when it is an instance of one of `types` (a bool counts as an int only when bool is
    among them); otherwise raises ValueError naming `key`, the types and the value."""
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        names = " or ".join("null" if kind is type(None) else kind.__name__ for kind in types)
        raise ValueError(f"{key!r} must be {names}, got {type(value).__name__} {value!r:.80}.")
    return value


def check_positive_int(key: str, value: Any) -> int:
    """Returns `value` when it is an int >= 1 (not a bool, not a float); ValueError naming `key` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{key!r} must be a positive integer, got {type(value).__name__} {value!r:.80}.")
    return value


def check_truncate_dim(value: Any) -> int | None:
    """`value` when it is None or a positive int: the number of embedding dimensions kept."""
    return None if value is None else check_positive_int("truncate_dim", value)


def path_inside(folder: str | Path, relative: str | Path, what: str) -> Path:
    """The resolved path of `relative` under `folder`, symbolic links followed.

    Raises:
        ValueError: naming `what`, when the path resolves outside the (resolved) folder, as `../x`, an
            absolute path or a link to elsewhere do.
    """
    root = Path(folder).resolve()
    target = (root / relative).resolve()
    if not target.is_relative_to(root):
        raise ValueError(f"{what} {str(relative)!r} resolves to {target}, outside the model folder {root}.")
    return target


def module_kind(type_ref: str) -> str | None:
    """The jaxst module kind of a `modules.json` type, or None when jaxst does not implement it."""
    package, _, class_name = type_ref.rpartition(".")
    if package.split(".")[0] == "sentence_transformers" and class_name in MODULE_KINDS:
        return class_name
    return None


def read_modules_json(folder: str | Path) -> list[ModuleEntry] | None:
    """The pipeline listed in `folder/modules.json`, or None when the folder has none.

    Raises:
        ValueError: naming the file and the entry, for a file that is not a JSON list of objects with
            string `type` and `path`, a module type jaxst does not implement, a path that resolves outside
            the folder (symbolic links followed), or two entries with the same path.
    """
    path = Path(folder) / "modules.json"
    if not path.is_file():
        return None
    raw = read_json(path)
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{path} must hold a non-empty list of modules.")
    entries: list[ModuleEntry] = []
    positions_by_folder: dict[Path, int] = {}
    for position, item in enumerate(raw):
        if not isinstance(item, dict) or "type" not in item or "path" not in item:
            raise ValueError(f"{path}: entry {position} needs 'type' and 'path' keys, got {item!r}.")
        try:
            type_ref = check_type("type", item["type"], str)
            module_path = check_type("path", item["path"], str)
            name = check_type("name", item.get("name", str(position)), str, int)
        except ValueError as error:
            raise ValueError(f"{path}: entry {position}: {error}") from error
        kind = module_kind(type_ref)
        if kind is None:
            raise ValueError(
                f"{path}: entry {position} has module type {type_ref!r}, which jaxst does not implement "
                f"(it supports the sentence-transformers modules {', '.join(MODULE_KINDS)})."
            )
        relative = PurePosixPath(module_path.replace("\\", "/"))
        module_folder = path_inside(folder, relative, f"{path}: entry {position} has path")
        if module_folder in positions_by_folder:
            raise ValueError(
                f"{path}: entries {positions_by_folder[module_folder]} and {position} both have the "
                f"module folder {module_path!r}."
            )
        positions_by_folder[module_folder] = position
        entries.append(ModuleEntry(name=str(name), path=str(relative), kind=kind))
    return entries


def model_entries(folder: str | Path) -> set[str]:
    """The names of the entries of `folder` that belong to the model saved there (none for no folder).

    They are the root files matching MODEL_ROOT_FILES and the top folder of every module path that the
    folder's `modules.json` lists (e.g. `1_Pooling`, `2_Dense`). Everything else (training logs, plots,
    evaluation results, a README, the user's own files) is not the model's. A `modules.json` that cannot
    be read lists nothing; a listed path that leaves the folder is ignored.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return set()
    names = {
        entry.name
        for entry in folder.iterdir()
        if entry.is_file() and any(fnmatch.fnmatchcase(entry.name, pattern) for pattern in MODEL_ROOT_FILES)
    }
    try:
        listing = read_json(folder / "modules.json")
    except (OSError, ValueError):
        listing = []
    for item in listing if isinstance(listing, list) else []:
        module_path = item.get("path") if isinstance(item, dict) else None
        parts = PurePosixPath(module_path.replace("\\", "/")).parts if isinstance(module_path, str) else ()
        if parts and parts[0] not in ("/", "..") and (folder / parts[0]).is_dir():
            names.add(parts[0])
    return names


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
        ValueError: naming the file (and the key): when it is not a JSON object, holds another kind of
            model (e.g. a CrossEncoder or SparseEncoder), or a value of the wrong type: `prompts` not an
            object of strings, `default_prompt_name` not a string, an unknown similarity function, a
            `truncate_dim` that is not a positive integer.
    """
    path = Path(folder) / "config_sentence_transformers.json"
    raw = read_json_object(path) if path.is_file() else {}
    model_type = raw.get("model_type", "SentenceTransformer")
    if model_type != "SentenceTransformer":
        raise ValueError(f"{path}: model_type {model_type!r} is not a SentenceTransformer model.")
    prompts = raw.get("prompts") or {}
    if not isinstance(prompts, dict) or not all(isinstance(text, str) for text in prompts.values()):
        raise ValueError(f"{path}: 'prompts' must be an object of prompt texts by name, got {prompts!r:.80}.")
    similarity = raw.get("similarity_fn_name")
    if similarity is not None and similarity not in SIMILARITY_FN_NAMES:
        raise ValueError(f"{path}: similarity_fn_name {similarity!r} is not one of {SIMILARITY_FN_NAMES}.")
    try:
        return ModelConfig(
            prompts=prompts,
            default_prompt_name=check_type(
                "default_prompt_name", raw.get("default_prompt_name"), str, type(None)
            ),
            similarity_fn_name=similarity,
            truncate_dim=check_truncate_dim(raw.get("truncate_dim")),
        )
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error


def write_model_config(folder: str | Path, config: ModelConfig) -> None:
    """Writes `config_sentence_transformers.json` as sentence-transformers does (sorted keys, indent 2)."""
    raw: dict[str, Any] = {
        "__version__": {
            "jaxst": importlib.metadata.version("jaxst"),
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
