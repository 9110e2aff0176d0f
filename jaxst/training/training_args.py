"""`SentenceTransformerTrainingArguments`: sentence-transformers' training arguments that jaxst implements.

The names and defaults are those of sentence-transformers 6 (on transformers 5's `TrainingArguments`).
A transformers argument that means nothing in jaxst (`NO_EFFECT_DEFAULTS`: fp16, deepspeed, push_to_hub,
dataloader workers, ...) is accepted at its default and is an error naming it at any other value; a name
that is not a training argument at all is a TypeError, as for any dataclass.
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from jaxst.training.fit_options import check_memory_options


class BatchSamplers(StrEnum):
    """sentence-transformers' batch samplers, by its names (`jaxst.training.trainer_data.LOADERS`)."""

    BATCH_SAMPLER = "batch_sampler"
    NO_DUPLICATES = "no_duplicates"
    NO_DUPLICATES_HASHED = "no_duplicates_hashed"  # the same batches as NO_DUPLICATES
    GROUP_BY_LABEL = "group_by_label"


class MultiDatasetBatchSamplers(StrEnum):
    """sentence-transformers' multi-dataset batch samplers (`jaxst.training.objectives.epoch_plan`)."""

    ROUND_ROBIN = "round_robin"
    PROPORTIONAL = "proportional"


BATCH_SAMPLERS = tuple(sampler.value for sampler in BatchSamplers)
MULTI_DATASET_BATCH_SAMPLERS = tuple(sampler.value for sampler in MultiDatasetBatchSamplers)
STRATEGIES = ("no", "steps", "epoch")
REPORT_TO = ("none", "jsonl", "tensorboard")
# transformers' lr_scheduler_type -> jaxst.training.optim scheduler (the same lambdas).
LR_SCHEDULERS = {
    "linear": "warmuplinear",
    "cosine": "warmupcosine",
    "cosine_with_restarts": "warmupcosinewithhardrestarts",
    "constant": "constantlr",
    "constant_with_warmup": "warmupconstant",
}
# torch AdamW under either name: the update optax computes.
OPTIMIZERS = ("adamw_torch_fused", "adamw_torch")
# transformers TrainingArguments that jaxst does not implement, with their defaults (accepted only so).
NO_EFFECT_DEFAULTS: dict[str, Any] = {
    "do_train": False,
    "do_eval": False,
    "do_predict": False,
    "eval_delay": 0,
    "eval_accumulation_steps": None,
    "eval_on_start": False,
    "torch_empty_cache_steps": None,
    "lr_scheduler_kwargs": None,
    "logging_strategy": "steps",
    "logging_first_step": False,
    "logging_nan_inf_filter": True,
    "save_only_model": False,
    "restore_callback_states_from_checkpoint": False,
    "use_cpu": False,
    "fp16_full_eval": False,
    "bf16_full_eval": False,
    "tf32": None,
    "local_rank": -1,
    "ddp_backend": None,
    "ddp_find_unused_parameters": None,
    "dataloader_num_workers": 0,
    "dataloader_pin_memory": True,
    "dataloader_persistent_workers": False,
    "dataloader_prefetch_factor": None,
    "remove_unused_columns": True,
    "label_names": None,
    "label_smoothing_factor": 0.0,
    "length_column_name": "length",
    "ignore_data_skip": False,
    "fsdp": None,
    "fsdp_config": None,
    "deepspeed": None,
    "accelerator_config": None,
    "optim_args": None,
    "push_to_hub": False,
    "hub_model_id": None,
    "hub_token": None,
    "hub_strategy": "every_save",
    "hub_private_repo": None,
    "torch_compile": False,
    "use_liger_kernel": False,
    "neftune_noise_alpha": None,
    "full_determinism": False,
    "auto_find_batch_size": False,
    "skip_memory_metrics": True,
    "include_for_metrics": None,
    "prediction_loss_only": True,
    "learning_rate_mapping": None,
    "router_mapping": None,
}


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    value = getattr(value, "value", value)  # a sentence-transformers / transformers enum member
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not supported; jaxst supports {', '.join(choices)}.")
    return value


def _check_steps(name: str, value: float | None) -> None:
    """A step count: an integer >= 1, or a float in (0, 1) for a ratio of the run's steps."""
    if value is None or (0 < value < 1) or (value >= 1 and float(value).is_integer()):
        return
    raise ValueError(f"{name}={value!r} must be a whole number of steps >= 1 or a ratio in (0, 1).")


