"""SentenceTransformer: load a sentence-transformers folder, encode texts fast, save back for PyTorch."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from jaxst import buckets
from jaxst.batch_layouts import PackedBatch, as_packed
from jaxst.compilation_cache import enable_compilation_cache
from jaxst.encode_parallel import EncodeMesh, check_same_texts, gather_shares, process_share
from jaxst.host_memory import release_free_memory, return_large_blocks, run_cpu_programs_on_the_calling_thread
from jaxst.io.atomic_folder import replace_folder
from jaxst.io.model_card import ModelCardData, write_model_card
from jaxst.io.model_names import resolve_model_folder
from jaxst.io.st_format import (
    SIMILARITY_FN_NAMES,
    ModelConfig,
    ModuleEntry,
    check_truncate_dim,
    model_entries,
    read_model_config,
    read_modules_json,
    write_model_config,
    write_modules_json,
)
from jaxst.lora import LoraConfig
from jaxst.lora import layers as lora_layers
from jaxst.lora.adapter_files import write_adapter
from jaxst.models import save_encoder
from jaxst.models.encoder import PartitionRules
from jaxst.modules import Dense, Normalize, Pooling, Tokenized, Transformer
from jaxst.process_exit import freeze_objects_at_exit
from jaxst.quantization import PRECISIONS, quantize_embeddings
from jaxst.similarity import PAIRWISE_SIMILARITY_FUNCTIONS, SIMILARITY_FUNCTIONS
from jaxst.texts import check_texts
from jaxst.training.fit import fit as fit_model

logger = logging.getLogger(__name__)
# Before JAX makes its CPU backend: importing jaxst's models precedes making one (`jaxst.host_memory`).
run_cpu_programs_on_the_calling_thread()

OUTPUT_VALUES = ("sentence_embedding", "token_embeddings")
PipelineModule = Pooling | Dense | Normalize


class SentenceTransformer:
    """A sentence-transformers model in JAX: Transformer encoder, then Pooling / Dense / Normalize.

    Loading reads a local sentence-transformers folder through `modules.json` (a plain Hugging Face
    folder loads as Transformer + mean Pooling, as sentence-transformers does), found by name offline
    (`jaxst.io.model_names`); `SentenceTransformer(modules=[...])` assembles the same pipeline from
    `jaxst.models.Transformer`, `Pooling`, `Dense` and `Normalize`. `save` writes the folder format back,
    loadable by PyTorch sentence-transformers. As there, `model[i]`, `len(model)`, iteration and
    `repr(model)` list the modules (module 0, the Transformer, holds the current encoder parameters).

    Inference: `encode` (with `encode_query`, `encode_document`), `similarity`, `similarity_pairwise`,
    with sentence-transformers' semantics. Texts are sorted by token count and padded to
    `bucket_lengths`, so one `encode` call compiles at most one program per bucket it uses;
    `compile_count` counts the programs traced so far.

    Training, as pure functions of explicit parameters:

    - `model.params`: pytree of every trainable parameter, float32:
      `{"encoder": nnx.State of the encoder, "modules": {"<pipeline index>": Dense params, ...}}`.
    - `model.graphdef`: the encoder's static `nnx.GraphDef`.
    - `model.tokenize(texts) -> dict[str, np.ndarray]`: input_ids, attention_mask (and token_type_ids where
      the model takes them), int32 [N, L], L the bucket length of the longest text.
    - `model.forward(params, features, *, dropout_rng=None, output_hidden_states=False) -> dict`: features
      plus "token_embeddings" [B, T, H], "sentence_embedding" [B, D] float32 (and "all_layer_embeddings",
      L + 1 arrays [B, T, H], when asked). Pure: works under jax.jit, jax.grad, jax.pmap, shard_map.
      `dropout_rng` (a jax.random key) turns on train-mode dropout; None is eval mode.
    - `model.set_params(params)`: writes trained parameters back (same structure and shapes).
    - `model.add_adapter(jaxst.LoraConfig(...))`: LoRA factors join the encoder's parameters and fit
      trains them alone (`jaxst.lora`); `merge_adapter` folds them into the weights.

    `encode` runs the same `forward`, so training and inference agree.

    Args:
        model_name_or_path: a local folder, or a model name found offline: in the Hugging Face hub cache on
            disk, or shipped by an installed package (`jaxst.io.model_names`; jaxst never downloads).
        dtype: compute dtype of the encoder, jnp.float32 or jnp.bfloat16 (parameters stay float32). A model
            built from `modules` computes in its Transformer module's dtype, which `dtype` must equal.
        device: where the parameters live and encode computes, as sentence-transformers names devices
            ("cpu", "gpu", "cuda", "cuda:1", "tpu", ...; see `resolve_device`) or a `jax.Device`. None
            leaves them on JAX's default device. `model.device` says which device it is.
        modules: instead of a name, the modules to assemble, as sentence-transformers takes them:
            `[models.Transformer(...), models.Pooling(...), models.Dense(...), models.Normalize()]`; a new
            Dense draws its params (`Dense.init_params`, seeded by `seed`).
        cache_folder: a Hugging Face hub cache folder searched first for a model name.
        prompts: prompts by name, overriding the saved ones, e.g. {"query": "query: "}.
        default_prompt_name: the prompt used when encode gets neither `prompt` nor `prompt_name`.
        similarity_fn_name: "cosine", "dot", "euclidean" or "manhattan" (default: saved, else cosine).
        truncate_dim: keep only the first `truncate_dim` embedding dimensions (default: saved, else all).
        seed: the seed of new Dense params of a model built from `modules`.
        model_kwargs: the encoder's options (`jaxst.modules.hf_transformer.ENCODER_OPTIONS`), as
            sentence-transformers passes its own to transformers: the attention options, e.g.
            {"attention_implementation": "pallas", "attention_dropout": "skip"}, and {"scan_layers": True}
            (see `TransformerEncoder`).
    """

    def __init__(
        self,
        model_name_or_path: str | Path | None = None,
        dtype: Any = jnp.float32,
        device: Any = None,
        *,
        modules: Sequence[Any] | None = None,
        cache_folder: str | Path | None = None,
        prompts: dict[str, str] | None = None,
        default_prompt_name: str | None = None,
        similarity_fn_name: str | None = None,
        truncate_dim: int | None = None,
        seed: int = 0,
        model_kwargs: dict[str, Any] | None = None,
    ):
        if (model_name_or_path is None) == (modules is None):
            raise ValueError(
                "SentenceTransformer needs a model name or path, or modules=[...], and not both."
            )
        if modules is not None and model_kwargs:
            raise ValueError(
                "model_kwargs apply to loading a model by name or path; with modules=[...], give them to "
                "models.Transformer(..., model_kwargs=...)."
            )
        enable_compilation_cache()
        freeze_objects_at_exit()
        self._device = None if device is None else resolve_device(device)
        # The modules after the Transformer, by pipeline index; fixed once built (encode compiles them).
        self.pipeline: tuple[tuple[str, PipelineModule], ...]
        if modules is not None:
            saved, folder = ModelConfig(), None
            transformer, self.pipeline, module_params = assemble_pipeline(modules, seed)
            if jnp.dtype(dtype) != transformer.encoder.dtype:
                raise ValueError(
                    f"dtype {jnp.dtype(dtype)} differs from the Transformer module's "
                    f"{transformer.encoder.dtype}: set it there, models.Transformer(..., dtype=...)."
                )
        else:
            folder = resolve_model_folder(model_name_or_path, cache_folder)
            saved = read_model_config(folder)
            entries = read_modules_json(folder)
            if entries is not None and (
                entries[0].kind != "Transformer" or any(e.kind == "Transformer" for e in entries[1:])
            ):
                raise ValueError(f"{folder}/modules.json must list one Transformer module, first.")
            transformer_folder = folder if entries is None else folder / entries[0].path
            transformer = Transformer.load(transformer_folder, dtype, model_kwargs)
            if entries is None:  # a plain Hugging Face folder: mean pooling, as sentence-transformers
                self.pipeline, module_params = (("1", Pooling(int(transformer.encoder.hidden_size))),), {}
            else:
                self.pipeline, module_params = load_pipeline(folder, entries[1:])
        self._transformer_module = transformer
        self._checkpoint_extras = transformer.checkpoint_extras
        self.model_card_data = ModelCardData.from_source(model_name_or_path, folder)
        self.graphdef, encoder_params = nnx.split(transformer.encoder)
        self.hidden_size = int(transformer.encoder.hidden_size)
        self.dtype = transformer.encoder.dtype
        self.transformer = transformer.tokenizer_side
        self._params = self._place({"encoder": encoder_params, "modules": module_params})

        self.prompts = {"query": "", "document": "", **saved.prompts, **(prompts or {})}
        self.default_prompt_name = default_prompt_name or saved.default_prompt_name
        if self.default_prompt_name is not None and self.default_prompt_name not in self.prompts:
            raise ValueError(
                f"Default prompt name {self.default_prompt_name!r} not in the prompts {list(self.prompts)}."
            )
        self._similarity_fn_name: str | None = None
        self.similarity_fn_name = similarity_fn_name or saved.similarity_fn_name
        self._truncate_dim: int | None = None
        self.truncate_dim = truncate_dim if truncate_dim is not None else saved.truncate_dim

        self.compile_count = 0
        self._inference_step = jax.jit(self._inference, static_argnames="output_value")
        self._encode_mesh: EncodeMesh | None = None

    # ------------------------------------------------------------------------------------------- modules

    def _modules(self) -> list[Any]:
        """The modules in pipeline order; the Transformer's encoder holds the current graph and parameters."""
        self._transformer_module.encoder = nnx.merge(self.graphdef, self._params["encoder"])
        return [self._transformer_module, *(module for _, module in self.pipeline)]

    def __getitem__(self, index: int) -> Any:
        """Module `index` of the pipeline (0: the Transformer), as sentence-transformers indexes it."""
        return self._modules()[index]

    def __len__(self) -> int:
        return 1 + len(self.pipeline)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._modules())

    def __repr__(self) -> str:
        """The modules as sentence-transformers prints them: `(index): Kind({config})`, one per line."""
        lines = [f"  ({index}): {module!r}" for index, module in enumerate(self._modules())]
        return "SentenceTransformer(\n" + "\n".join(lines) + "\n)"

    # ----------------------------------------------------------------------------------------- training API

    @property
    def params(self) -> dict[str, Any]:
        """All trainable parameters: {"encoder": nnx.State, "modules": {index: Dense params}}."""
        return self._params

    def set_params(self, params: dict[str, Any]) -> None:
        """Replaces the parameters (e.g. after training); structure, shapes and dtypes must match.

        With a chosen `device`, they are put on it.
        """
        if jax.tree.structure(params) != jax.tree.structure(self._params):
            raise ValueError("set_params: the parameter tree differs from model.params.")
        for (path, new), old in zip(
            jax.tree_util.tree_leaves_with_path(params), jax.tree.leaves(self._params), strict=True
        ):
            if jnp.shape(new) != old.shape or jnp.result_type(new) != old.dtype:
                raise ValueError(
                    f"set_params: {jax.tree_util.keystr(path)} is {jnp.result_type(new)} "
                    f"{list(jnp.shape(new))}, expected {old.dtype} {list(old.shape)}."
                )
        self._params = self._place(params)

    def forward(
        self,
        params: dict[str, Any],
        features: Mapping[str, jax.Array] | PackedBatch,
        *,
        dropout_rng: jax.Array | None = None,
        output_hidden_states: bool = False,
    ) -> dict[str, jax.Array]:
        """The model as a pure function: features -> features + token / sentence embeddings.

        Args:
            params: a pytree like `model.params`.
            features: padded texts, input_ids and attention_mask [N, T] int (and token_type_ids where the
                model takes them; prompt_length, a scalar int, for Pooling with include_prompt=False), as
                `tokenize` returns them; or N texts packed into rows (`jaxst.batch_layouts.PackedBatch`,
                or its named arrays), whose tokens are unpacked to [N, P, H] before the modules, so that
                the outputs have the padded layout.
            dropout_rng: a jax.random key for train-mode dropout; None for eval mode.
            output_hidden_states: also return "all_layer_embeddings" (L + 1 arrays [N, T, H]).

        Returns:
            The padded features (a packed batch's attention_mask [N, P]) plus "token_embeddings" [N, T, H]
            (compute dtype) and "sentence_embedding" [N, D] float32 (after Pooling, Dense, Normalize).
        """
        encoder = partial(
            nnx.merge(self.graphdef, params["encoder"]),
            output_hidden_states=output_hidden_states,
            dropout_rng=dropout_rng,
        )
        packed = as_packed(features)
        if packed is None:
            token_type_ids = features.get("token_type_ids")
            output = encoder(
                features["input_ids"], features["attention_mask"], self._token_types(token_type_ids)
            )
            features = dict(features)
        else:
            rows = encoder(
                packed.packed_input_ids,
                packed.packed_segment_ids,
                self._token_types(packed.packed_token_type_ids),
                position_ids=packed.packed_position_ids,
            )
            output = jax.tree.map(packed.unpack, rows)
            features = {"attention_mask": packed.attention_mask}
        if output_hidden_states:
            features["token_embeddings"], features["all_layer_embeddings"] = output
        else:
            features["token_embeddings"] = output
        for name, module in self.pipeline:
            features = module(params["modules"].get(name), features)
        return features

    def _token_types(self, token_type_ids: jax.Array | None) -> jax.Array | None:
        """The token type ids the encoder gets: None for a model without token type embeddings."""
        return token_type_ids if self.transformer.uses_token_type_ids else None

    def tokenize(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Tokenizes texts, truncated to max_seq_length, padded to the bucket of the longest.

        Returns:
            input_ids, attention_mask (and token_type_ids where the model takes them), int32 [N, L].
        """
        texts = check_texts(texts)
        tokenized = self.transformer.tokenize(texts)
        longest = int(tokenized.lengths.max(initial=1))
        length = buckets.bucket_for(longest, self.max_seq_length)
        return tokenized.padded(np.arange(len(texts)), len(texts), length, self.transformer.pad_token_id)

    # --------------------------------------------------------------------------------------------- settings

    @property
    def tokenizer(self) -> Any:
        """The Hugging Face fast tokenizer."""
        return self.transformer.tokenizer

    @property
    def max_seq_length(self) -> int:
        """Texts are truncated to this many tokens."""
        return self.transformer.max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        """ValueError naming the value and the limit unless it is an int from 2 to the encoder's positions."""
        self.transformer.max_seq_length = value

    def get_max_seq_length(self) -> int:
        """Texts are truncated to this many tokens (`max_seq_length`)."""
        return self.max_seq_length

    @property
    def truncate_dim(self) -> int | None:
        """Sentence embeddings keep their first `truncate_dim` dimensions (None: all)."""
        return self._truncate_dim

    @truncate_dim.setter
    def truncate_dim(self, value: int | None) -> None:
        """ValueError unless value is None or a positive int."""
        self._truncate_dim = check_truncate_dim(value)

    @property
    def device(self) -> jax.Device:
        """The device that holds the parameters and runs encode."""
        if self._device is not None:
            return self._device
        return min(jax.tree.leaves(self._params)[0].devices(), key=lambda device: device.id)

    def to(self, device: str | jax.Device) -> SentenceTransformer:
        """Moves the parameters to `device` (a name, see `resolve_device`, or a jax.Device); encode and the
        arrays it returns follow them. Returns the model, as torch's `to` does."""
        self._device = resolve_device(device)
        self._params = self._place(self._params)
        return self

    def _place(self, tree: Any) -> Any:
        """The arrays of `tree` on the chosen device (unchanged when none was chosen)."""
        return tree if self._device is None else jax.device_put(tree, self._device)

    @property
    def bucket_lengths(self) -> tuple[int, ...]:
        """The padded sequence lengths encode compiles for."""
        return buckets.bucket_lengths(self.max_seq_length)

    @property
    def similarity_fn_name(self) -> str:
        """The similarity function: "cosine", "dot", "euclidean" or "manhattan" (cosine when unset)."""
        if self._similarity_fn_name is None:
            self._similarity_fn_name = "cosine"
        return self._similarity_fn_name

    @similarity_fn_name.setter
    def similarity_fn_name(self, value: str | None) -> None:
        value = getattr(value, "value", value)  # also accept sentence-transformers' SimilarityFunction
        if value is not None and value not in SIMILARITY_FN_NAMES:
            raise ValueError(f"similarity_fn_name must be one of {SIMILARITY_FN_NAMES}, got {value!r}.")
        self._similarity_fn_name = value

    def get_sentence_embedding_dimension(self) -> int:
        """Size of encode's sentence embeddings (after truncate_dim)."""
        return self._output_dimension(self.truncate_dim)

    def _output_dimension(self, truncate_dim: int | None) -> int:
        dimension = self.hidden_size
        for _, module in reversed(self.pipeline):
            if isinstance(module, (Pooling, Dense)):
                dimension = module.output_dimension
                break
        return dimension if truncate_dim is None else min(dimension, truncate_dim)

    get_embedding_dimension = get_sentence_embedding_dimension

    def similarity(self, embeddings1: Any, embeddings2: Any) -> jax.Array:
        """[N, M] similarity of every pair, with `similarity_fn_name`; 1-D inputs count as one row."""
        return SIMILARITY_FUNCTIONS[self.similarity_fn_name](
            jnp.asarray(embeddings1), jnp.asarray(embeddings2)
        )

    def similarity_pairwise(self, embeddings1: Any, embeddings2: Any) -> jax.Array:
        """[N] similarity of embeddings1[i] and embeddings2[i], with `similarity_fn_name`."""
        function = PAIRWISE_SIMILARITY_FUNCTIONS[self.similarity_fn_name]
        return function(jnp.asarray(embeddings1), jnp.asarray(embeddings2))

    # ------------------------------------------------------------------------------------------------ encode

    def encode(
        self,
        sentences: str | Sequence[str],
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        output_value: str = "sentence_embedding",
        precision: str = "float32",
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        device: str | jax.Device | None = None,
        *,
        normalize_embeddings: bool = False,
        truncate_dim: int | None = None,
        devices: int | Sequence[str | jax.Device] | None = None,
    ) -> np.ndarray | jax.Array | list[Any]:
        """Embeds texts, with sentence-transformers' semantics (and its positional parameter order).

        Args:
            sentences: a text (gives one embedding [D]), or a list, tuple or 1-D NumPy array of texts
                (gives [N, D]). Other iterables (a generator, a set, a dict) are refused: turn them into a
                list first.
            prompt_name: key of `prompts` whose text is prepended to every text; ignored when `prompt`.
            prompt: text prepended to every text.
            batch_size: texts per forward pass.
            show_progress_bar: a progress bar over batches (default: when logging at INFO or DEBUG).
            output_value: "sentence_embedding", or "token_embeddings" for one [T_i, H] float32 array per
                text (its T_i real tokens; not truncated, normalized or converted).
            precision: "float32", "int8", "uint8", "binary" or "ubinary" (see `jaxst.quantization`;
                int8 / uint8 ranges come from the call's own embeddings).
            convert_to_numpy: a NumPy array [N, D]; False gives a list of N jax arrays [D].
            convert_to_tensor: one jax.Array [N, D] (wins over convert_to_numpy).
            device: moves the model there first, as sentence-transformers does (see `to`); encode then runs
                there alone unless `devices` says otherwise.
            normalize_embeddings: L2-normalize the (truncated) sentence embeddings.
            truncate_dim: keep the first `truncate_dim` dimensions (default: the model's truncate_dim).
            devices: the devices each batch's rows are split over (`jaxst.encode_parallel`): a count (the
                first of this process' devices) or a list of devices or names (see `resolve_device`). None:
                the model's device when one was chosen (`device=`, `to`), else every device of this process
                and, in a `jax.distributed` job of several processes, of every process: each process then
                encodes a contiguous share of the texts and all get every sentence embedding, so every
                process must call encode with the same texts (token embeddings stay per process: each
                computes all of them). Results equal one-device encode to a few float32 ulps.

        Returns:
            float32 [N, D] (or the quantized dtype; [N, ceil(D / 8)] for the binary kinds); [0, D] for
            no texts; or per text arrays for token embeddings.

        Raises:
            TypeError: `sentences` not a str or a sequence of them; a text that is not a str (naming its
                index).
            ValueError: batch_size < 1, unknown precision, output_value or prompt_name, a truncate_dim
                that is not a positive integer, an unavailable device, a bad `devices`.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        if output_value not in OUTPUT_VALUES:
            raise ValueError(f"output_value must be one of {OUTPUT_VALUES}, got {output_value!r}.")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
        single = isinstance(sentences, str)
        texts = check_texts([sentences] if single else sentences)
        prompt = self._resolve_prompt(prompt, prompt_name)
        truncate_dim = self.truncate_dim if truncate_dim is None else check_truncate_dim(truncate_dim)
        if isinstance(device, list | tuple):
            raise TypeError(
                f"device={device!r:.60}: device is one device, where the model moves; to split encode over "
                "several devices, pass devices=[...] (or a count)."
            )
        if device is not None:
            self.to(device)
        if show_progress_bar is None:
            show_progress_bar = logger.getEffectiveLevel() <= logging.INFO
        mesh = self._mesh_for(devices)
        across_processes = (
            devices is None
            and self._device is None
            and jax.process_count() > 1
            and output_value == "sentence_embedding"
        )

        prompt_length = 0
        if prompt:
            texts = [prompt + text for text in texts]
            prompt_length = self.transformer.prompt_length(prompt)
        num_texts = len(texts)
        if across_processes:
            check_same_texts(texts)
            texts = texts[process_share(num_texts)]
        tokenized = self.transformer.tokenize(texts)
        run = partial(self._run, tokenized, batch_size, show_progress_bar, prompt_length, mesh)
        if output_value == "sentence_embedding":
            if not any(isinstance(m, Pooling) for _, m in self.pipeline):
                raise ValueError("This model has no Pooling module, so no sentence embeddings.")
            embeddings = np.empty((len(texts), self._output_dimension(truncate_dim)), np.float32)

            def consume(batch: buckets.PlannedBatch, result: np.ndarray) -> None:
                rows = result[: len(batch.indices), :truncate_dim]
                embeddings[batch.indices] = normalize_rows(rows) if normalize_embeddings else rows

            run(consume, "sentence_embedding")
            if across_processes:
                embeddings = gather_shares(embeddings, num_texts)
        else:
            embeddings = [None] * len(texts)
            lengths = tokenized.lengths

            def consume(batch: buckets.PlannedBatch, result: np.ndarray) -> None:
                for row, index in enumerate(batch.indices):
                    embeddings[index] = result[row, : lengths[index]].copy()

            run(consume, "token_embeddings")
        if precision != "float32":
            embeddings = quantize_embeddings(embeddings, precision)
        if output_value == "sentence_embedding":
            if convert_to_tensor:
                embeddings = jnp.asarray(self._place(embeddings))
            elif not convert_to_numpy:
                embeddings = list(jnp.asarray(self._place(embeddings)))
        return embeddings[0] if single else embeddings

    def encode_query(
        self, sentences: str | Sequence[str], **kwargs: Any
    ) -> np.ndarray | jax.Array | list[Any]:
        """encode with the "query" prompt when neither `prompt` nor `prompt_name` is given."""
        return self._encode_with_prompt_of("query", sentences, kwargs)

    def encode_document(
        self, sentences: str | Sequence[str], **kwargs: Any
    ) -> np.ndarray | jax.Array | list[Any]:
        """encode with the "document" prompt when neither `prompt` nor `prompt_name` is given."""
        return self._encode_with_prompt_of("document", sentences, kwargs)

    def _encode_with_prompt_of(
        self, role: str, sentences: str | Sequence[str], kwargs: dict[str, Any]
    ) -> np.ndarray | jax.Array | list[Any]:
        """encode with the prompt named `role`, when it is one and kwargs give no prompt."""
        if kwargs.get("prompt") is None and kwargs.get("prompt_name") is None and role in self.prompts:
            kwargs["prompt_name"] = role
        return self.encode(sentences, **kwargs)

    def _resolve_prompt(self, prompt: str | None, prompt_name: str | None) -> str | None:
        if prompt is not None:
            if prompt_name is not None:
                logger.warning("Both `prompt` and `prompt_name` given: using `prompt`.")
            return prompt
        if prompt_name is not None:
            if prompt_name not in self.prompts:
                raise ValueError(
                    f"Prompt name {prompt_name!r} not found in the configured prompts {list(self.prompts)}."
                )
            return self.prompts[prompt_name]
        if self.default_prompt_name is not None:
            return self.prompts.get(self.default_prompt_name)
        return None

    def _inference(
        self, params: dict[str, Any], features: dict[str, jax.Array], *, output_value: str
    ) -> jax.Array:
        """One encode batch (jit-compiled per shape and output_value): forward, float32 output."""
        self.compile_count += 1  # runs only while tracing, i.e. once per compiled program
        return self.forward(params, features)[output_value].astype(jnp.float32)

    def _mesh_for(self, devices: int | Sequence[str | jax.Device] | None) -> EncodeMesh:
        """The mesh encode runs on for its `devices` argument (kept while the devices stay the same)."""
        if devices is not None:
            chosen = resolve_devices(devices)
        elif self._device is not None:
            chosen = (self._device,)
        else:
            chosen = tuple(jax.local_devices())
        if self._encode_mesh is None or self._encode_mesh.devices != chosen:
            self._encode_mesh = EncodeMesh(chosen)
        return self._encode_mesh

    def _run(
        self,
        tokenized: Tokenized,
        batch_size: int,
        show_progress_bar: bool,
        prompt_length: int,
        mesh: EncodeMesh,
        consume: Callable[[buckets.PlannedBatch, np.ndarray], None],
        output_value: str,
    ) -> None:
        """Batches the texts by length and streams every batch through the jitted inference step, each
        batch's rows split over the mesh's devices."""
        return_large_blocks()  # batch buffers go back to the system when freed (jaxst.host_memory)
        rows = buckets.rows_per_batch(len(tokenized.lengths), batch_size)
        batches = buckets.plan_batches(tokenized.lengths, rows, self.bucket_lengths, row_multiple=len(mesh))
        params = mesh.replicate(self._params)

        def batch_features(batch: buckets.PlannedBatch) -> dict[str, jax.Array]:
            features = tokenized.padded(
                batch.indices, batch.rows, batch.length, self.transformer.pad_token_id
            )
            features["prompt_length"] = np.int32(prompt_length)
            return mesh.put_batch(features)

        def dispatch(batch: buckets.PlannedBatch) -> jax.Array:
            return self._inference_step(params, batch_features(batch), output_value=output_value)

        if len(batches) > 1:  # one batch compiles as it runs; this spares one-text calls the lookups
            self._compile_ahead(params, batches, batch_features, output_value)
        progress = tqdm(batches, desc="Batches", disable=not show_progress_bar)
        buckets.stream_batches(progress, dispatch, consume)

    def _compile_ahead(
        self,
        params: dict[str, Any],
        batches: list[buckets.PlannedBatch],
        features: Callable[[buckets.PlannedBatch], dict[str, jax.Array]],
        output_value: str,
    ) -> None:
        """Compiles the programs of all batch shapes before the first batch runs.

        Compiling takes scratch memory that the allocator keeps (`jaxst.host_memory`); compiled ahead, it
        is handed back before the results start to fill the output, so it does not add to the peak.
        Shapes compiled before cost a cache lookup (about a millisecond).
        """
        compiled = self.compile_count
        one_per_shape = {(batch.rows, batch.length): batch for batch in batches}
        for batch in one_per_shape.values():
            self._inference_step.lower(params, features(batch), output_value=output_value).compile()
        if self.compile_count != compiled:
            release_free_memory()

    # ------------------------------------------------------------------------------------------------- LoRA

    def add_adapter(self, config: LoraConfig, adapter_name: str = "default", *, seed: int = 0) -> None:
        """Attaches a fresh LoRA adapter to the encoder's linear layers that `config` targets (PEFT's
        semantics, see `jaxst.LoraConfig`); from then on `fit` trains only the adapter (and the pipeline's
        Dense modules) and `save` writes it beside the base model in PEFT's format.

        Args:
            config: the adapter's options; target_modules None takes PEFT's default for the model type.
            adapter_name: "default", PEFT's name for a model's one adapter (jaxst holds one).
            seed: seeds the random initialisation of the LoRA factors.

        Raises:
            ValueError: the model has an adapter already, another adapter_name, or target_modules that
                match no linear layer or that PEFT has no default for.
        """
        if adapter_name != "default":
            raise ValueError(
                f"adapter_name must be 'default' (jaxst holds one adapter), got {adapter_name!r}."
            )
        if self.lora_config is not None:
            raise ValueError("This model has an adapter already; merge_adapter() folds it into the weights.")
        encoder = nnx.merge(self.graphdef, self._params["encoder"])
        config = lora_layers.resolve_targets(config, encoder.spec.model_type)
        lora_layers.attach(encoder, config, jax.random.PRNGKey(seed))
        self._set_encoder(encoder)
        self._transformer_module.lora_config = config

    @property
    def partition_rules(self) -> PartitionRules:
        """How the encoder family's parameters shard over a training mesh (`fit(..., mesh=...)`)."""
        return type(self._transformer_module.encoder).partition_rules

    @property
    def lora_config(self) -> LoraConfig | None:
        """The LoRA adapter's options while the model has one (the Transformer module holds it), else None."""
        return self._transformer_module.lora_config

    def active_adapters(self) -> list[str]:
        """["default"] while the model has a LoRA adapter, else []."""
        return [] if self.lora_config is None else ["default"]

    def merge_adapter(self) -> None:
        """Folds the adapter into the base weights, W + scaling * A B per adapted layer, and removes it
        (PEFT's merge_and_unload): the model then computes the same embeddings as a plain model.

        Raises:
            ValueError: the model has no adapter.
        """
        if self.lora_config is None:
            raise ValueError("This model has no adapter to merge (add_adapter attaches one).")
        encoder = nnx.merge(self.graphdef, self._params["encoder"])
        lora_layers.merge(encoder)
        self._set_encoder(encoder)
        self._transformer_module.lora_config = None

    def _set_encoder(self, encoder: nnx.Module) -> None:
        """Takes `encoder`'s graph and parameters; encode compiles anew for the new graph."""
        self.graphdef, encoder_params = nnx.split(encoder)
        self._params = self._place({**self._params, "encoder": encoder_params})
        self._inference_step = jax.jit(self._inference, static_argnames="output_value")

    # ------------------------------------------------------------------------------------------------- train

    def fit(self, train_objectives: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Trains the model in place with sentence-transformers' fit API; see `jaxst.training.fit.fit`."""
        return fit_model(self, train_objectives, *args, **kwargs)

    # -------------------------------------------------------------------------------------------------- save

    def save(self, path: str | Path, create_model_card: bool = True) -> None:
        """Writes the sentence-transformers folder format, loadable by PyTorch sentence-transformers:
        modules.json, config_sentence_transformers.json, the encoder (config.json, model.safetensors),
        tokenizer files and sentence_bert_config.json at the root, and one folder per other module.

        With `create_model_card`, also the model card README.md (`jaxst.io.model_card`), which replaces a
        README.md already in the folder, as sentence-transformers' save does; without, such a README.md is
        kept like the folder's other files.

        The folder is replaced in one step (`jaxst.io.atomic_folder`): the model is written into a hidden
        sibling folder that is then swapped in, so a save that fails or is killed midway leaves an earlier
        model at `path` whole. The earlier model's files (`jaxst.io.st_format.model_entries`: configs,
        tokenizer and weight files at the root, the module folders its modules.json lists) are dropped;
        every other entry (metrics.jsonl, eval/, plots, the user's own files) is carried over.

        Raises:
            ValueError: for an empty path, or a folder that holds the current working directory.
            NotADirectoryError: when `path` exists and is not a folder.
        """
        replace_folder(path, lambda folder: self._write(folder, create_model_card), model_entries)

    save_pretrained = save

    def _write(self, folder: Path, create_model_card: bool) -> None:
        """Writes the model's files (and, with `create_model_card`, its card) into the empty `folder`."""
        write_model_config(
            folder,
            ModelConfig(self.prompts, self.default_prompt_name, self.similarity_fn_name, self.truncate_dim),
        )
        encoder = nnx.merge(self.graphdef, self._params["encoder"])
        save_encoder(encoder, folder, self._checkpoint_extras)
        if self.lora_config is not None:
            base = str(self._transformer_module.folder.resolve())
            write_adapter(folder, encoder, self.lora_config, base)
        self.transformer.save(folder)
        listing = [(ModuleEntry("0", "", "Transformer"), Transformer.type_ref)]
        for index, (name, module) in enumerate(self.pipeline, start=1):
            kind = type(module).__name__
            module_folder = folder / f"{index}_{kind}"
            module_folder.mkdir()
            module.save(module_folder, self._params["modules"].get(name))
            listing.append((ModuleEntry(str(index), module_folder.name, kind), module.type_ref))
        write_modules_json(folder, listing)
        if create_model_card:
            write_model_card(self, folder)


def assemble_pipeline(
    modules: Sequence[Any], seed: int
) -> tuple[Transformer, tuple[tuple[str, PipelineModule], ...], dict[str, Any]]:
    """The Transformer module, the modules after it by pipeline index, and new params for each Dense.

    Dense params are drawn by `Dense.init_params` from `jax.random.key(seed)`, folded with the index.

    Raises:
        TypeError: naming the index, for a first module that is not a `jaxst.models.Transformer` or a later
            one that is not a Pooling, Dense or Normalize.
    """
    if isinstance(modules, str) or not isinstance(modules, Sequence) or not modules:
        raise TypeError(
            "modules must be a non-empty list: [models.Transformer(...), models.Pooling(...), ...]."
        )
    transformer, *rest = modules
    if not isinstance(transformer, Transformer):
        raise TypeError(
            f"modules[0] must be a jaxst.models.Transformer (the encoder), got {type(transformer).__name__}."
        )
    pipeline, params = [], {}
    for index, module in enumerate(rest, start=1):
        if not isinstance(module, Pooling | Dense | Normalize):
            raise TypeError(
                f"modules[{index}] is a {type(module).__name__}; after the Transformer jaxst takes "
                "models.Pooling, models.Dense and models.Normalize."
            )
        if isinstance(module, Dense):
            params[str(index)] = module.init_params(jax.random.fold_in(jax.random.key(seed), index))
        pipeline.append((str(index), module))
    return transformer, tuple(pipeline), params


def load_pipeline(
    folder: Path, entries: list[ModuleEntry]
) -> tuple[tuple[tuple[str, PipelineModule], ...], dict[str, Any]]:
    """The modules after the Transformer, by pipeline index, and the params of those that have some."""
    pipeline, params = [], {}
    for index, entry in enumerate(entries, start=1):
        module_folder = folder / entry.path
        if entry.kind == "Dense":
            module, params[str(index)] = Dense.load(module_folder)
        elif entry.kind == "Pooling":
            module = Pooling.load(module_folder)
        else:
            module = Normalize.load(module_folder)
        pipeline.append((str(index), module))
    return tuple(pipeline), params


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """x / max(||x||_2, 1e-12) per row (torch F.normalize), in float32."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), np.float32(1e-12))


def resolve_device(device: str | jax.Device) -> jax.Device:
    """The JAX device for a device as sentence-transformers names it.

    Args:
        device: a jax.Device of this process, or a platform name with an optional index, the position
            among this process' devices of that platform: "cpu", "gpu", "cuda", "rocm", "tpu", "cuda:1",
            "cpu:3". A name without an index means the first device of its platform.

    Raises:
        TypeError: for anything but a str or a jax.Device.
        ValueError: naming the device and the devices JAX has, for an unavailable platform or index.
    """
    if isinstance(device, jax.Device):
        if device not in jax.local_devices(backend=device.platform):
            raise ValueError(f"device {device} is not one of this process' devices; {available_devices()}.")
        return device
    if not isinstance(device, str):
        raise TypeError(
            "device must be a platform name such as 'cpu', 'gpu' or 'cuda:0', or a jax.Device; "
            f"got {type(device).__name__} {device!r:.60}."
        )
    platform, _, index = device.strip().lower().partition(":")
    try:
        devices = jax.local_devices(backend=platform) if platform else []
    except RuntimeError:
        devices = []
    if index and not index.isdigit():
        raise ValueError(f"device {device!r}: the index after ':' must be a number; {available_devices()}.")
    if int(index or 0) >= len(devices):
        raise ValueError(f"device {device!r} is not available; {available_devices()}.")
    return devices[int(index or 0)]


def resolve_devices(devices: int | Sequence[str | jax.Device]) -> tuple[jax.Device, ...]:
    """The devices of encode's `devices` argument: the first `devices` of this process' devices (JAX's
    default platform), or each device of a list as `resolve_device` takes it (one platform, none twice).

    Raises:
        TypeError: `devices` neither a count nor a list or tuple.
        ValueError: a count below 1 or above the devices this process has, an empty list, an unavailable,
            repeated or other-platform device (naming it).
    """
    if isinstance(devices, int) and not isinstance(devices, bool):
        local = jax.local_devices()
        if not 1 <= devices <= len(local):
            raise ValueError(
                f"devices={devices}: the count must be from 1 to {len(local)}; {available_devices()}."
            )
        return tuple(local[:devices])
    if not isinstance(devices, list | tuple):
        raise TypeError(
            "devices must be a device count or a list of devices (jax.Device or names such as 'cpu:1'); "
            f"got {type(devices).__name__} {devices!r:.60}."
        )
    if not devices:
        raise ValueError("devices is an empty list: name at least one device, or pass None for all of them.")
    resolved = tuple(resolve_device(device) for device in devices)
    for index, device in enumerate(resolved):
        if device in resolved[:index]:
            raise ValueError(f"devices[{index}] ({devices[index]!r}) is {device}, already listed.")
        if device.platform != resolved[0].platform:
            raise ValueError(
                f"devices[{index}] ({devices[index]!r}) is a {device.platform} device and devices[0] a "
                f"{resolved[0].platform} one: encode splits its batches over devices of one platform."
            )
    return resolved


def available_devices() -> str:
    """What JAX offers, for error messages, e.g. "JAX has cpu:0 to cpu:7"."""
    platforms = dict.fromkeys(d.platform for d in [*jax.local_devices(), *jax.local_devices(backend="cpu")])
    ranges = []
    for platform in platforms:
        count = len(jax.local_devices(backend=platform))
        ranges.append(f"{platform}:0" + (f" to {platform}:{count - 1}" if count > 1 else ""))
    return "JAX has " + ", ".join(ranges)
