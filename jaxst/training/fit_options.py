"""The options of one training run (`fit` or `SentenceTransformerTrainer`), as one frozen value checked
when it is made. Both translate their arguments into it; `jaxst.training.fit.TrainingRun` runs it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jaxst.training.accumulation import check_accumulation_steps
from jaxst.training.remat import remat_policy
from jaxst.training.sharding import check_mesh

MULTI_DATASET_BATCH_SAMPLERS = ("round_robin", "proportional")


@dataclass(frozen=True, kw_only=True)
class FitOptions:
    """How a run trains, evaluates, checkpoints and saves. `fit` documents the fields named as its arguments.

    Fields beyond fit's arguments (the Trainer's):
        epochs: may be fractional: the run takes ceil(epochs * steps per epoch) steps.
        max_steps: when set, the run takes exactly this many steps (epochs then only bounds nothing).
        multi_dataset_batch_sampler: how the objectives share an epoch (`jaxst.training.objectives`):
            "round_robin" (one batch of each in turn, until the smallest runs out; fit's) or
            "proportional" (every batch of every objective, in an order drawn per epoch).
        warmup_ratio: warmup as a fraction of the run's steps, used when warmup_steps is 0.
        evaluate_at_epoch_end: evaluate after each epoch (fit's), besides every evaluation_steps.
        evaluate_at_end / checkpoint_at_end: evaluate / checkpoint after the last step unless that step was
            (the Hugging Face Trainer's step strategies).
        eval_loss: params -> {metric name: loss} of evaluation datasets (`jaxst.training.eval_loss`),
            evaluated with the evaluator and merged into its metrics.
        evaluation_output_path: the folder the evaluator writes its files to (None: none).
        checkpoint_at_epoch_end: checkpoint after each epoch, besides every checkpoint_save_steps.
        load_best_model_at_end: keep the parameters of the best evaluation and end with them.
        metric_for_best_model / greater_is_better: the metric that picks the best evaluation (a key of the
            metrics, with or without "eval_"; default the evaluator's primary metric, else "loss") and its
            direction (default: False for a name ending in "loss", else the evaluator's
            `greater_is_better`, else True).
        save_final_model: save the model to output_path after training when no best model was saved there.
        callbacks: `jaxst.training.callbacks` objects, the built-in progress bar and loggers included.

    Raises:
        ValueError: an output_path or checkpoint_path that is an existing file or lies under one (the run
            would fail only when it first writes there, after training), an unknown
            multi_dataset_batch_sampler, or an option the engine does not support yet (named).
    """

    evaluator: Callable | None = None
    epochs: float = 1
    max_steps: int | None = None
    steps_per_epoch: int | None = None
    multi_dataset_batch_sampler: str = "round_robin"
    scheduler: str = "WarmupLinear"
    warmup_steps: int = 10000
    warmup_ratio: float = 0.0
    optimizer_params: dict[str, Any] | None = None
    weight_decay: float = 0.01
    evaluation_steps: int = 0
    evaluate_at_epoch_end: bool = True
    evaluate_at_end: bool = False
    eval_loss: Callable[[Any], dict[str, float]] | None = None
    evaluation_output_path: str | None = None
    output_path: str | None = None
    save_best_model: bool = True
    save_final_model: bool = True
    load_best_model_at_end: bool = False
    metric_for_best_model: str | None = None
    greater_is_better: bool | None = None
    max_grad_norm: float = 1
    use_amp: bool = False
    callbacks: tuple[Any, ...] = ()
    checkpoint_path: str | None = None
    checkpoint_save_steps: int = 500
    checkpoint_at_epoch_end: bool = False
    checkpoint_at_end: bool = False
    checkpoint_save_total_limit: int = 0
    resume_from_checkpoint: bool | str = False
    seed: int = 42
    data_parallel: str = "auto"
    mesh: Any = None
    use_dropout: bool = True
    gradient_accumulation_steps: int = 1
    gradient_checkpointing: bool | str = False

    def __post_init__(self) -> None:
        check_folder_option("output_path", self.output_path)
        check_folder_option("checkpoint_path", self.checkpoint_path)
        if self.multi_dataset_batch_sampler not in MULTI_DATASET_BATCH_SAMPLERS:
            raise ValueError(
                f"Unknown multi_dataset_batch_sampler {self.multi_dataset_batch_sampler!r}; known: "
                f"{', '.join(MULTI_DATASET_BATCH_SAMPLERS)}."
            )
        check_memory_options(self.gradient_accumulation_steps, self.gradient_checkpointing)
        if self.mesh is not None:
            check_mesh(self.mesh)
            if self.data_parallel != "auto":
                raise ValueError(
                    f"data_parallel={self.data_parallel!r} and mesh exclude each other: a mesh trains with "
                    "its own layout (leave data_parallel at 'auto')."
                )

    def lr_and_optimizer_params(self) -> tuple[float, dict[str, Any]]:
        """(lr, the other optimizer_params): lr 2e-5 unless optimizer_params names one, as torch's AdamW
        in sentence-transformers' fit."""
        optimizer_params = dict(self.optimizer_params or {})
        return optimizer_params.pop("lr", 2e-5), optimizer_params


def check_memory_options(gradient_accumulation_steps: int, gradient_checkpointing: bool | str) -> None:
    """Raises ValueError for a gradient_accumulation_steps that is not a positive integer or an unknown
    gradient_checkpointing policy (whether the loss can accumulate is checked when its step is built)."""
    check_accumulation_steps(gradient_accumulation_steps)
    remat_policy(gradient_checkpointing)


def check_folder_option(name: str, value: str | None) -> None:
    """Raises ValueError when the folder `value` of option `name` is an existing file, or lies under one."""
    if not value:
        return
    path = Path(value).absolute()
    existing = next(folder for folder in (path, *path.parents) if folder.exists())
    if not existing.is_dir():
        raise ValueError(f"{name}={str(value)!r} must be a folder, but {existing} is a file.")
