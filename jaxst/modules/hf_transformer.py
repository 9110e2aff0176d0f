"""sentence-transformers' Transformer module: a jaxst encoder and its tokenizer, from a local folder.

`Transformer("path/or/name", max_seq_length=256)` builds the module from a plain Hugging Face folder (a
BERT without sentence-transformers files, say), as `sentence_transformers.models.Transformer` does;
`SentenceTransformer(modules=[Transformer(...), Pooling(...)])` assembles a model from it. Names resolve
offline (`jaxst.io.model_names`). The encoder is a Flax NNX module (`encoder`, also `auto_model`); the
tokenizer side (sequence length, lower-casing, tokenizing) is a `TransformerTokenizer`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax.numpy as jnp

from jaxst.io.hf import CheckpointExtras
from jaxst.io.model_names import resolve_model_folder
from jaxst.io.st_format import check_type
from jaxst.lora.adapter_files import attach_saved_adapter
from jaxst.lora.config import LoraConfig
from jaxst.models.encoder import TransformerEncoder
from jaxst.models.loading import load_checkpoint
from jaxst.modules.transformer import SAVED_CONFIG, TransformerTokenizer

# Loading options of the hub that have no effect on a local folder (cache_dir is used to find the name).
LOCAL_LOADING_KEYS = frozenset({"cache_dir", "local_files_only", "token", "trust_remote_code"})
# model_kwargs that jaxst's encoder takes (`jaxst.models.load_checkpoint`): which attention runs, and
# whether the layers run under a scan.
ENCODER_OPTIONS = frozenset({"attention_implementation", "attention_dropout", "scan_layers"})
# sentence-transformers' former argument names -> its current ones.
RENAMED_ARGUMENTS = {
    "model_args": "model_kwargs",
    "tokenizer_args": "processor_kwargs",
    "config_args": "config_kwargs",
}


def check_loading_kwargs(
    name: str, kwargs: dict[str, Any] | None, any_key: bool = False, also: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """A copy of `kwargs` when it holds only LOCAL_LOADING_KEYS and `also` (any key with `any_key`),
    trust_remote_code not True.

    Raises:
        ValueError: `kwargs` is not a dict; naming the keys jaxst cannot honour (it reads the folder's
            config.json and weights as saved, and runs its own code).
    """
    kwargs = dict(check_type(name, kwargs or {}, dict))
    if not any_key and (unsupported := sorted(set(kwargs) - LOCAL_LOADING_KEYS - also)):
        raise ValueError(
            f"Transformer {name} {unsupported} are not supported: jaxst reads the folder's config.json and "
            f"weights as saved (it accepts only {sorted(LOCAL_LOADING_KEYS | also)}); "
            "edit config.json instead."
        )
    if kwargs.get("trust_remote_code"):
        raise ValueError(
            f"Transformer {name}: trust_remote_code=True is not supported; jaxst runs its own code."
        )
    return kwargs


def encoder_options(model_options: dict[str, Any]) -> dict[str, Any]:
    """The entries of checked model_kwargs that go to the encoder's loading (ENCODER_OPTIONS)."""
    return {key: value for key, value in model_options.items() if key in ENCODER_OPTIONS}


