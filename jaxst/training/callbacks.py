"""The callbacks of a training run (`fit` and `SentenceTransformerTrainer` alike), and the built-in ones.

A callback is any object with some of the methods of `TrainerCallback`; the run calls each hook that a
callback defines, in the order the callbacks were given:
    on_train_begin(run)            before the first step (after a resume has restored the state);
    on_step_end(run, logs)         after each step, once its loss is on the host; logs = {"step", "epoch",
                                   "objective", "loss", "grad_norm", "lr"};
    on_evaluate(run, logs)         after each evaluation; logs = {"step", "epoch", "eval": {metric: value},
                                   "score": the primary metric or None};
    on_save(run, step, path)       after a checkpoint of `step` was written to `path`;
    on_train_end(run, result)      after the last step; result = what the run returns.
`run` is the `jaxst.training.fit.TrainingRun` (its `total_steps`, `model`, `output_dir`, ...).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

from jaxst.io.model_card import TrainingDataset

HOOKS = ("on_train_begin", "on_step_end", "on_evaluate", "on_save", "on_train_end")
METRICS_FILE = "metrics.jsonl"


class TrainerCallback:
    """A callback that does nothing: subclass it and override the hooks you need (see the module doc)."""

    def on_train_begin(self, run: Any) -> None:
        pass

    def on_step_end(self, run: Any, logs: dict[str, Any]) -> None:
        pass

    def on_evaluate(self, run: Any, logs: dict[str, Any]) -> None:
        pass

    def on_save(self, run: Any, step: int, path: Path) -> None:
        pass

    def on_train_end(self, run: Any, result: dict[str, Any]) -> None:
        pass


def check_callbacks(callbacks: Any) -> tuple[Any, ...]:
    """The callbacks as a tuple; each must define at least one hook.

    Raises:
        TypeError: naming the callback (its index and type) that defines none of HOOKS.
    """
    callbacks = tuple(callbacks or ())
    for index, callback in enumerate(callbacks):
        if isinstance(callback, type):
            raise TypeError(f"callbacks[{index}] is the class {callback.__name__}; pass an instance of it.")
        if not any(callable(getattr(callback, hook, None)) for hook in HOOKS):
            raise TypeError(
                f"callbacks[{index}] ({type(callback).__name__}) has none of the hooks {', '.join(HOOKS)}."
            )
    return callbacks


class ProgressBar(TrainerCallback):
    """A tqdm bar over the run's steps, showing the last loss and gradient norm."""

    def __init__(self) -> None:
        self.bar: tqdm | None = None

    def on_train_begin(self, run: Any) -> None:
        self.bar = tqdm(total=run.total_steps, initial=run.start_step, desc="Training")

    def on_step_end(self, run: Any, logs: dict[str, Any]) -> None:
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{logs['loss']:.4f}", grad_norm=f"{logs['grad_norm']:.4f}")

    def on_train_end(self, run: Any, result: dict[str, Any]) -> None:
        self.bar.close()


class JsonlLogger(TrainerCallback):
    """Appends one JSON line per logged step and per evaluation to `path` (on process 0 only).

    Args:
        path: the file (its folder is created).
        logging_steps: 1 writes every step's record; n > 1 writes a record every n steps whose "loss"
            and "grad_norm" are the means over those n steps (the Hugging Face Trainer's logging_steps).
    """

    def __init__(self, path: str | Path, *, logging_steps: int = 1) -> None:
        if logging_steps < 1:
            raise ValueError(f"logging_steps must be >= 1, got {logging_steps}.")
        self.path, self.logging_steps = Path(path), logging_steps
        self.window: list[dict[str, Any]] = []

    def write(self, record: dict[str, Any]) -> None:
        if jax.process_index() == 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")

    def on_step_end(self, run: Any, logs: dict[str, Any]) -> None:
        self.window.append(logs)
        if logs["step"] % self.logging_steps:
            return
        record = dict(logs)
        if self.logging_steps > 1:
            record["loss"] = float(np.mean([w["loss"] for w in self.window]))
            record["grad_norm"] = float(np.mean([w["grad_norm"] for w in self.window]))
        self.window = []
        self.write(record)

    def on_evaluate(self, run: Any, logs: dict[str, Any]) -> None:
        self.write({key: logs[key] for key in ("step", "epoch", "eval")})


class TensorBoardLogger(JsonlLogger):
    """Writes the logged losses, gradient norms, learning rates and evaluation metrics as TensorBoard scalars
    into the folder `log_dir`, through `torch.utils.tensorboard` (needs torch and tensorboard installed)."""

    def __init__(self, log_dir: str | Path, *, logging_steps: int = 1) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise ImportError(
                f"report_to='tensorboard' needs torch and tensorboard installed ({error})."
            ) from None
        super().__init__(Path(log_dir), logging_steps=logging_steps)
        self.writer = SummaryWriter(log_dir=str(log_dir)) if jax.process_index() == 0 else None

    def write(self, record: dict[str, Any]) -> None:
        if self.writer is None:
            return
        scalars = {f"eval/{k}": v for k, v in record.get("eval", {}).items()}
        scalars |= {f"train/{k}": record[k] for k in ("loss", "grad_norm", "lr") if k in record}
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, record["step"])

    def on_train_end(self, run: Any, result: dict[str, Any]) -> None:
        if self.writer is not None:
            self.writer.close()


class ModelCardCallback(TrainerCallback):
    """Records on `run.model.model_card_data` (`jaxst.io.model_card.ModelCardData`) what the model card says
    of the run: each objective's dataset (named `train_{index}`), its size and loss, the hyperparameters at
    the start, and the metrics of each evaluation (the last one stays)."""

    def on_train_begin(self, run: Any) -> None:
        data, options = run.model.model_card_data, run.options
        data.train_datasets = [
            TrainingDataset(f"train_{o.index}", len(o.loader.dataset), type(o.loss).__name__)
            for o in run.objectives
        ]
        lr, _ = options.lr_and_optimizer_params()
        data.hyperparameters = {
            "per_device_train_batch_size": run.objectives[0].loader.batch_size,
            "num_train_epochs": options.epochs,
            "max_steps": run.total_steps,
            "learning_rate": lr,
            "weight_decay": options.weight_decay,
            "lr_scheduler_type": options.scheduler,
            "warmup_steps": options.warmup_steps,
            "warmup_ratio": options.warmup_ratio,
            "max_grad_norm": options.max_grad_norm,
            "gradient_accumulation_steps": options.gradient_accumulation_steps,
            "seed": options.seed,
            "bf16": options.use_amp,
        }
        data.eval_metrics = {}

    def on_evaluate(self, run: Any, logs: dict[str, Any]) -> None:
        run.model.model_card_data.eval_metrics = dict(logs["eval"])


class ScoreCallback(TrainerCallback):
    """Calls sentence-transformers' fit `callback(score, epoch, steps)` after each evaluation with a score."""

    def __init__(self, callback: Callable[[float, int, int], None]) -> None:
        self.callback = callback

    def on_evaluate(self, run: Any, logs: dict[str, Any]) -> None:
        if logs["score"] is not None:
            self.callback(logs["score"], logs["epoch"], logs["step"])


def call_hook(callbacks: tuple[Any, ...], hook: str, *args: Any) -> None:
    """Calls `hook(*args)` on every callback that defines it, in order."""
    for callback in callbacks:
        method = getattr(callback, hook, None)
        if callable(method):
            method(*args)
