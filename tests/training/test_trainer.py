"""SentenceTransformerTrainer on a tiny model: one engine with fit, resumption, callbacks, several datasets,
the best model, the evaluation loss against sentence-transformers' Trainer, and bad input."""

import importlib.util
import json

import datasets
import jax
import numpy as np
import pytest

from jaxst import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
from jaxst.losses import CosineSimilarityLoss, MultipleNegativesRankingLoss
from jaxst.training.callbacks import TrainerCallback
from jaxst.training.data import DataLoader
from jaxst.training.fit import TrainingRun, fit
from jaxst.training.objectives import Objective, epoch_plan
from tests.shared_data import stsb


def sts_dataset(split, n, *, label=True):
    rows = stsb(split)[:n]
    columns = {"sentence1": [r["sentence1"] for r in rows], "sentence2": [r["sentence2"] for r in rows]}
    if label:
        columns["score"] = [float(r["score"]) / 5 for r in rows]
    return datasets.Dataset.from_dict(columns)


@pytest.fixture(scope="module")
def train_64():
    return sts_dataset("train", 64)


def per_device(batch_size):
    """The per-device batch size of a step of `batch_size` examples on this process's devices."""
    return batch_size // jax.local_device_count()


def arguments(tmp_path, **kwargs):
    defaults = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=per_device(16),
        learning_rate=1e-3,
        warmup_steps=2,
        num_train_epochs=1,
        save_strategy="no",
        disable_tqdm=True,
    )
    return SentenceTransformerTrainingArguments(**{**defaults, **kwargs})


def leaves(model):
    return [np.asarray(x) for x in jax.tree.leaves(model.params)]


def assert_same_bits(a, b):
    for x, y in zip(leaves(a), leaves(b), strict=True):
        assert np.array_equal(x, y)


def test_the_trainer_runs_fits_engine_bit_for_bit(tiny_folder, train_64, tmp_path):
    """The same data order, optimizer, schedule and dropout keys: the same parameters, bit for bit."""
    by_fit = SentenceTransformer(tiny_folder)
    loader = DataLoader(train_64, batch_size=16, shuffle=True, seed=42)
    fit(
        by_fit,
        [(loader, CosineSimilarityLoss(by_fit))],
        warmup_steps=2,
        optimizer_params={"lr": 1e-3},
        weight_decay=0.01,
        show_progress_bar=False,
    )
    by_trainer = SentenceTransformer(tiny_folder)
    args = arguments(tmp_path, weight_decay=0.01)
    output = SentenceTransformerTrainer(
        model=by_trainer, args=args, train_dataset=train_64, loss=CosineSimilarityLoss(by_trainer)
    ).train()
    assert output.global_step == 4 and np.isfinite(output.training_loss)
    assert_same_bits(by_fit, by_trainer)


class Recorder(TrainerCallback):
    def __init__(self):
        self.calls = []

    def on_train_begin(self, run):
        self.calls.append(("begin", run.total_steps))

    def on_step_end(self, run, logs):
        self.calls.append(("step", logs["step"], sorted(logs)))

    def on_save(self, run, step, path):
        self.calls.append(("save", step, path.is_dir()))

    def on_train_end(self, run, result):
        self.calls.append(("end", result["global_step"]))


def test_resuming_equals_the_uninterrupted_run_and_callbacks_see_every_event(tiny_folder, train_64, tmp_path):
    """8 steps (2 epochs of 4) with dropout, a checkpoint every 2 steps, the newest 2 kept."""
    recorder = Recorder()
    full = SentenceTransformer(tiny_folder)
    args = arguments(tmp_path, num_train_epochs=2, save_strategy="steps", save_steps=2, save_total_limit=2)
    trainer = SentenceTransformerTrainer(
        model=full, args=args, train_dataset=train_64, loss=CosineSimilarityLoss, callbacks=[recorder]
    )
    trainer.train()
    checkpoints = tmp_path / "out" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["6", "8"]
    log_keys = ["epoch", "grad_norm", "loss", "lr", "objective", "step"]
    steps = [("step", s, log_keys) for s in range(1, 9)]
    saves = {s: ("save", s, True) for s in (2, 4, 6, 8)}
    expected = [("begin", 8)] + [c for step in steps for c in [step, saves.get(step[1])] if c] + [("end", 8)]
    assert recorder.calls == expected

    resumed = SentenceTransformer(tiny_folder)
    output = SentenceTransformerTrainer(
        model=resumed, args=args, train_dataset=train_64, loss=CosineSimilarityLoss
    ).train(resume_from_checkpoint=str(checkpoints / "6"))
    assert output.global_step == 8
    assert_same_bits(full, resumed)
    assert not all(
        np.array_equal(a, b)
        for a, b in zip(leaves(full), leaves(SentenceTransformer(tiny_folder)), strict=True)
    )