class Transformer:
    """sentence-transformers' Transformer module: encoder (token embeddings [B, T, H]) plus tokenizer.

    Args:
        model_name_or_path: a local Hugging Face or sentence-transformers folder, or a model name found
            offline (`jaxst.io.model_names.resolve_model_folder`).
        max_seq_length: texts are truncated to this many tokens (default: the tokenizer's
            `model_max_length`, capped at the encoder's positions).
        do_lower_case: lower-case texts before tokenizing.
        model_kwargs: the encoder's options (`ENCODER_OPTIONS`: which attention runs and whether the
            layers scan, see `jaxst.models.load_checkpoint`) and hub loading options
            (`LOCAL_LOADING_KEYS`; `cache_dir` is searched for the name).
        config_kwargs: hub loading options only; jaxst reads the folder's config.json and weights as saved.
        processor_kwargs: keyword arguments for the tokenizer (`AutoTokenizer.from_pretrained`).
        tokenizer_name_or_path: where the tokenizer is, when not with the model (a folder or a name).
        model_args, tokenizer_args, config_args, cache_dir: sentence-transformers' former names of
            model_kwargs, processor_kwargs, config_kwargs, and a cache_dir for all three.
        dtype: the encoder's compute dtype, jnp.float32 or jnp.bfloat16 (parameters stay float32).

    Raises:
        FileNotFoundError: the model (or tokenizer) is found nowhere on this machine.
        ValueError: unsupported loading options (named), a bad max_seq_length, and what loading the
            encoder and tokenizer raises (`jaxst.models.load_checkpoint`, `TransformerTokenizer.build`).
    """

    type_ref = "sentence_transformers.base.modules.transformer.Transformer"

    def __init__(
        self,
        model_name_or_path: str | Path,
        *,
        max_seq_length: int | None = None,
        do_lower_case: bool = False,
        model_kwargs: dict[str, Any] | None = None,
        processor_kwargs: dict[str, Any] | None = None,
        config_kwargs: dict[str, Any] | None = None,
        tokenizer_name_or_path: str | Path | None = None,
        model_args: dict[str, Any] | None = None,
        tokenizer_args: dict[str, Any] | None = None,
        config_args: dict[str, Any] | None = None,
        cache_dir: str | Path | None = None,
        dtype: Any = jnp.float32,
    ) -> None:
        former = {"model_args": model_args, "tokenizer_args": tokenizer_args, "config_args": config_args}
        current = {
            "model_kwargs": model_kwargs,
            "processor_kwargs": processor_kwargs,
            "config_kwargs": config_kwargs,
        }
        for old, value in former.items():
            if value is not None and current[RENAMED_ARGUMENTS[old]] is None:
                current[RENAMED_ARGUMENTS[old]] = value
        model_options = check_loading_kwargs("model_kwargs", current["model_kwargs"], also=ENCODER_OPTIONS)
        check_loading_kwargs("config_kwargs", current["config_kwargs"])
        tokenizer_kwargs = check_loading_kwargs("processor_kwargs", current["processor_kwargs"], any_key=True)
        check_type("do_lower_case", do_lower_case, bool)
        cache_dir = cache_dir or model_options.get("cache_dir")
        tokenizer_cache = tokenizer_kwargs.pop("cache_dir", None) or cache_dir
        for key in LOCAL_LOADING_KEYS:
            tokenizer_kwargs.pop(key, None)

        folder = resolve_model_folder(model_name_or_path, cache_dir)
        encoder, extras = load_checkpoint(folder, dtype=dtype, **encoder_options(model_options))
        tokenizer_folder = folder
        if tokenizer_name_or_path is not None:
            tokenizer_folder = resolve_model_folder(tokenizer_name_or_path, tokenizer_cache)
        tokenizer = TransformerTokenizer.build(
            tokenizer_folder,
            int(encoder.embeddings.max_length),
            type(encoder).uses_token_type_ids,
            max_seq_length=max_seq_length,
            do_lower_case=do_lower_case,
            tokenizer_kwargs=tokenizer_kwargs,
        )
        self._assemble(encoder, extras, tokenizer, folder)

    @classmethod
    def load(
        cls, folder: str | Path, dtype: Any = jnp.float32, model_kwargs: dict[str, Any] | None = None
    ) -> Transformer:
        """The Transformer module saved in `folder` (a sentence-transformers model root or module folder,
        or a plain Hugging Face folder), with the settings of its `sentence_bert_config.json`;
        `model_kwargs` as for the constructor."""
        model_options = check_loading_kwargs("model_kwargs", model_kwargs, also=ENCODER_OPTIONS)
        encoder, extras = load_checkpoint(folder, dtype=dtype, **encoder_options(model_options))
        tokenizer = TransformerTokenizer.load(
            folder, int(encoder.embeddings.max_length), type(encoder).uses_token_type_ids
        )
        module = cls.__new__(cls)
        module._assemble(encoder, extras, tokenizer, Path(folder))
        return module

    def _assemble(
        self,
        encoder: TransformerEncoder,
        extras: CheckpointExtras,
        tokenizer: TransformerTokenizer,
        folder: Path,
    ) -> None:
        """Holds the loaded parts; a LoRA adapter saved in `folder` (PEFT's files) joins the encoder."""
        self.encoder = encoder
        self.checkpoint_extras = extras
        self.tokenizer_side = tokenizer
        self.folder = folder
        self.lora_config: LoraConfig | None = attach_saved_adapter(encoder, folder)

    @property
    def auto_model(self) -> TransformerEncoder:
        """The encoder (sentence-transformers' name for the wrapped transformers model)."""
        return self.encoder

    @property
    def tokenizer(self) -> Any:
        """The Hugging Face fast tokenizer."""
        return self.tokenizer_side.tokenizer

    @property
    def do_lower_case(self) -> bool:
        return self.tokenizer_side.do_lower_case

    @property
    def max_seq_length(self) -> int:
        """Texts are truncated to this many tokens."""
        return self.tokenizer_side.max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        self.tokenizer_side.max_seq_length = value

    def get_max_seq_length(self) -> int:
        return self.max_seq_length

    def get_embedding_dimension(self) -> int:
        """H, the size of the token embeddings."""
        return int(self.encoder.hidden_size)

    get_word_embedding_dimension = get_embedding_dimension

    @property
    def architecture(self) -> str:
        """The name of the transformers model class sentence-transformers would load (e.g. BertModel)."""
        from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES  # imports torch

        config = self.encoder.config
        return (
            MODEL_MAPPING_NAMES.get(config.model_type)
            or (config.architectures or [type(self.encoder).__name__])[0]
        )

    def get_config_dict(self) -> dict[str, Any]:
        """What sentence-transformers 6 writes to `sentence_bert_config.json` for a text model."""
        return dict(SAVED_CONFIG)

    def __repr__(self) -> str:
        return f"Transformer({dict(self.get_config_dict(), architecture=self.architecture)})"
