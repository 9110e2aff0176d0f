"""The training engine (`TrainingRun`) and `SentenceTransformer.fit`, sentence-transformers' fit API on it.

`fit` and `jaxst.training.trainer.SentenceTransformerTrainer` both translate their arguments into
`FitOptions` and run one `TrainingRun`: the same compiled step, checkpoints, evaluation and callbacks.

Per epoch, each step takes one batch of the objective `objectives.epoch_plan` names (fit: each
objective in turn for `steps_per_epoch` rounds, as sentence-transformers; the Trainer may draw a
proportional order): its texts are tokenized and packed end to end into rows per device
(`jaxst.training.batching`), the batch is split over the devices, and that objective's compiled step
runs. A loss with a frozen guide model (GISTEmbedLoss) gets the guide's embeddings of the batch with it
(`jaxst.training.guide`). Loss, gradient norm and learning rate go to the callbacks
(`jaxst.training.callbacks`: fit's tqdm bar and `metrics.jsonl`); the evaluator runs every
`evaluation_steps` and at each epoch's end; checkpoints (train state + data position) are written every
`checkpoint_save_steps`, atomically, and a resumed run continues bit for bit.

Static shapes: only full batches train. An epoch has `len(dataset) // batch_size` rounds, the count
sentence-transformers' fit schedules with (a dataset smaller than one batch trains as that one batch).
Packed rows come in a few shapes (a bucket row length, a bucket row count), so an epoch compiles each
objective's step once per shape it meets: a handful for sentence data. GradCache losses (which cut a
batch into texts) and guided losses (whose guide embeds the padded texts) train on padded batches
instead, padded to a few training bucket lengths.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from jaxst.host_memory import keep_freed_memory
from jaxst.lora.trainable import split_trainable
from jaxst.losses.base import Loss
from jaxst.training.batching import batch_arrays
from jaxst.training.callbacks import (
    METRICS_FILE,
    JsonlLogger,
    ModelCardCallback,
    ProgressBar,
    ScoreCallback,
    call_hook,
    check_callbacks,
)
from jaxst.training.data import DataLoader, ExampleBatch
from jaxst.training.fit_options import FitOptions
from jaxst.training.guide import GuideEmbedder
from jaxst.training.objectives import Objective, check_objectives, epoch_plan
from jaxst.training.optim import make_optimizer, make_schedule
from jaxst.training.parallel import MeshParallel, PmapParallel, check_divisible
from jaxst.training.precision import forward_in_dtype
from jaxst.training.remat import with_gradient_checkpointing
from jaxst.training.sharding import ShardedParallel
from jaxst.training.step import init_train_state, make_train_step

if TYPE_CHECKING:
    from jaxst.training.checkpoint import Checkpointer

logger = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """The training loss or the parameters a step produced became NaN or infinite; training stopped
    before saving, evaluating or checkpointing that state."""


def make_parallel(
    data_parallel: str, batch_sizes: Sequence[int], *, mesh: Any = None, model: Any = None
) -> PmapParallel | MeshParallel | ShardedParallel:
    """The parallel driver. With a `mesh`, `ShardedParallel` with the partition rules of `model`'s encoder
    family (a batch size the mesh's batch axes do not divide is an error). Else data parallelism, which
    never pads a batch:

    - "auto" in one process: shard_map over the most local devices that divide every objective's batch
      size (with a warning when that is not all of them). shard_map rather than pmap: its program
      updates the optimizer state in place, where pmap's copies it first (MiniLM on a CPU: steps 17-25%
      faster, `benchmarks/README.md`).
    - "auto" in several processes, and "shard_map": every process's devices; a batch size the global
      device count does not divide is an error.
    - "pmap": the most local devices that divide every batch size, as "auto" in one process.
    """
    if mesh is not None:
        parallel = ShardedParallel(mesh, model.partition_rules)
        for batch_size in batch_sizes:
            check_divisible(batch_size, parallel.num_devices)
        return parallel
    if data_parallel not in ("auto", "pmap", "shard_map"):
        raise ValueError(f"Unknown data_parallel {data_parallel!r}; known: auto, pmap, shard_map.")
    if data_parallel == "shard_map" or (data_parallel == "auto" and jax.process_count() > 1):
        parallel = MeshParallel()
        for batch_size in batch_sizes:
            check_divisible(batch_size, parallel.num_devices)
        return parallel
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
    return PmapParallel(devices[:count]) if data_parallel == "pmap" else MeshParallel(devices[:count])


def primary_metric(evaluator: Any) -> str:
    """The metric that scores an evaluation: the evaluator's `primary_metric`, else "evaluator"."""
    return getattr(evaluator, "primary_metric", None) or "evaluator"


