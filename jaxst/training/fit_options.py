"""The options of one `fit` call, as one frozen value checked when it is made."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jaxst.training.accumulation import check_accumulation_steps
from jaxst.training.remat import remat_policy


@dataclass(frozen=True, kw_only=True)
class FitOptions:
    """`fit`'s arguments but the model, the objectives and `optimizer_class` (which `fit` only checks), by
    the same names; `fit` documents them and their defaults.

    Raises:
        ValueError: when made with an output_path or checkpoint_path that is an existing file or lies under
            one (fit would fail only when it first writes there, after training), an unknown
            gradient_checkpointing policy, or a gradient_accumulation_steps that is not a positive integer.
    """

    evaluator: Callable | None
    epochs: int
    steps_per_epoch: int | None
    scheduler: str
    warmup_steps: int
    optimizer_params: dict[str, Any] | None
    weight_decay: float
    evaluation_steps: int
    output_path: str | None
    save_best_model: bool
    max_grad_norm: float
    use_amp: bool
    callback: Callable[[float, int, int], None] | None
    show_progress_bar: bool
    checkpoint_path: str | None
    checkpoint_save_steps: int
    checkpoint_save_total_limit: int
    resume_from_checkpoint: bool | str
    seed: int
    data_parallel: str
    use_dropout: bool
    gradient_checkpointing: bool | str = False
    gradient_accumulation_steps: int = 1

    def __post_init__(self) -> None:
        check_folder_option("output_path", self.output_path)
        check_folder_option("checkpoint_path", self.checkpoint_path)
        remat_policy(self.gradient_checkpointing)
        check_accumulation_steps(self.gradient_accumulation_steps)

    def lr_and_optimizer_params(self) -> tuple[float, dict[str, Any]]:
        """(lr, the other optimizer_params): lr 2e-5 unless optimizer_params names one, as torch's AdamW
        in sentence-transformers' fit."""
        optimizer_params = dict(self.optimizer_params or {})
        return optimizer_params.pop("lr", 2e-5), optimizer_params


def check_folder_option(name: str, value: str | None) -> None:
    """Raises ValueError when the folder `value` of option `name` is an existing file, or lies under one."""
    if not value:
        return
    path = Path(value).absolute()
    existing = next(folder for folder in (path, *path.parents) if folder.exists())
    if not existing.is_dir():
        raise ValueError(f"{name}={str(value)!r} must be a folder, but {existing} is a file.")