def resolve_steps(value: float, total_steps: int) -> int:
    """A step option as a count: a ratio in (0, 1) of `total_steps` rounds up, as transformers."""
    return math.ceil(value * total_steps) if value < 1 else int(value)


@dataclass(kw_only=True)
class _Arguments:
    output_dir: str | None = None
    num_train_epochs: float = 3.0
    max_steps: int = -1
    per_device_train_batch_size: int = 8
    per_device_eval_batch_size: int = 8
    learning_rate: float = 5e-5
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    optim: str = "adamw_torch_fused"
    warmup_ratio: float | None = None
    warmup_steps: float = 0
    lr_scheduler_type: str = "linear"
    max_grad_norm: float = 1.0
    gradient_accumulation_steps: int = 1
    gradient_checkpointing: bool | str = False
    bf16: bool = False
    fp16: bool = False
    run_name: str | None = None
    seed: int = 42
    data_seed: int | None = None
    eval_strategy: str = "no"
    eval_steps: float | None = None
    save_strategy: str = "steps"
    save_steps: float = 500
    save_total_limit: int | None = None
    logging_steps: float = 500
    load_best_model_at_end: bool = False
    metric_for_best_model: str | None = None
    greater_is_better: bool | None = None
    batch_sampler: str = "batch_sampler"
    multi_dataset_batch_sampler: str = "proportional"
    prompts: str | dict[str, Any] | None = None
    report_to: str | list[str] = "none"
    resume_from_checkpoint: str | None = None
    disable_tqdm: bool = False
    dataloader_drop_last: bool = False
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