def best_model_score(metrics: dict[str, float], name: str) -> float | None:
    """The value of metric `name` ("eval_" prefix optional): the key equal to it, else the first key that
    ends with it (evaluators prefix their metrics with their name); None when no key matches."""
    name = name.removeprefix("eval_")
    if name in metrics:
        return metrics[name]
    return next((value for key, value in metrics.items() if key.endswith(name)), None)


def make_checkpointer(path: str | Path, **options: Any) -> Checkpointer:
    """A `Checkpointer` of `path`; orbax-checkpoint (0.2-0.3 s to import) is imported only by runs that
    checkpoint or resume."""
    from jaxst.training.checkpoint import Checkpointer

    return Checkpointer(path, **options)


def open_resume_checkpoint(
    resume_from_checkpoint: bool | str, checkpoint_path: str | None
) -> tuple[Checkpointer, int | None]:
    """The checkpointer and step to resume from: True -> newest in checkpoint_path; a path -> that one."""
    if resume_from_checkpoint is True:
        if checkpoint_path is None:
            raise ValueError("resume_from_checkpoint=True needs checkpoint_path.")
        return make_checkpointer(checkpoint_path), None
    path = Path(resume_from_checkpoint)
    if not path.is_dir():
        raise FileNotFoundError(f"resume_from_checkpoint: {path} is not a folder.")
    if path.name.isdigit():  # one step's folder
        return make_checkpointer(path.parent), int(path.name)
    return make_checkpointer(path), None