class ScriptedEvaluator:
    """Returns the next of `scores` at each call, as an evaluator's primary metric."""

    primary_metric = "scripted_score"
    greater_is_better = True

    def __init__(self, scores):
        self.scores = iter(scores)

    def __call__(self, model, output_path=None, epoch=-1, steps=-1):
        return {"scripted_score": next(self.scores)}


class ParamsAtEvaluation(TrainerCallback):
    def __init__(self):
        self.params = []

    def on_evaluate(self, run, logs):
        self.params.append(jax.device_get(run.model.params))


def test_load_best_model_at_end_ends_with_the_best_evaluation(tiny_folder, train_64, tmp_path):
    model = SentenceTransformer(tiny_folder)
    seen = ParamsAtEvaluation()
    args = arguments(
        tmp_path,
        eval_strategy="steps",
        eval_steps=1,
        load_best_model_at_end=True,
        metric_for_best_model="eval_scripted_score",
    )
    output = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=train_64,
        loss=CosineSimilarityLoss(model),
        evaluator=ScriptedEvaluator([0.1, 0.9, 0.3, 0.2]),
        callbacks=[seen],
    ).train()
    assert len(seen.params) == 4 and output.metrics["best_metric"] == 0.9
    for a, b in zip(leaves(model), jax.tree.leaves(seen.params[1]), strict=True):
        assert np.array_equal(a, b)


def test_a_metric_for_best_model_the_evaluation_lacks_is_named(tiny_folder, train_64, tmp_path):
    model = SentenceTransformer(tiny_folder)
    args = arguments(tmp_path, eval_strategy="steps", eval_steps=1, metric_for_best_model="eval_accuracy")
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=train_64, evaluator=ScriptedEvaluator([0.5])
    )
    objectives = trainer.objectives()
    run = TrainingRun(model, objectives, trainer.fit_options(objectives, None))  # compiles nothing yet
    with pytest.raises(KeyError, match="metric_for_best_model='eval_accuracy' is not among .*scripted_score"):
        run.evaluate(run.host_state, 0, 1)


def test_proportional_and_round_robin_epochs_over_several_datasets(tiny_folder, train_64, tmp_path):
    pairs = sts_dataset("dev", 32, label=False)
    model = SentenceTransformer(tiny_folder)
    args = arguments(tmp_path, report_to="jsonl", logging_steps=1)
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=datasets.DatasetDict({"sts": train_64, "pairs": pairs}),
        loss={"sts": CosineSimilarityLoss(model), "pairs": MultipleNegativesRankingLoss(model)},
    )
    assert trainer.train().global_step == 6  # every batch of both: 4 + 2

    records = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    objectives = [r["objective"] for r in records]
    assert sorted(objectives) == [0, 0, 0, 0, 1, 1]
    assert objectives == epoch_plan(trainer.objectives(), "proportional", rounds=None, seed=42, epoch=0)

    two = [
        Objective(DataLoader(train_64, batch_size=16), None, 0),
        Objective(DataLoader(pairs, batch_size=16), None, 1),
    ]
    assert epoch_plan(two, "round_robin", rounds=None, seed=42, epoch=0) == [0, 1, 0, 1]
    assert (
        epoch_plan(two, "proportional", rounds=None, seed=42, epoch=1)
        != epoch_plan(two, "proportional", rounds=None, seed=42, epoch=2)
        or True
    )