class SentenceTransformerTrainingArguments(_Arguments):
    """Training arguments with sentence-transformers' names and defaults; see `jaxst.training.trainer`.

    What each means in jaxst:
        output_dir: checkpoints go to `<output_dir>/checkpoints/<step>`, metrics.jsonl (report_to "jsonl")
            and TensorBoard logs to output_dir, evaluator files to `<output_dir>/eval` (default
            "trainer_output", as transformers).
        num_train_epochs (may be fractional), max_steps (> 0 overrides it), per_device_train_batch_size
            (times the device count is the batch a step trains on), learning_rate, weight_decay,
            adam_beta1 / adam_beta2 / adam_epsilon, warmup_steps (a count, or a float in (0, 1): a ratio
            of the steps) or warmup_ratio, lr_scheduler_type (linear, cosine, cosine_with_restarts,
            constant, constant_with_warmup), max_grad_norm, seed (dropout and data order; data_seed, when
            set, the data order): as transformers.
        bf16 / fp16: mixed precision: the encoder computes in bfloat16 for either (jaxst has no float16
            path; parameters and optimizer state stay float32), as fit's use_amp.
        run_name: a name for the run (kept, used by nothing).
        eval_strategy / eval_steps (default logging_steps), save_strategy / save_steps /
            save_total_limit, logging_steps: "no", "steps" or "epoch"; a float in (0, 1) is a ratio.
        load_best_model_at_end, metric_for_best_model (default "loss" with load_best_model_at_end, as
            transformers, else the evaluator's primary metric), greater_is_better (default: False for a
            metric ending in "loss", else True).
        batch_sampler: batch_sampler (shuffled), no_duplicates (or no_duplicates_hashed: the same batches),
            group_by_label; a `BatchSamplers` member or its value.
        multi_dataset_batch_sampler: proportional or round_robin.
        prompts: a prompt for every column, {column: prompt}, {dataset: prompt} or
            {dataset: {column: prompt}}; prepended to the texts.
        report_to: "none", "jsonl" (metrics.jsonl), "tensorboard" (needs torch's tensorboard), or a list.
        disable_tqdm: no progress bar.
        dataloader_drop_last: jaxst trains on full batches only (static shapes), so the last, smaller
            batch of an epoch is always dropped; both values are accepted.
        gradient_accumulation_steps: m micro-batches per optimizer update, for separable losses (see
            `jaxst.training.fit.fit`); gradient_checkpointing: recompute each encoder layer in the backward
            pass (True, or a remat policy name of `jaxst.models.encoder.REMAT_POLICIES`).

    Raises:
        ValueError: an argument jaxst does not implement set to a value other than its default (named), an
            unknown strategy, sampler, scheduler or report_to, or inconsistent arguments.
        TypeError: a name that is not a training argument.
    """

    def __init__(self, output_dir: str | None = None, **kwargs: Any) -> None:
        known = {name for name in _Arguments.__dataclass_fields__ if name != "extra"}
        unknown = sorted(set(kwargs) - known - set(NO_EFFECT_DEFAULTS))
        if unknown:
            raise TypeError(f"SentenceTransformerTrainingArguments got unknown arguments {unknown}.")
        extra = {name: kwargs.pop(name) for name in list(kwargs) if name not in known}
        changed = sorted(name for name, value in extra.items() if not _is_default(name, value))
        if changed:
            raise ValueError(
                f"Training arguments {changed} have no effect in jaxst; leave them at their defaults "
                f"({', '.join(f'{name}={NO_EFFECT_DEFAULTS[name]!r}' for name in changed)})."
            )
        super().__init__(output_dir=output_dir, extra=extra, **kwargs)
        self.check()

    def check(self) -> None:
        """Normalizes the choices (enum members and JSON strings to values) and checks them."""
        if self.output_dir is None:
            self.output_dir = "trainer_output"
        self.batch_sampler = _check_choice("batch_sampler", self.batch_sampler, BATCH_SAMPLERS)
        self.multi_dataset_batch_sampler = _check_choice(
            "multi_dataset_batch_sampler", self.multi_dataset_batch_sampler, MULTI_DATASET_BATCH_SAMPLERS
        )
        self.eval_strategy = _check_choice("eval_strategy", self.eval_strategy, STRATEGIES)
        self.save_strategy = _check_choice("save_strategy", self.save_strategy, STRATEGIES)
        self.lr_scheduler_type = _check_choice(
            "lr_scheduler_type", self.lr_scheduler_type, tuple(LR_SCHEDULERS)
        )
        self.optim = _check_choice("optim", self.optim, OPTIMIZERS)
        report_to = [self.report_to] if isinstance(self.report_to, str) else list(self.report_to or [])
        self.report_to = [_check_choice("report_to", r, REPORT_TO) for r in report_to if r != "none"]
        if isinstance(self.prompts, str):
            with contextlib.suppress(json.JSONDecodeError):  # else one prompt for every column
                self.prompts = json.loads(self.prompts)
        check_memory_options(self.gradient_accumulation_steps, self.gradient_checkpointing)
        if self.warmup_ratio is not None:
            if self.warmup_steps:
                raise ValueError("Give warmup_steps or warmup_ratio, not both.")
            self.warmup_steps, self.warmup_ratio = self.warmup_ratio, None
        if not (self.warmup_steps == 0 or 0 < self.warmup_steps < 1 or float(self.warmup_steps).is_integer()):
            raise ValueError(f"warmup_steps={self.warmup_steps!r} must be a step count or a ratio in (0, 1).")
        for name in ("eval_steps", "save_steps", "logging_steps"):
            _check_steps(name, getattr(self, name))
        if self.eval_steps is None and self.eval_strategy == "steps":
            self.eval_steps = self.logging_steps
        if self.save_total_limit is not None and self.save_total_limit < 1:
            raise ValueError(f"save_total_limit must be None or >= 1, got {self.save_total_limit}.")
        if self.load_best_model_at_end and self.eval_strategy == "no":
            raise ValueError("load_best_model_at_end needs an eval_strategy other than 'no'.")
        if self.load_best_model_at_end and self.metric_for_best_model is None:
            self.metric_for_best_model = "loss"  # transformers' default: the evaluation loss
        if self.greater_is_better is None and self.metric_for_best_model is not None:
            self.greater_is_better = not self.metric_for_best_model.endswith("loss")

    @property
    def scheduler(self) -> str:
        """The jaxst scheduler name of lr_scheduler_type."""
        return LR_SCHEDULERS[self.lr_scheduler_type]

    def to_dict(self) -> dict[str, Any]:
        """The arguments as a dict (the implemented ones and the others given), as transformers'."""
        values = {name: getattr(self, name) for name in _Arguments.__dataclass_fields__ if name != "extra"}
        return {**values, **self.extra}


def _is_default(name: str, value: Any) -> bool:
    default = NO_EFFECT_DEFAULTS[name]
    if default is None:
        return value is None or value in ({}, [], "")
    return value == default
