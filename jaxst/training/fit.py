"""`SentenceTransformer.fit`: sentence-transformers' fit API on the jit-compiled data-parallel step.

Per epoch, for `steps_per_epoch` rounds, each objective in turn (round robin, as sentence-transformers)
takes one batch: its texts are tokenized and packed end to end into rows per device
(`jaxst.training.batching`), the batch is split over the devices, and that objective's compiled step
runs. A loss with a frozen guide model (GISTEmbedLoss) gets the guide's embeddings of the batch with it
(`jaxst.training.guide`). Loss, gradient norm and learning rate go to a tqdm bar and to
`metrics.jsonl`; the evaluator runs every `evaluation_steps` and
at each epoch's end; checkpoints (train state + data position) are written every
`checkpoint_save_steps`, atomically, and a resumed run continues bit for bit.

Static shapes: only full batches train. An epoch has `len(dataset) // batch_size` rounds, the count
sentence-transformers' fit schedules with (a dataset smaller than one batch trains as that one batch).
Packed rows come in a few shapes (a bucket row length, a bucket row count), so an epoch compiles each
objective's step once per shape it meets: a handful for sentence data. GradCache losses (which cut a
batch into texts) and guided losses (whose guide embeds the padded texts) train on padded batches
instead, padded to a few training bucket lengths.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

from jaxst.lora.trainable import split_trainable
from jaxst.losses.base import Loss
from jaxst.training.batching import batch_arrays
from jaxst.training.checkpoint import Checkpointer
from jaxst.training.data import DataLoader, ExampleBatch
from jaxst.training.fit_options import FitOptions
from jaxst.training.guide import GuideEmbedder
from jaxst.training.objectives import Objective, check_objectives
from jaxst.training.optim import make_optimizer, make_schedule
from jaxst.training.parallel import MeshParallel, PmapParallel, check_divisible
from jaxst.training.precision import forward_in_dtype
from jaxst.training.remat import with_gradient_checkpointing
from jaxst.training.step import init_train_state, make_train_step

METRICS_FILE = "metrics.jsonl"

logger = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """The training loss or the parameters a step produced became NaN or infinite; training stopped
    before saving, evaluating or checkpointing that state."""


def make_parallel(data_parallel: str, batch_sizes: Sequence[int]) -> PmapParallel | MeshParallel:
    """The data-parallel driver. fit never pads a batch: under pmap it uses the most local devices that
    divide every objective's batch size (with a warning when that is not all of them); under shard_map
    (several processes) a batch size the global device count does not divide is an error."""
    if data_parallel == "auto":
        data_parallel = "shard_map" if jax.process_count() > 1 else "pmap"
    if data_parallel == "shard_map":
        parallel = MeshParallel()
        for batch_size in batch_sizes:
            check_divisible(batch_size, parallel.num_devices)
        return parallel
    if data_parallel != "pmap":
        raise ValueError(f"Unknown data_parallel {data_parallel!r}; known: auto, pmap, shard_map.")
    devices = jax.local_devices()
    count = max(n for n in range(1, len(devices) + 1) if all(b % n == 0 for b in batch_sizes))
    if count < len(devices):
        logger.warning(
            "Training on %d of %d devices: the batch sizes %s are not all multiples of %d.",
            count,
            len(devices),
            sorted(set(batch_sizes)),
            len(devices),
        )
    return PmapParallel(devices[:count])


def check_adapter_dropout(model: Any, use_dropout: bool) -> None:
    """Raises ValueError when training with dropout would need the LoRA dropout, which fit does not
    implement: an adapter with lora_dropout > 0 trains with use_dropout=False or lora_dropout=0."""
    config = getattr(model, "lora_config", None)
    if use_dropout and config is not None and config.lora_dropout > 0:
        raise ValueError(
            f"fit does not implement LoraConfig option lora_dropout={config.lora_dropout} (dropout on the "
            "input of A); train with use_dropout=False or an adapter with lora_dropout=0.0."
        )


def open_resume_checkpoint(
    resume_from_checkpoint: bool | str, checkpoint_path: str | None
) -> tuple[Checkpointer, int | None]:
    """The checkpointer and step to resume from: True -> newest in checkpoint_path; a path -> that one."""
    if resume_from_checkpoint is True:
        if checkpoint_path is None:
            raise ValueError("resume_from_checkpoint=True needs checkpoint_path.")
        return Checkpointer(checkpoint_path), None
    path = Path(resume_from_checkpoint)
    if not path.is_dir():
        raise FileNotFoundError(f"resume_from_checkpoint: {path} is not a folder.")
    if path.name.isdigit():  # one step's folder
        return Checkpointer(path.parent), int(path.name)
    return Checkpointer(path), None


class TrainingRun:
    """The state of one `fit` call; `fit` documents the arguments."""

    def __init__(self, model: Any, objectives: list[Objective], options: FitOptions):
        self.model, self.objectives, self.options = model, objectives, options
        self.parallel = make_parallel(options.data_parallel, [o.loader.batch_size for o in objectives])
        accumulation = options.gradient_accumulation_steps
        self.steps_per_epoch = options.steps_per_epoch or max(
            1, min(o.full_batches for o in objectives) // accumulation
        )
        self.total_steps = self.steps_per_epoch * options.epochs * len(objectives)
        lr, optimizer_params = options.lr_and_optimizer_params()
        dim = model.get_sentence_embedding_dimension()
        check_adapter_dropout(model, options.use_dropout)
        trained, frozen = split_trainable(model.params)
        params = {
            "model": trained,
            "losses": tuple(
                o.loss.init_params(jax.random.PRNGKey(options.seed + 1 + o.index), dim) for o in objectives
            ),
        }
        schedule_args = dict(
            scheduler=options.scheduler, warmup_steps=options.warmup_steps, total_steps=self.total_steps
        )
        tx = make_optimizer(
            params,
            lr=lr,
            weight_decay=options.weight_decay,
            max_grad_norm=options.max_grad_norm,
            optimizer_params=optimizer_params,
            **schedule_args,
        )
        self.lr_schedule = make_schedule(
            name=options.scheduler,
            lr=lr,
            warmup_steps=options.warmup_steps,
            total_steps=self.total_steps,
        )
        forward = forward_in_dtype(
            with_gradient_checkpointing(model, options.gradient_checkpointing),
            "bfloat16" if options.use_amp else None,
        )
        for o in objectives:
            o.guide = None if o.loss.guide is None else GuideEmbedder(o.loss.guide, model)
            o.step = self.parallel.compile(
                make_train_step(
                    forward,
                    o.loss,
                    tx,
                    objective_index=o.index,
                    use_dropout=options.use_dropout,
                    gradient_accumulation_steps=accumulation,
                )
            )
        self.host_state = init_train_state(params, tx, options.seed, frozen=frozen)
        self.epoch, self.round = 0, 0
        self.checkpointer = (
            Checkpointer(options.checkpoint_path, save_total_limit=options.checkpoint_save_total_limit)
            if options.checkpoint_path
            else None
        )
        if options.resume_from_checkpoint:
            self.resume()
        log_dir = options.output_path or options.checkpoint_path
        self.metrics_file = Path(log_dir) / METRICS_FILE if log_dir else None
        self.best_score: float | None = None
        self.losses: list[float] = []
        # (metrics, step, epoch, objective) of the step dispatched last, its loss not yet read.
        self.pending: tuple[dict[str, Any], int, int, Objective] | None = None

    # ---------------------------------------------------------------------------------- checkpoints
    def position(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "round": self.round,
            "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps,
            "loaders": [o.loader.state_dict() for o in self.objectives],
        }

    def resume(self) -> None:
        resume_from = self.options.resume_from_checkpoint
        checkpointer, step = open_resume_checkpoint(resume_from, self.options.checkpoint_path)
        if checkpointer.latest_step() is None:
            if resume_from is True:
                return  # nothing saved yet: a fresh start, as sentence-transformers
            raise FileNotFoundError(
                f"resume_from_checkpoint={str(resume_from)!r}: no checkpoint in {checkpointer.directory}."
            )
        state, position = checkpointer.restore(self.host_state, step=step)
        for key in ("steps_per_epoch", "total_steps"):
            if position[key] != getattr(self, key):
                raise ValueError(
                    f"Cannot resume: the checkpoint has {key}={position[key]}, this run {getattr(self, key)}."
                )
        for objective, loader_state in zip(self.objectives, position["loaders"], strict=True):
            objective.loader.load_state_dict(loader_state)
        self.host_state, self.epoch, self.round = state, position["epoch"], position["round"]

    # ------------------------------------------------------------------------------------- logging
    def log(self, record: dict[str, Any]) -> None:
        if self.metrics_file is not None and jax.process_index() == 0:
            self.metrics_file.parent.mkdir(parents=True, exist_ok=True)
            with self.metrics_file.open("a") as f:
                f.write(json.dumps(record) + "\n")

    def evaluate(self, state: Any, epoch: int, step: int) -> None:
        evaluator = self.options.evaluator
        if evaluator is None:
            return
        self.model.set_params(state.model_params())
        output_path = self.options.output_path
        eval_dir = str(Path(output_path) / "eval") if output_path else None
        metrics = evaluator(self.model, output_path=eval_dir, epoch=epoch, steps=step)
        if not isinstance(metrics, dict):
            metrics = {"evaluator": metrics}
        key = getattr(evaluator, "primary_metric", None) or "evaluator"
        score = next((float(v) for k, v in metrics.items() if k.endswith(key)), None)
        self.log({"step": step, "epoch": epoch, "eval": {k: float(v) for k, v in metrics.items()}})
        if score is None:
            return
        if self.options.callback is not None:
            self.options.callback(score, epoch, step)
        greater = getattr(evaluator, "greater_is_better", True)
        if self.best_score is None or (score > self.best_score if greater else score < self.best_score):
            self.best_score = score
            if output_path and self.options.save_best_model:
                self.model.save(output_path)

    # ------------------------------------------------------------------------------------ training
    def run(self) -> dict[str, Any]:
        device_state = self.parallel.put_state(self.host_state)
        step = int(self.host_state.step)
        bar = tqdm(
            total=self.total_steps, initial=step, desc="Training", disable=not self.options.show_progress_bar
        )
        evaluation_steps, save_steps = self.options.evaluation_steps, self.options.checkpoint_save_steps
        while self.epoch < self.options.epochs:
            if self.round == 0:
                for objective in self.objectives:
                    objective.start_epoch()
            while self.round < self.steps_per_epoch:
                saved_before = step // save_steps if save_steps > 0 else 0
                for objective in self.objectives:
                    arrays = batch_arrays(
                        self.model,
                        self.next_examples(objective),
                        packed=objective.packed and self.options.gradient_accumulation_steps == 1,
                        num_devices=self.parallel.num_local_devices,
                        agree_max=self.parallel.agree_max,
                    )
                    if objective.guide is not None:
                        arrays["guide_embeddings"] = objective.guide(arrays)
                    batch = self.parallel.put_batch(arrays)
                    device_state, metrics = objective.step(device_state, batch)
                    step += 1
                    # The previous step's loss is read only now, so that preparing the next batch on the
                    # host overlaps this step on the devices.
                    self.record_pending(bar)
                    self.pending = (metrics, step, self.epoch, objective)
                    if evaluation_steps > 0 and step % evaluation_steps == 0:
                        self.record_pending(bar)
                        self.evaluate(self.parallel.get_state(device_state), self.epoch, step)
                self.round += 1
                if self.checkpointer and save_steps > 0 and step // save_steps > saved_before:
                    self.record_pending(bar)  # a non-finite loss or state stops before it is saved
                    self.checkpointer.save(
                        step, self.parallel.get_state(device_state), metadata=self.position()
                    )
            self.record_pending(bar)
            self.evaluate(self.parallel.get_state(device_state), self.epoch, -1)
            self.epoch, self.round = self.epoch + 1, 0
        bar.close()
        final = self.parallel.get_state(device_state)
        self.model.set_params(final.model_params())
        output_path = self.options.output_path
        if output_path and (self.options.evaluator is None or not self.options.save_best_model):
            self.model.save(output_path)
        return {
            "global_step": int(final.step),
            "training_loss": float(np.mean(self.losses)) if self.losses else None,
            "best_score": self.best_score,
        }

    def next_examples(self, objective: Objective) -> ExampleBatch:
        """The examples of `objective`'s next step: its next full batch, or with gradient accumulation the
        next m batches laid end to end (m micro-batches of one padded layout, split inside the step)."""
        batches = [objective.next_batch() for _ in range(self.options.gradient_accumulation_steps)]
        if len(batches) == 1:
            return batches[0]
        texts = [[text for b in batches for text in b.texts[j]] for j in range(len(batches[0].texts))]
        labels = None if batches[0].labels is None else np.concatenate([b.labels for b in batches])
        return ExampleBatch(texts, labels)

    def record_pending(self, bar: tqdm) -> None:
        """Reads the metrics of the last dispatched step (waiting for it), checks that its loss and the
        parameters it produced are finite, logs the loss and the gradient norm. Called before anything
        saves, evaluates or checkpoints the state that step produced."""
        if self.pending is None:
            return
        metrics, step, epoch, objective = self.pending
        self.pending = None
        values = self.parallel.get_metrics(metrics)
        loss, grad_norm = values["loss"], values["grad_norm"]
        self.check_finite(loss, bool(values["params_finite"]), step, objective)
        self.losses.append(loss)
        self.log(
            {
                "step": step,
                "epoch": epoch,
                "objective": objective.index,
                "loss": loss,
                "grad_norm": grad_norm,
                "lr": float(self.lr_schedule(step - 1)),
            }
        )
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", grad_norm=f"{grad_norm:.4f}")

    def check_finite(self, loss: float, params_finite: bool, step: int, objective: Objective) -> None:
        """Raises NonFiniteLossError when the loss of `step` or the parameters it produced are not finite.

        Every checkpoint was written after this check passed for its step, so the newest one is named as
        the last good one.
        """
        if math.isfinite(loss) and params_finite:
            return
        where = f"at step {step} (objective {objective.index}, {type(objective.loss).__name__})"
        if math.isfinite(loss):
            problem = (
                f"The parameters became non-finite (NaN or infinite) {where}, with a finite loss {loss}: "
                "the update overflowed (a too large learning rate?) or a gradient was not finite"
            )
        else:
            problem = f"The training loss is {loss} {where}"
        last = self.checkpointer.latest_step() if self.checkpointer else None
        kept = (
            f" The last good checkpoint is step {last} in {self.checkpointer.directory}."
            if last is not None
            else ""
        )
        raise NonFiniteLossError(f"{problem}; training stopped.{kept}")


def fit(
    model: Any,
    train_objectives: Sequence[tuple[DataLoader, Loss]],
    evaluator: Callable | None = None,
    epochs: int = 1,
    steps_per_epoch: int | None = None,
    scheduler: str = "WarmupLinear",
    warmup_steps: int = 10000,
    optimizer_class: Any = None,
    optimizer_params: dict[str, Any] | None = None,
    weight_decay: float = 0.01,
    evaluation_steps: int = 0,
    output_path: str | None = None,
    save_best_model: bool = True,
    max_grad_norm: float = 1,
    use_amp: bool = False,
    callback: Callable[[float, int, int], None] | None = None,
    show_progress_bar: bool = True,
    checkpoint_path: str | None = None,
    checkpoint_save_steps: int = 500,
    checkpoint_save_total_limit: int = 0,
    resume_from_checkpoint: bool | str = False,
    *,
    seed: int = 42,
    data_parallel: str = "auto",
    use_dropout: bool = True,
    gradient_checkpointing: bool | str = False,
    gradient_accumulation_steps: int = 1,
) -> dict[str, Any]:
    """Trains `model` in place, with sentence-transformers' fit arguments and defaults.

    Beyond sentence-transformers' own arguments, which keep their meaning:
        optimizer_class: None or AdamW only (the update is optax AdamW with torch semantics).
        use_amp: run the encoder in bfloat16; parameters and optimizer state stay float32.
        resume_from_checkpoint: True resumes from the newest checkpoint in `checkpoint_path` (a fresh
            start when there is none, as sentence-transformers), a path resumes from that checkpoint
            folder (the newest checkpoint in it, or the step folder named); a path that holds no
            checkpoint is an error.
        seed: seeds dropout, per step and device (shuffling is the DataLoader's seed).
        data_parallel: "pmap" (this host's devices), "shard_map" (a Mesh over every process's devices),
            or "auto" (shard_map when `jax.process_count() > 1`, else pmap). Batches are never padded:
            pmap uses the most devices that divide the batch sizes, shard_map requires a multiple of
            the global device count.
        use_dropout: train with the encoder's dropout (torch train mode); False is deterministic.
        gradient_checkpointing: recompute each encoder layer in the backward pass (remat), for less
            activation memory at the cost of a second forward pass through the layers; True keeps the
            matmul outputs with weights ("dots_with_no_batch_dims_saveable"), a name of
            `jaxst.models.encoder.REMAT_POLICIES` picks another policy. Gradients do not change.
        gradient_accumulation_steps: m micro-batches per optimizer update: each update takes m batches
            of the dataloader (padded to one shape, never packed) and averages their gradients
            inside the compiled step, so the update equals one step on the m times larger batch. Steps,
            the schedule, warmup_steps, evaluation_steps and checkpoints count updates (an epoch has
            full batches // m of them, as transformers' Trainer counts). Only for separable losses
            (`Loss.separable`: CosineSimilarityLoss, ContrastiveLoss, SoftmaxLoss, MSELoss, ...); an
            in-batch-negative loss is refused: its cached (GradCache) variant gives a large batch exactly.

    Saving: with an evaluator and save_best_model, the best model is saved to output_path when an
    evaluation improves (sentence-transformers' behaviour); otherwise the final model is saved there.

    Non-finite training: after every step the loss and the new parameters (loss parameters included)
    are checked, before that step's state is evaluated, saved or checkpointed; a NaN or infinite one
    stops training with NonFiniteLossError, so every model and checkpoint written is finite.

    Returns:
        {"global_step", "training_loss" (the mean over this call's steps), "best_score"}.

    Raises:
        NonFiniteLossError: the loss or the parameters became NaN or infinite (the message says which,
            and names the step and the last good checkpoint).
        ValueError / TypeError: before the first step: bad objectives, examples or labels that do not
            fit their loss (the example named), a learning rate that is not a positive finite number,
            an output_path or checkpoint_path that is a file, a batch size the device count does not
            divide, an unknown scheduler, ...
        FileNotFoundError: resume_from_checkpoint names a folder without a checkpoint.
        CorruptCheckpointError: the checkpoint to resume from was altered on disk.
    """
    if optimizer_class is not None and getattr(optimizer_class, "__name__", "") != "AdamW":
        raise ValueError(f"Only AdamW is supported as optimizer_class, got {optimizer_class!r}.")
    options = FitOptions(
        evaluator=evaluator,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        scheduler=scheduler,
        warmup_steps=warmup_steps,
        optimizer_params=optimizer_params,
        weight_decay=weight_decay,
        evaluation_steps=evaluation_steps,
        output_path=output_path,
        save_best_model=save_best_model,
        max_grad_norm=max_grad_norm,
        use_amp=use_amp,
        callback=callback,
        show_progress_bar=show_progress_bar,
        checkpoint_path=checkpoint_path,
        checkpoint_save_steps=checkpoint_save_steps,
        checkpoint_save_total_limit=checkpoint_save_total_limit,
        resume_from_checkpoint=resume_from_checkpoint,
        seed=seed,
        data_parallel=data_parallel,
        use_dropout=use_dropout,
        gradient_checkpointing=gradient_checkpointing,
        gradient_accumulation_steps=gradient_accumulation_steps,
    )
    return TrainingRun(model, check_objectives(train_objectives), options).run()
