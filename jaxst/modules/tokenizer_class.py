"""Loading a folder's tokenizer by its class, without AutoTokenizer where that gives the same tokenizer.

`AutoTokenizer.from_pretrained` reads the folder through AutoConfig, whose configuration module imports
torch when it is installed (1.7-1.9 s of a fresh process); the tokenizer classes themselves do not.
transformers 5's AutoTokenizer, for a local folder whose tokenizer_config.json names a
`tokenizer_class` and has no `auto_map`, ignores `use_fast`, and loads the class that name (less a v4
"Fast" suffix) resolves to, with the caller's kwargs, when that name is the tokenizer registered for the
config's model_type (`TOKENIZER_MAPPING_NAMES`). When the names differ it may choose another class
(`TokenizersBackend` for some model types), and remote code, a gguf file or an explicit
`tokenizer_type` take other paths: all of those keep going through AutoTokenizer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerBase

# transformers' TOKENIZER_MAPPING_NAMES entries of the model types whose tokenizer class jaxst loads
# directly (tests check them against transformers).
REGISTERED_TOKENIZERS = {
    "bert": "BertTokenizer",
    "distilbert": "BertTokenizer",
    "mpnet": "MPNetTokenizer",
    "roberta": "RobertaTokenizer",
    "xlm-roberta": "XLMRobertaTokenizer",
}
# AutoTokenizer kwargs that change which class it picks.
CLASS_CHOOSING_KWARGS = frozenset(
    {"config", "tokenizer_type", "trust_remote_code", "code_revision", "gguf_file", "mistral_format"}
)


def load_tokenizer(folder: Path, kwargs: dict[str, Any]) -> PreTrainedTokenizerBase:
    """The tokenizer `AutoTokenizer.from_pretrained(str(folder), **kwargs)` gives, through its class
    directly where `direct_tokenizer_class` names one."""
    tokenizer_class = direct_tokenizer_class(folder, kwargs)
    if tokenizer_class is None:
        from transformers import AutoTokenizer  # imports torch when it is installed

        return AutoTokenizer.from_pretrained(str(folder), **kwargs)
    class_kwargs = {key: value for key, value in kwargs.items() if key != "use_fast"}
    return tokenizer_class.from_pretrained(str(folder), **class_kwargs)


def direct_tokenizer_class(folder: Path, kwargs: dict[str, Any]) -> type[PreTrainedTokenizerBase] | None:
    """The class AutoTokenizer would load from `folder` with `kwargs`, when it is plainly the one
    tokenizer_config.json names (see the module docstring); None when AutoTokenizer must decide."""
    if CLASS_CHOOSING_KWARGS & kwargs.keys():
        return None
    tokenizer_config = read_object(folder / "tokenizer_config.json")
    config = read_object(folder / "config.json")
    name = tokenizer_config.get("tokenizer_class")
    if "auto_map" in tokenizer_config or "auto_map" in config or not isinstance(name, str):
        return None
    if REGISTERED_TOKENIZERS.get(config.get("model_type")) != name.removesuffix("Fast"):
        return None
    import transformers

    tokenizer_class = getattr(transformers, name, None)
    return tokenizer_class if isinstance(tokenizer_class, type) else None


def read_object(path: Path) -> dict[str, Any]:
    """The JSON object in `path`; empty when the file is missing or holds something else (AutoTokenizer
    then decides, and reports what is wrong)."""
    try:
        options = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return options if isinstance(options, dict) else {}