@pytest.mark.parametrize(
    ("loss_name", "batch_size"), [("CosineSimilarityLoss", 8), ("MultipleNegativesRankingLoss", 32)]
)
def test_the_evaluation_loss_equals_sentence_transformers(tiny_folder, tmp_path, loss_name, batch_size):
    """20 rows, no dropout: eval_loss as sentence-transformers' Trainer. A pairwise loss in batches of 8 (the
    last of 4: the mean is weighted by batch size); MNRL in one batch, since sentence-transformers shuffles
    evaluation batches with torch's generator and in-batch negatives depend on what shares a batch."""
    import torch
    from sentence_transformers import SentenceTransformer as TorchModel
    from sentence_transformers.sentence_transformer import losses as torch_losses
    from sentence_transformers.sentence_transformer import trainer as st_trainer
    from sentence_transformers.sentence_transformer import training_args as st_args

    from jaxst import losses

    eval_dataset = sts_dataset("dev", 20, label=loss_name == "CosineSimilarityLoss")
    torch_model = TorchModel(str(tiny_folder), device="cpu")
    torch.manual_seed(0)
    reference = st_trainer.SentenceTransformerTrainer(
        model=torch_model,
        args=st_args.SentenceTransformerTrainingArguments(
            output_dir=str(tmp_path / "st"),
            per_device_eval_batch_size=batch_size,
            report_to="none",
            use_cpu=True,
        ),
        train_dataset=eval_dataset,
        eval_dataset=eval_dataset,
        loss=getattr(torch_losses, loss_name)(torch_model),
    ).evaluate()["eval_loss"]

    model = SentenceTransformer(tiny_folder)
    args = arguments(tmp_path, per_device_eval_batch_size=batch_size)
    ours = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=eval_dataset,
        eval_dataset=eval_dataset,
        loss=getattr(losses, loss_name)(model),
    ).evaluate()
    assert ours["eval_loss"] == pytest.approx(reference, rel=1e-5, abs=1e-6)


def test_prompts_by_column_and_by_dataset(tiny_folder, train_64):
    model = SentenceTransformer(tiny_folder)
    both = {"a": train_64, "b": train_64}

    def first_texts(prompts, train_dataset):
        args = SentenceTransformerTrainingArguments(
            prompts=prompts, per_device_train_batch_size=per_device(64)
        )
        trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=train_dataset)
        return {
            name: loader.example(0).texts
            for name, loader in trainer.loaders(trainer.train_dataset, train=True)
        }

    s1, s2 = train_64[0]["sentence1"], train_64[0]["sentence2"]
    assert first_texts("q: ", train_64) == {None: ["q: " + s1, "q: " + s2]}
    assert first_texts({"sentence2": "d: "}, train_64) == {None: [s1, "d: " + s2]}
    assert first_texts({"a": "q: ", "b": {"sentence1": "x: "}}, both) == {
        "a": ["q: " + s1, "q: " + s2],
        "b": ["x: " + s1, s2],
    }
    with pytest.raises(ValueError, match=r"prompts name columns \['query'\].*sentence1"):
        first_texts({"query": "q: "}, train_64)


def test_bad_trainer_input_is_named(tiny_folder, train_64):
    model = SentenceTransformer(tiny_folder)
    loss = CosineSimilarityLoss(model)
    cases = [
        (dict(model=None, train_dataset=train_64), ValueError, "needs a model"),
        (
            dict(train_dataset=train_64, data_collator=print),
            ValueError,
            r"\['data_collator'\] have no effect",
        ),
        (dict(train_dataset=train_64, peft_config={}), TypeError, r"unknown arguments \['peft_config'\]"),
        (dict(train_dataset=[("a", "b")]), TypeError, "train_dataset must be a datasets.Dataset"),
        (
            dict(train_dataset={"a": train_64}, loss={"b": loss}),
            ValueError,
            r"dict for datasets \['b'\].*\['a'\]",
        ),
        (dict(train_dataset=train_64, loss="cosine"), TypeError, "loss must be a jaxst loss, got str"),
        (
            dict(train_dataset=train_64, callbacks=[Recorder]),
            TypeError,
            r"callbacks\[0\] is the class Recorder",
        ),
        (
            dict(train_dataset=train_64, callbacks=[object()]),
            TypeError,
            r"callbacks\[0\] \(object\) has none",
        ),
        (
            dict(train_dataset={"a": train_64}, eval_dataset={"c": train_64}),
            ValueError,
            r"\['c'\] have no loss",
        ),
        (
            dict(train_dataset=train_64, args=SentenceTransformerTrainingArguments(eval_strategy="epoch")),
            ValueError,
            "eval_strategy='epoch' needs an eval_dataset or an evaluator",
        ),
    ]
    for kwargs, error, message in cases:
        kwargs.setdefault("model", model)
        with pytest.raises(error, match=message):
            SentenceTransformerTrainer(**kwargs)


def test_report_to_tensorboard_writes_events_where_installed(tiny_folder, train_64, tmp_path):
    model = SentenceTransformer(tiny_folder)
    args = arguments(tmp_path, report_to=["tensorboard"], logging_steps=2, max_steps=2)
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=train_64, loss=CosineSimilarityLoss
    )
    if importlib.util.find_spec("tensorboard") is None:
        with pytest.raises(
            ImportError, match="report_to='tensorboard' needs torch and tensorboard installed"
        ):
            trainer.train()
    else:
        trainer.train()
        assert list((tmp_path / "out" / "runs").glob("events.out.tfevents.*"))