class TrainingRun:
    """One training run: the engine of both `fit` and `SentenceTransformerTrainer`.

    Each epoch follows `epoch_plan` (which objective trains at each step); the run stops after
    `total_steps` steps. Evaluation, checkpoints, the best model and the callbacks follow `options`.
    """

    def __init__(self, model: Any, objectives: list[Objective], options: FitOptions):
        self.model, self.objectives, self.options = model, objectives, options
        self.callbacks = (ModelCardCallback(), *check_callbacks(options.callbacks))
        self.parallel = make_parallel(
            options.data_parallel,
            [o.loader.batch_size for o in objectives],
            mesh=options.mesh,
            model=model,
        )
        self.steps_per_epoch = len(self.epoch_plan(0))
        self.total_steps = options.max_steps or math.ceil(options.epochs * self.steps_per_epoch)
        lr, optimizer_params = options.lr_and_optimizer_params()
        warmup_steps = options.warmup_steps or math.ceil(options.warmup_ratio * self.total_steps)
        trained, frozen = split_trainable(model.params)  # a LoRA adapter trains, its base stays frozen
        params = {"model": trained, "losses": self.initial_loss_params(model, objectives, options.seed)}
        schedule_args = dict(
            scheduler=options.scheduler, warmup_steps=warmup_steps, total_steps=self.total_steps
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
            name=options.scheduler, lr=lr, warmup_steps=warmup_steps, total_steps=self.total_steps
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
                    gradient_accumulation_steps=options.gradient_accumulation_steps,
                    **self.parallel.step_options(),
                )
            )
        # One jitted program instead of an eager operation per distinct shape (the AdamW moments' zeros, the
        # key), each compiled apart and, under a second each, never kept by the persistent cache.
        self.host_state = jax.jit(init_train_state, static_argnums=(1, 2))(
            params, tx, options.seed, frozen=frozen
        )
        self.epoch, self.step_in_epoch = 0, 0
        self.best_score: float | None = None
        self.best_params: Any = None
        self.loss_params: Any = None  # the losses' own trained parameters, once the run ended
        self.checkpointer = (
            make_checkpointer(options.checkpoint_path, save_total_limit=options.checkpoint_save_total_limit)
            if options.checkpoint_path
            else None
        )
        if options.resume_from_checkpoint:
            self.resume()
        self.start_step = int(self.host_state.step)
        self.losses: list[float] = []
        # (metrics, step, epoch, objective) of the step dispatched last, its loss not yet read.
        self.pending: tuple[dict[str, Any], int, int, Objective] | None = None

    @staticmethod
    def initial_loss_params(model: Any, objectives: list[Objective], seed: int) -> tuple[Any, ...]:
        """The losses' own parameters at the start of training, one pytree per objective."""
        dim = model.get_sentence_embedding_dimension()
        return tuple(o.loss.init_params(jax.random.PRNGKey(seed + 1 + o.index), dim) for o in objectives)

    def epoch_plan(self, epoch: int) -> list[int]:
        """The objective index of each step of `epoch` (`jaxst.training.objectives.epoch_plan`)."""
        options = self.options
        return epoch_plan(
            self.objectives,
            options.multi_dataset_batch_sampler,
            rounds=options.steps_per_epoch,
            seed=options.seed,
            epoch=epoch,
            batches_per_step=options.gradient_accumulation_steps,
        )

    # ---------------------------------------------------------------------------------- checkpoints
    def position(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps,
            "best_score": self.best_score,
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
        state, position = checkpointer.restore(self.parallel.restore_target(self.host_state), step=step)
        if missing := sorted(set(self.position()) - set(position)):
            raise ValueError(
                f"Cannot resume from {checkpointer.directory}: its data position lacks {missing} (written by "
                "an earlier jaxst, before fit and the Trainer shared one engine); start a new run."
            )
        for key in ("steps_per_epoch", "total_steps"):
            if position[key] != getattr(self, key):
                raise ValueError(
                    f"Cannot resume: the checkpoint has {key}={position[key]}, this run {getattr(self, key)}."
                )
        for objective, loader_state in zip(self.objectives, position["loaders"], strict=True):
            objective.loader.load_state_dict(loader_state)
        self.host_state, self.epoch, self.step_in_epoch = state, position["epoch"], position["step_in_epoch"]
        self.best_score = position["best_score"]

    def save_checkpoint(self, step: int, device_state: Any) -> None:
        """Checkpoints the state of `step`. Checkpoints of this or later steps are left from the run this one
        resumed at an earlier step: they are replaced, as this run goes past them."""
        stale = [s for s in self.checkpointer.all_steps() if s >= step]
        if stale:
            logger.warning("Replacing the checkpoints of steps %s in %s.", stale, self.checkpointer.directory)
            for old in stale:
                self.checkpointer.delete(old)
        self.checkpointer.save(step, self.parallel.state_to_save(device_state), metadata=self.position())
        call_hook(self.callbacks, "on_save", self, step, self.checkpointer.step_dir(step))

    # ---------------------------------------------------------------------------------- evaluation
    def evaluate(self, state: Any, epoch: int, step: int) -> None:
        """Runs the evaluation loss and the evaluator on `state`, tells the callbacks, and keeps (or saves)
        the model when its score is the best so far."""
        options, evaluator = self.options, self.options.evaluator
        if evaluator is None and options.eval_loss is None:
            return
        metrics = options.eval_loss(state.params) if options.eval_loss is not None else {}
        if evaluator is not None:
            self.model.set_params(state.model_params())
            self.share_loss_params(state.params["losses"])
            output = evaluator(
                self.model, output_path=options.evaluation_output_path, epoch=epoch, steps=step
            )
            metrics |= {
                k: float(v)
                for k, v in (output if isinstance(output, dict) else {"evaluator": output}).items()
            }
        name = options.metric_for_best_model or (
            primary_metric(evaluator) if evaluator is not None else "loss"
        )
        score = best_model_score(metrics, name)
        call_hook(
            self.callbacks,
            "on_evaluate",
            self,
            {"step": step, "epoch": epoch, "eval": metrics, "score": score},
        )
        if score is None:
            if options.metric_for_best_model is not None:
                raise KeyError(
                    f"metric_for_best_model={options.metric_for_best_model!r} is not among the evaluation "
                    f"metrics {sorted(metrics)}."
                )
            return
        greater = options.greater_is_better
        if greater is None:
            greater = not name.endswith("loss") and getattr(evaluator, "greater_is_better", True)
        if self.best_score is None or (score > self.best_score if greater else score < self.best_score):
            self.best_score = score
            if options.load_best_model_at_end:
                self.best_params = jax.device_get(state.model_params())
            if options.output_path and options.save_best_model:
                self.model.set_params(state.model_params())
                self.model.save(options.output_path)

    # ------------------------------------------------------------------------------------ training
    def run(self) -> dict[str, Any]:
        """Trains to the end (`train`); on the CPU, glibc keeps the memory a step frees for the next step
        (`jaxst.host_memory.keep_freed_memory`)."""
        on_cpu = jax.default_backend() == "cpu"
        if on_cpu and jax.config.read("jax_cpu_enable_async_dispatch"):
            logger.info(
                "JAX's CPU backend dispatches asynchronously (made before jaxst was imported, or kept with "
                "JAXST_CPU_ASYNC_DISPATCH): each step's temporary buffer is then mapped anew, 10-20%% of a "
                "MiniLM step; import jaxst before using JAX to avoid it (jaxst.host_memory)."
            )
        with keep_freed_memory() if on_cpu else contextlib.nullcontext():
            return self.train()

    def train(self) -> dict[str, Any]:
        """Runs the steps, evaluations and checkpoints to `total_steps`, then sets the model's parameters
        (the best ones, when an evaluator picks them) and returns fit's result."""
        device_state = self.parallel.put_state(self.host_state)
        # The devices hold the state from here on: a host copy of the parameters and AdamW's moments kept
        # through the run would add their size again to the peak memory.
        self.host_state = None
        step = self.start_step
        call_hook(self.callbacks, "on_train_begin", self)
        options = self.options
        evaluation_steps, save_steps = options.evaluation_steps, options.checkpoint_save_steps
        save_steps = save_steps if self.checkpointer else 0
        while step < self.total_steps:
            plan = self.epoch_plan(self.epoch)
            if self.step_in_epoch == 0:
                for objective in self.objectives:
                    objective.start_epoch()
            while self.step_in_epoch < len(plan) and step < self.total_steps:
                objective = self.objectives[plan[self.step_in_epoch]]
                arrays = batch_arrays(
                    self.model,
                    self.next_examples(objective),
                    packed=objective.packed and options.gradient_accumulation_steps == 1,
                    num_devices=self.parallel.num_local_devices,
                    agree_max=self.parallel.agree_max,
                )
                if objective.guide is not None:
                    arrays["guide_embeddings"] = objective.guide(arrays)
                batch = self.parallel.put_batch(arrays)
                device_state, metrics = objective.step(device_state, batch)
                step += 1
                self.step_in_epoch += 1
                # The previous step's loss is read only now, so that preparing the next batch on the
                # host overlaps this step on the devices.
                self.record_pending()
                self.pending = (metrics, step, self.epoch, objective)
                if evaluation_steps > 0 and step % evaluation_steps == 0:
                    self.record_pending()
                    self.evaluate(self.parallel.get_state(device_state), self.epoch, step)
                if save_steps > 0 and step % save_steps == 0:
                    self.record_pending()  # a non-finite loss or state stops before it is saved
                    self.save_checkpoint(step, device_state)
            # The epoch is over, or the run is (max_steps or a fractional epoch count).
            self.record_pending()
            if options.evaluate_at_epoch_end:
                self.evaluate(self.parallel.get_state(device_state), self.epoch, -1)
            self.epoch, self.step_in_epoch = self.epoch + 1, 0
            if (
                self.checkpointer
                and options.checkpoint_at_epoch_end
                and step != self.checkpointer.latest_step()
            ):
                self.save_checkpoint(step, device_state)
        self.record_pending()
        if options.evaluate_at_end and evaluation_steps > 0 and step % evaluation_steps:
            self.evaluate(self.parallel.get_state(device_state), self.epoch - 1, step)
        if self.checkpointer and options.checkpoint_at_end and step != self.checkpointer.latest_step():
            self.save_checkpoint(step, device_state)
        final = self.parallel.get_state(device_state)
        self.loss_params = final.params["losses"]
        self.share_loss_params(self.loss_params)
        self.model.set_params(self.best_params if self.best_params is not None else final.model_params())
        output_path = options.output_path
        if (
            output_path
            and options.save_final_model
            and (options.evaluator is None or not options.save_best_model)
        ):
            self.model.save(output_path)
        result = {
            "global_step": int(final.step),
            "training_loss": float(np.mean(self.losses)) if self.losses else None,
            "best_score": self.best_score,
        }
        call_hook(self.callbacks, "on_train_end", self, result)
        return result

    def next_examples(self, objective: Objective) -> ExampleBatch:
        """The examples of `objective`'s next step: its next full batch, or with gradient accumulation the
        next m batches laid end to end (m micro-batches of one padded layout, split inside the step)."""
        batches = [objective.next_batch() for _ in range(self.options.gradient_accumulation_steps)]
        if len(batches) == 1:
            return batches[0]
        texts = [[text for b in batches for text in b.texts[j]] for j in range(len(batches[0].texts))]
        labels = None if batches[0].labels is None else np.concatenate([b.labels for b in batches])
        return ExampleBatch(texts, labels)

    def share_loss_params(self, loss_params: tuple[Any, ...]) -> None:
        """Puts each loss's trained parameters (SoftmaxLoss' classifier, ...) on its `params` attribute, as
        sentence-transformers' loss modules hold theirs: for evaluators that read them
        (LabelAccuracyEvaluator) and for the user after training. Losses without parameters get none."""
        for objective, params in zip(self.objectives, jax.device_get(loss_params), strict=True):
            if params is not None:
                objective.loss.params = params

    def record_pending(self) -> None:
        """Reads the metrics of the last dispatched step (waiting for it), checks that its loss and the
        parameters it produced are finite, and hands its logs to the callbacks. Called before anything
        saves, evaluates or checkpoints the state that step produced."""
        if self.pending is None:
            return
        metrics, step, epoch, objective = self.pending
        self.pending = None
        values = self.parallel.get_metrics(metrics)
        loss, grad_norm = values["loss"], values["grad_norm"]
        self.check_finite(loss, bool(values["params_finite"]), step, objective)
        self.losses.append(loss)
        logs = {
            "step": step,
            "epoch": epoch,
            "objective": objective.index,
            "loss": loss,
            "grad_norm": grad_norm,
            "lr": float(self.lr_schedule(step - 1)),
        }
        call_hook(self.callbacks, "on_step_end", self, logs)

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
    mesh: Any = None,
    use_dropout: bool = True,
    gradient_checkpointing: bool | str = False,
    gradient_accumulation_steps: int = 1,
    callbacks: Sequence[Any] = (),
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
        data_parallel: "auto" (shard_map; in one process over the most local devices that divide the
            batch sizes), "pmap" (this host's devices, the most that divide the batch sizes) or
            "shard_map" (a Mesh over every process's devices, whose count must divide the batch sizes).
            Batches are never padded (`make_parallel`).
        mesh: a `jax.sharding.Mesh` with axes among "data", "fsdp", "model": parameters and optimizer
            state sharded by the encoder family's partition rules (FSDP over "fsdp", tensor parallelism
            over "model"), the batch split over "data" x "fsdp", one compiled step over the global batch
            (`jaxst.training.sharding`); in-batch negatives span the global batch. Excludes
            data_parallel; batch sizes must be multiples of the "data" x "fsdp" size.
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
        callbacks: more `jaxst.training.callbacks` objects, called after the built-in ones (the progress
            bar, `metrics.jsonl` in output_path or else checkpoint_path, and `callback`).

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
    log_dir = output_path or checkpoint_path
    callbacks = [
        *([ProgressBar()] if show_progress_bar else []),
        *([JsonlLogger(Path(log_dir) / METRICS_FILE)] if log_dir else []),
        *([ScoreCallback(callback)] if callback is not None else []),
        *callbacks,
    ]
    options = FitOptions(
        evaluator=evaluator,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        scheduler=scheduler,
        warmup_steps=warmup_steps,
        optimizer_params=optimizer_params,
        weight_decay=weight_decay,
        evaluation_steps=evaluation_steps,
        evaluation_output_path=str(Path(output_path) / "eval") if output_path else None,
        output_path=output_path,
        save_best_model=save_best_model,
        max_grad_norm=max_grad_norm,
        use_amp=use_amp,
        callbacks=tuple(callbacks),
        checkpoint_path=checkpoint_path,
        checkpoint_save_steps=checkpoint_save_steps,
        checkpoint_save_total_limit=checkpoint_save_total_limit,
        resume_from_checkpoint=resume_from_checkpoint,
        seed=seed,
        data_parallel=data_parallel,
        mesh=mesh,
        use_dropout=use_dropout,
        gradient_checkpointing=gradient_checkpointing,
        gradient_accumulation_steps=gradient_accumulation_steps,
    )
    return TrainingRun(model, check_objectives(train_objectives), options).run()
