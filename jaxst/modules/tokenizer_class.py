"""Loading a folder's tokenizer by its class, without AutoTokenizer where that gives the same tokenizer.

`AutoTokenizer.from_pretrained` reads the folder through AutoConfig, whose configuration module imports
torch when it is installed (1.7-1.9 s of a fresh process); the tokenizer classes themselves do not.

What transformers 5's AutoTokenizer does with a local folder whose tokenizer_config.json names a
`tokenizer_class` X and has no `auto_map`, given none of the kwargs that choose the class otherwise
(`tokenizer_type`, `gguf_file`, ...): it ignores `use_fast`; when X (less a v4 "Fast" suffix) is the
tokenizer registered for config.json's model_type (`TOKENIZER_MAPPING_NAMES`), it loads the class that
name resolves to; when it is another, it loads the class X resolves to, unless the model type (or
config.json's `model_name`) is one whose hub classes transformers overrides
(`MODELS_WITH_INCORRECT_HUB_TOKENIZER_CLASS`) or X resolves to a generic backend. For the BERT-era
model types and tokenizer classes below, none of those exceptions applies and X resolves to the class
`transformers.X`, so jaxst loads that with the same kwargs (tests check every pair against
AutoTokenizer). Everything else goes through AutoTokenizer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerBase

from jaxst.io.st_format import read_json_object

# config.json model types and tokenizer_config.json classes (a "Fast" suffix aside) loaded directly.
DIRECT_MODEL_TYPES = frozenset({"bert", "distilbert", "mpnet", "roberta", "xlm-roberta"})
DIRECT_TOKENIZER_CLASSES = frozenset(
    {"BertTokenizer", "DistilBertTokenizer", "MPNetTokenizer", "RobertaTokenizer", "XLMRobertaTokenizer"}
)
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
    if (
        "auto_map" in tokenizer_config
        or "auto_map" in config
        or "model_name" in config
        or config.get("model_type") not in DIRECT_MODEL_TYPES
        or not isinstance(name, str)
        or name.removesuffix("Fast") not in DIRECT_TOKENIZER_CLASSES
    ):
        return None
    import transformers

    return getattr(transformers, name)


def read_object(path: Path) -> dict[str, Any]:
    """The JSON object in `path` (`st_format.read_json_object`); empty when the file is missing or holds
    something else (AutoTokenizer then decides, and reports what is wrong)."""
    try:
        return read_json_object(path)
    except (OSError, ValueError):
        return {}
