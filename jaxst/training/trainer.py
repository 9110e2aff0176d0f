"""`SentenceTransformerTrainer`: sentence-transformers' v3+ training API, on fit's engine.

The Trainer turns its datasets into fit's data loaders (`jaxst.training.trainer_data`), its losses into
fit's objectives, and `SentenceTransformerTrainingArguments` into `FitOptions`, then runs the same
`jaxst.training.fit.TrainingRun` as `fit`: one compiled step, one checkpoint format, one evaluation.

How it differs from sentence-transformers' Trainer (on PyTorch and transformers):
- only full batches train (static shapes): an epoch has len(dataset) // batch_size steps per dataset;
- checkpoints are jaxst's (`<output_dir>/checkpoints/<step>`: the train state and the data position, see
  `jaxst.training.checkpoint`), not model folders; `trainer.save_model()` writes the model;
- load_best_model_at_end keeps the best evaluation's parameters in host memory (a resumed run knows the
  best score so far but keeps only improvements made after the resume);
- the evaluation loss runs on one device, over the evaluation datasets in order (sentence-transformers
  shuffles them as the training data: a loss with in-batch negatives then sees other batches).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax

from jaxst.losses.base import Loss
from jaxst.training.callbacks import (
    METRICS_FILE,
    JsonlLogger,
    ProgressBar,
    TensorBoardLogger,
    check_callbacks,
)
from jaxst.training.data import DataLoader
from jaxst.training.eval_loss import EvaluationLoss
from jaxst.training.fit import TrainingRun
from jaxst.training.fit_options import FitOptions
from jaxst.training.objectives import Objective, check_objectives, epoch_plan
from jaxst.training.precision import forward_in_dtype
from jaxst.training.trainer_data import (
    dataset_prompts,
    make_loader,
    named_datasets,
    text_columns,
    with_prompts,
)
from jaxst.training.training_args import SentenceTransformerTrainingArguments, resolve_steps

CHECKPOINTS_FOLDER = "checkpoints"
# sentence-transformers Trainer arguments jaxst has no use for; accepted only as None.
UNSUPPORTED_ARGUMENTS = (
    "data_collator",
    "tokenizer",
    "processing_class",
    "model_init",
    "compute_metrics",
    "optimizers",
    "preprocess_logits_for_metrics",
)


class TrainOutput(NamedTuple):
    """What `train` returns, as transformers' TrainOutput."""

    global_step: int
    training_loss: float | None
    metrics: dict[str, Any]


class SentenceTransformerTrainer:
    """Trains a jaxst SentenceTransformer with sentence-transformers' Trainer arguments.

    Args:
        model: the jaxst SentenceTransformer (trained in place).
        args: SentenceTransformerTrainingArguments (default: all defaults, output_dir "trainer_output").
        train_dataset: a `datasets.Dataset`, or a `DatasetDict` / dict of them (one objective each, ordered
            by `args.multi_dataset_batch_sampler`). The label column is "label" or "score" (also "labels",
            "scores"); a "dataset_name" column is ignored; the other columns are the loss's texts, in order.
        eval_dataset: as train_dataset (the same names for a dict): its loss ("eval_loss", or
            "eval_<name>_loss" per dataset) is computed at each evaluation.
        loss: a jaxst loss, a callable that makes one from the model (e.g. a loss class), or a dict of them
            keyed as train_dataset; default CoSENTLoss, as sentence-transformers.
        evaluator: a jaxst evaluator (or a list of them, run as a SequentialEvaluator), run at each
            evaluation.
        callbacks: `jaxst.training.callbacks` objects, called after the built-in ones.
        mesh: a `jax.sharding.Mesh` to train on with sharded parameters (keyword only; jaxst's own, as
            `fit(..., mesh=...)`: see `jaxst.training.sharding`).

    Raises:
        ValueError / TypeError: before training, naming the problem: a missing model, datasets and losses
            whose names differ, a sentence-transformers argument jaxst does not use, a bad callback, ...
    """

    def __init__(
        self,
        model: Any = None,
        args: SentenceTransformerTrainingArguments | None = None,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        loss: Any = None,
        evaluator: Any = None,
        callbacks: Sequence[Any] | None = None,
        *,
        mesh: Any = None,
        **unsupported: Any,
    ) -> None:
        unknown = sorted(set(unsupported) - set(UNSUPPORTED_ARGUMENTS))
        if unknown:
            raise TypeError(f"SentenceTransformerTrainer got unknown arguments {unknown}.")
        given = sorted(name for name, value in unsupported.items() if value not in (None, (None, None)))
        if given:
            raise ValueError(
                f"SentenceTransformerTrainer arguments {given} have no effect in jaxst: the tokenizer, the "
                "batching and the AdamW optimizer are the model's and the training arguments'."
            )
        if model is None:
            raise ValueError("SentenceTransformerTrainer needs a model.")
        if train_dataset is None:
            raise ValueError("SentenceTransformerTrainer needs a train_dataset.")
        self.model = model
        self.mesh = mesh
        self.args = args if args is not None else SentenceTransformerTrainingArguments()
        if not isinstance(self.args, SentenceTransformerTrainingArguments):
            raise TypeError(
                "args must be a jaxst SentenceTransformerTrainingArguments, got "
                f"{type(self.args).__module__}.{type(self.args).__name__}."
            )
        self.train_dataset = named_datasets(train_dataset, "train_dataset")
        self.eval_dataset = None if eval_dataset is None else named_datasets(eval_dataset, "eval_dataset")
        self.loss = self.losses_by_dataset(loss)
        without_loss = set(self.eval_dataset or ()) - set(self.loss)
        if without_loss:
            raise ValueError(
                f"eval_dataset names {sorted(map(str, without_loss))} have no loss; the losses are for "
                f"{sorted(map(str, self.loss))}."
            )
        if self.args.eval_strategy != "no" and eval_dataset is None and evaluator is None:
            raise ValueError(
                f"eval_strategy={self.args.eval_strategy!r} needs an eval_dataset or an evaluator."
            )
        if isinstance(evaluator, list | tuple):
            from jaxst.evaluation import SequentialEvaluator

            evaluator = SequentialEvaluator(evaluator)
        self.evaluator = evaluator
        self.callbacks = list(check_callbacks(callbacks))
        self.last_run: TrainingRun | None = None

    def losses_by_dataset(self, loss: Any) -> dict[str | None, Loss]:
        """{dataset name: bound loss}, one per training dataset."""
        if loss is None:
            from jaxst.losses import CoSENTLoss

            loss = CoSENTLoss
        if not isinstance(loss, Mapping):
            return {name: self.bind(loss, name) for name in self.train_dataset}
        if set(loss) != set(self.train_dataset):
            raise ValueError(
                f"loss is a dict for datasets {sorted(map(str, loss))}, but train_dataset has datasets "
                f"{sorted(map(str, self.train_dataset))}: give one loss per dataset."
            )
        return {name: self.bind(loss[name], name) for name in self.train_dataset}

    def bind(self, loss: Any, name: str | None) -> Loss:
        if not isinstance(loss, Loss) and callable(loss):
            loss = loss(self.model)
        if not isinstance(loss, Loss):
            where = "loss" if name is None else f"loss[{name!r}]"
            raise TypeError(f"{where} must be a jaxst loss, got {type(loss).__name__}.")
        return loss

    def add_callback(self, callback: Any) -> None:
        """Adds a callback, called after the others."""
        self.callbacks.append(check_callbacks([callback])[0])

    # ------------------------------------------------------------------------------------------ data
    def loaders(self, datasets: dict[str | None, Any], *, train: bool) -> list[tuple[str | None, DataLoader]]:
        """(name, loader) of each dataset: training ones batched by args.batch_sampler, shuffled by the seed,
        per_device_train_batch_size on each local device; evaluation ones in order."""
        args = self.args
        names = list(datasets)
        loaders = []
        for name, dataset in datasets.items():
            prompts = dataset_prompts(args.prompts, name, names, text_columns(dataset))
            if train:
                loader = make_loader(
                    dataset,
                    batch_sampler=args.batch_sampler,
                    batch_size=args.per_device_train_batch_size * jax.local_device_count(),
                    drop_last=args.dataloader_drop_last,
                    seed=args.seed if args.data_seed is None else args.data_seed,
                    prompts=prompts,
                )
            else:
                loader = DataLoader(
                    with_prompts(dataset, prompts), batch_size=args.per_device_eval_batch_size
                )
            loaders.append((name, loader))
        return loaders

    def objectives(self) -> list[Objective]:
        """fit's training objectives: one (loader, loss) per training dataset, checked."""
        return check_objectives(
            [(loader, self.loss[name]) for name, loader in self.loaders(self.train_dataset, train=True)]
        )

    # --------------------------------------------------------------------------------------- options
    def fit_options(self, objectives: list[Any], resume_from_checkpoint: bool | str | None) -> FitOptions:
        """The engine's options for these objectives (the step counts resolved against the run's length)."""
        args = self.args
        output_dir = Path(args.output_dir)
        steps_per_epoch = len(
            epoch_plan(objectives, args.multi_dataset_batch_sampler, rounds=None, seed=args.seed, epoch=0)
        )
        total = args.max_steps if args.max_steps > 0 else math.ceil(args.num_train_epochs * steps_per_epoch)
        logging_steps = resolve_steps(args.logging_steps, total)
        callbacks = [] if args.disable_tqdm else [ProgressBar()]
        if "jsonl" in args.report_to:
            callbacks.append(JsonlLogger(output_dir / METRICS_FILE, logging_steps=logging_steps))
        if "tensorboard" in args.report_to:
            callbacks.append(TensorBoardLogger(output_dir / "runs", logging_steps=logging_steps))
        if resume_from_checkpoint is None:
            resume_from_checkpoint = args.resume_from_checkpoint or False
        if resume_from_checkpoint is True:
            resume_from_checkpoint = str(output_dir / CHECKPOINTS_FOLDER)
        optimizer_params = {
            "lr": args.learning_rate,
            "betas": (args.adam_beta1, args.adam_beta2),
            "eps": args.adam_epsilon,
        }
        return FitOptions(
            evaluator=self.evaluator,
            epochs=args.num_train_epochs,
            max_steps=total,
            multi_dataset_batch_sampler=args.multi_dataset_batch_sampler,
            scheduler=args.scheduler,
            warmup_steps=resolve_steps(args.warmup_steps, total) if args.warmup_steps else 0,
            optimizer_params=optimizer_params,
            weight_decay=args.weight_decay,
            evaluation_steps=resolve_steps(args.eval_steps, total) if args.eval_strategy == "steps" else 0,
            evaluate_at_epoch_end=args.eval_strategy == "epoch",
            evaluate_at_end=args.eval_strategy == "steps",
            eval_loss=self.evaluation_loss(objectives),
            evaluation_output_path=str(output_dir / "eval"),
            output_path=None,
            save_best_model=False,
            save_final_model=False,
            load_best_model_at_end=args.load_best_model_at_end,
            metric_for_best_model=args.metric_for_best_model,
            greater_is_better=args.greater_is_better,
            max_grad_norm=args.max_grad_norm,
            use_amp=args.bf16 or args.fp16,
            callbacks=(*callbacks, *self.callbacks),
            checkpoint_path=None if args.save_strategy == "no" else str(output_dir / CHECKPOINTS_FOLDER),
            checkpoint_save_steps=resolve_steps(args.save_steps, total)
            if args.save_strategy == "steps"
            else 0,
            checkpoint_at_epoch_end=args.save_strategy == "epoch",
            checkpoint_at_end=args.save_strategy == "steps",
            checkpoint_save_total_limit=args.save_total_limit or 0,
            resume_from_checkpoint=resume_from_checkpoint,
            seed=args.seed,
            gradient_accumulation_steps=args.gradient_accumulation_steps,
            gradient_checkpointing=args.gradient_checkpointing,
            mesh=self.mesh,
        )

    def evaluation_loss(self, objectives: list[Any]) -> EvaluationLoss | None:
        if self.eval_dataset is None:
            return None
        index = {name: i for i, name in enumerate(self.train_dataset)}
        datasets = [
            ("loss" if name is None else f"{name}_loss", loader, objectives[index[name]].loss, index[name])
            for name, loader in self.loaders(self.eval_dataset, train=False)
        ]
        forward = forward_in_dtype(self.model, "bfloat16" if self.args.bf16 or self.args.fp16 else None)
        return EvaluationLoss(self.model, forward, datasets)

    # ----------------------------------------------------------------------------------------- train
    def train(self, resume_from_checkpoint: bool | str | None = None) -> TrainOutput:
        """Trains the model in place.

        Args:
            resume_from_checkpoint: True: the newest checkpoint in `<output_dir>/checkpoints`; a path: that
                checkpoint folder (or the newest in it); None: `args.resume_from_checkpoint`.

        Returns:
            TrainOutput(global_step, training_loss (the mean over this call's steps), metrics
            {"train_loss", "best_metric"}).
        """
        objectives = self.objectives()
        options = self.fit_options(objectives, resume_from_checkpoint)
        self.last_run = TrainingRun(self.model, objectives, options)
        result = self.last_run.run()
        metrics = {"train_loss": result["training_loss"], "best_metric": result["best_score"]}
        return TrainOutput(result["global_step"], result["training_loss"], metrics)

    def evaluate(self) -> dict[str, float]:
        """The evaluation loss and the evaluator's metrics of the model as it is, prefixed "eval_".

        The losses' own parameters (e.g. SoftmaxLoss' classifier) are those the last `train` ended with,
        or their initial values before any training."""
        metrics: dict[str, float] = {}
        if self.eval_dataset is not None:
            objectives = self.objectives()
            if self.last_run is not None:
                loss_params = self.last_run.loss_params
            else:
                loss_params = TrainingRun.initial_loss_params(self.model, objectives, self.args.seed)
            metrics |= self.evaluation_loss(objectives)({"model": self.model.params, "losses": loss_params})
        if self.evaluator is not None:
            output = self.evaluator(self.model, output_path=str(Path(self.args.output_dir) / "eval"))
            metrics |= output if isinstance(output, dict) else {"evaluator": output}
        return {f"eval_{key}": float(value) for key, value in metrics.items()}

    def save_model(self, output_dir: str | None = None) -> None:
        """Saves the model (sentence-transformers' folder format) to output_dir, default args.output_dir."""
        self.model.save(output_dir or self.args.output_dir)
