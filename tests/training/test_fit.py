"""fit on a tiny model: exact resumption, compile counts, NaN handling, bad input, outputs."""

import contextlib
import json
import re

import datasets
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxst.buckets import bucket_lengths
from jaxst.data import load_stsb
from jaxst.losses import SoftmaxLoss
from jaxst.losses.base import Loss
from jaxst.losses.matryoshka import MatryoshkaLoss
from jaxst.sentence_transformer import SentenceTransformer
from jaxst.training import fit as fit_module
from jaxst.training.batching import batch_arrays, training_bucket
from jaxst.training.callbacks import TrainerCallback
from jaxst.training.checkpoint import Checkpointer
from jaxst.training.data import DataLoader, InputExample
from jaxst.training.fit import NonFiniteLossError, fit, make_parallel
from jaxst.training.parallel import MeshParallel, PmapParallel
from tests.training.test_parallel import CosineMSE


@pytest.fixture(scope="module")
def pairs():
    return [InputExample(texts=[a, b], label=s) for a, b, s in load_stsb("train")[:64]]


def run_fit(folder, examples, **kwargs):
    model = SentenceTransformer(folder)
    loader = DataLoader(examples, batch_size=16, shuffle=True, seed=3)
    kwargs = {"warmup_steps": 2, "optimizer_params": {"lr": 1e-3}, "show_progress_bar": False, **kwargs}
    result = fit(model, [(loader, CosineMSE(model))], **kwargs)
    return model, result


def leaves(model):
    return [np.asarray(x) for x in jax.tree.leaves(model.params)]


def test_resuming_from_a_checkpoint_is_bit_identical(tiny_folder, pairs, tmp_path):
    """12 steps (3 epochs of 4) with dropout; a run resumed from step 5 ends with the same bits."""
    full, result = run_fit(
        tiny_folder, pairs, epochs=3, checkpoint_path=str(tmp_path / "full"), checkpoint_save_steps=5
    )
    assert result["global_step"] == 12
    assert sorted(p.name for p in (tmp_path / "full").iterdir() if p.name.isdigit()) == ["10", "5"]

    resumed, result = run_fit(
        tiny_folder, pairs, epochs=3, resume_from_checkpoint=str(tmp_path / "full" / "5")
    )
    assert result["global_step"] == 12
    for a, b in zip(leaves(full), leaves(resumed), strict=True):
        assert np.array_equal(a, b)
    untrained = SentenceTransformer(tiny_folder)
    assert not all(np.array_equal(a, b) for a, b in zip(leaves(full), leaves(untrained), strict=True))


def test_an_epoch_compiles_the_step_once_per_packed_batch_shape(tiny_folder):
    """Mixed lengths: traces of the loss = distinct (rows, row length) shapes of the packed batches."""
    traces = []

    class CountingLoss(CosineMSE):
        def compute(self, embeddings, labels, params=None):
            traces.append(embeddings[0].shape)
            return super().compute(embeddings, labels, params)

    rows = load_stsb("train")[:160]
    model = SentenceTransformer(tiny_folder)
    model.max_seq_length = 64  # several texts per row (at 16 tokens, most STS-B sentences fill one)
    examples = [InputExample(texts=[a, b], label=s) for a, b, s in rows]
    shapes = set()
    loader = DataLoader(examples, batch_size=16, shuffle=True, seed=0)
    for batch in loader:
        arrays = batch_arrays(model, batch, packed=True, num_devices=jax.local_device_count())
        shapes.add(arrays["packed_input_ids"].shape)
    assert len(shapes) > 1
    fit(
        model,
        [(DataLoader(examples, batch_size=16, shuffle=True, seed=0), CountingLoss(model))],
        warmup_steps=1,
        show_progress_bar=False,
    )
    assert len(traces) == len(shapes)


def test_training_buckets_are_encode_buckets_from_16_up_to_max_seq_length():
    lengths = (1, 16, 17, 24, 25, 33, 49, 65, 97, 129, 200, 256)
    assert [training_bucket(n, 256) for n in lengths] == [16, 16, 24, 24, 32, 48, 64, 96, 128, 192, 256, 256]
    assert [training_bucket(n, 200) for n in (130, 192, 193, 200)] == [192, 192, 200, 200]
    assert training_bucket(12, 12) == 12
    for max_seq_length in (12, 100, 256, 512):
        for length in range(1, max_seq_length + 1):
            bucket = training_bucket(length, max_seq_length)
            assert bucket in bucket_lengths(max_seq_length)
            assert length <= bucket <= max_seq_length
            assert bucket < max(1.5 * length, 17)  # under 1.5x the longest text, or the shortest bucket


class LogLabelLoss(Loss):
    """log(label): NaN for the negative label planted in the third batch."""

    min_texts = max_texts = 2
    needs_labels = True

    def compute(self, embeddings, labels, params=None):
        return jnp.mean(jnp.log(labels)) + 0.0 * jnp.sum(embeddings[0])


def test_a_nan_loss_stops_training_naming_the_step(tiny_folder, pairs, tmp_path):
    examples = [InputExample(texts=e.texts, label=0.5) for e in pairs]
    examples[40] = InputExample(texts=pairs[40].texts, label=-1.0)  # batch 3 of an unshuffled epoch
    model = SentenceTransformer(tiny_folder)
    loader = DataLoader(examples, batch_size=16, shuffle=False)
    with pytest.raises(NonFiniteLossError, match="loss is nan at step 3 .*last good checkpoint is step 2"):
        fit(
            model,
            [(loader, LogLabelLoss(model))],
            checkpoint_path=str(tmp_path),
            checkpoint_save_steps=2,
            show_progress_bar=False,
        )


class NanGradientOnNegativeLabel(CosineMSE):
    """Cosine MSE plus sqrt(0 * embedding) for examples labelled -1: the term is 0, so the loss stays
    finite, but its gradient is NaN, and the update of a batch holding such an example is NaN."""

    def compute(self, embeddings, labels, params=None):
        zero_for_negative = jnp.where((labels < 0)[:, None], 0.0 * embeddings[0], 1.0)
        return super().compute(embeddings, labels) + jnp.sum(jnp.sqrt(zero_for_negative))


def all_finite(tree):
    return all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(tree))


def test_non_finite_parameters_stop_training_before_their_state_is_evaluated_checkpointed_or_saved(
    tiny_folder, pairs, tmp_path
):
    """Step 3 makes the parameters NaN with a finite loss: no evaluation, checkpoint or best model of it."""
    examples = [InputExample(texts=e.texts, label=0.5) for e in pairs]
    examples[40] = InputExample(texts=pairs[40].texts, label=-1.0)  # batch 3 of an unshuffled epoch
    model = SentenceTransformer(tiny_folder)
    evaluated = []

    def evaluator(model, output_path=None, epoch=-1, steps=-1):
        evaluated.append((steps, all_finite(model.params)))
        return float(len(evaluated))  # every evaluation improves: the best model is saved each time

    message = (
        r"parameters became non-finite \(NaN or infinite\) at step 3 \(objective 0, "
        r"NanGradientOnNegativeLabel\), with a finite loss .*last good checkpoint is step 2 in "
    )
    with pytest.raises(NonFiniteLossError, match=message):
        fit(
            model,
            [(DataLoader(examples, batch_size=16), NanGradientOnNegativeLabel(model))],
            evaluator=evaluator,
            evaluation_steps=1,
            output_path=str(tmp_path / "best"),
            checkpoint_path=str(tmp_path / "checkpoints"),
            checkpoint_save_steps=1,
            show_progress_bar=False,
        )
    assert evaluated == [(1, True), (2, True)]
    with Checkpointer(tmp_path / "checkpoints") as checkpointer:
        assert checkpointer.all_steps() == [1, 2]
    last_good = ocp.StandardCheckpointer().restore(tmp_path / "checkpoints" / "2" / "state")
    assert jax.tree.leaves(last_good) and all_finite(last_good)
    assert all_finite(SentenceTransformer(tmp_path / "best").params)


class SqrtOfLossParameter(CosineMSE):
    """Cosine MSE + sum(sqrt(w)) of a loss parameter w = 0: a finite loss, an infinite gradient of w."""

    def init_params(self, rng, embedding_dim):
        return {"w": jnp.zeros(2)}

    def compute(self, embeddings, labels, params=None):
        return super().compute(embeddings, labels) + jnp.sum(jnp.sqrt(params["w"]))


def test_a_non_finite_loss_parameter_stops_training_and_no_model_is_saved(tiny_folder, pairs, tmp_path):
    model = SentenceTransformer(tiny_folder)
    with pytest.raises(NonFiniteLossError, match=r"parameters became non-finite .* at step 1 "):
        fit(
            model,
            [(DataLoader(pairs, batch_size=16), SqrtOfLossParameter(model))],
            steps_per_epoch=1,
            output_path=str(tmp_path / "out"),
            show_progress_bar=False,
        )
    assert not (tmp_path / "out" / "modules.json").exists()


@pytest.mark.parametrize("lr", [0.0, -1e-3, float("nan"), float("inf"), "1e-3", None, True])
def test_a_learning_rate_that_is_not_positive_and_finite_is_refused_before_training(
    tiny_folder, pairs, tmp_path, lr
):
    model = SentenceTransformer(tiny_folder)
    with pytest.raises(ValueError, match=f"lr must be a positive finite number, got {re.escape(repr(lr))}"):
        fit(
            model,
            [(DataLoader(pairs, batch_size=16), CosineMSE(model))],
            optimizer_params={"lr": lr},
            steps_per_epoch=1,
            output_path=str(tmp_path / "out"),
            show_progress_bar=False,
        )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option", ["output_path", "checkpoint_path"])
@pytest.mark.parametrize("under_the_file", [False, True])
def test_a_folder_option_that_is_a_file_is_refused_before_training(
    tiny_folder, pairs, tmp_path, option, under_the_file
):
    model = SentenceTransformer(tiny_folder)
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    folder = a_file / "sub" if under_the_file else a_file
    with pytest.raises(
        ValueError, match=f"{option}='{re.escape(str(folder))}' must be a folder, but .*a_file is a file"
    ):
        fit(
            model,
            [(DataLoader(pairs, batch_size=16), CosineMSE(model))],
            steps_per_epoch=1,
            show_progress_bar=False,
            **{option: str(folder)},
        )


def test_resuming_from_a_folder_without_a_checkpoint_is_an_error_but_true_starts_fresh(
    tiny_folder, pairs, tmp_path
):
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        FileNotFoundError, match=r"resume_from_checkpoint='.*empty': no checkpoint in .*empty"
    ):
        run_fit(tiny_folder, pairs, resume_from_checkpoint=str(tmp_path / "empty"))
    _, result = run_fit(
        tiny_folder,
        pairs,
        steps_per_epoch=1,
        checkpoint_path=str(tmp_path / "empty"),
        resume_from_checkpoint=True,
    )
    assert result["global_step"] == 1  # sentence-transformers' behaviour: nothing to resume, a fresh start


def softmax_objective(model, examples, container, wrapped):
    if container == "datasets":
        columns = {"a": [e.texts[0] for e in examples], "b": [e.texts[1] for e in examples]}
        examples = datasets.Dataset.from_dict({**columns, "label": [e.label for e in examples]})
    loss = SoftmaxLoss(model, embedding_dimension=32, num_labels=3)
    if wrapped:
        loss = MatryoshkaLoss(model, loss, matryoshka_dims=[32, 16])
    return DataLoader(examples, batch_size=16), loss


@pytest.mark.parametrize("label", [-1, 3, 0.5, True, "1", float("nan"), [0.5, 0.5]])
def test_softmax_labels_that_are_not_classes_are_refused_naming_the_example(tiny_folder, pairs, label):
    model = SentenceTransformer(tiny_folder)
    examples = [InputExample(texts=e.texts, label=i % 3) for i, e in enumerate(pairs)]
    examples[21] = InputExample(texts=pairs[21].texts, label=label)
    message = rf"Training objective 0: Example 21 \(SoftmaxLoss\): label {re.escape(repr(label))} "
    with pytest.raises(ValueError, match=message):
        fit(model, [softmax_objective(model, examples, "list", False)], show_progress_bar=False)


@pytest.mark.parametrize(("container", "wrapped"), [("datasets", False), ("list", True)])
def test_label_checks_read_column_datasets_and_reach_wrapped_losses(tiny_folder, pairs, container, wrapped):
    model = SentenceTransformer(tiny_folder)
    examples = [InputExample(texts=e.texts, label=i % 3) for i, e in enumerate(pairs)]
    examples[37] = InputExample(texts=pairs[37].texts, label=-1)
    with pytest.raises(
        ValueError, match=r"Example 37 \(SoftmaxLoss\): label -1 is outside the classes \[0, 3\)"
    ):
        fit(model, [softmax_objective(model, examples, container, wrapped)], show_progress_bar=False)


def test_softmax_classes_stored_as_floats_train(tiny_folder, pairs):
    model = SentenceTransformer(tiny_folder)
    examples = [InputExample(texts=e.texts, label=float(i % 3)) for i, e in enumerate(pairs)]  # 2.0: class 2
    result = fit(
        model,
        [softmax_objective(model, examples, "datasets", False)],
        steps_per_epoch=1,
        show_progress_bar=False,
    )
    assert result["global_step"] == 1 and np.isfinite(result["training_loss"])


def test_outputs_metrics_and_final_model(tiny_folder, pairs, tmp_path):
    model, result = run_fit(tiny_folder, pairs, epochs=1, output_path=str(tmp_path / "out"))
    records = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert records[0]["lr"] == 0.0 and records[2]["lr"] == pytest.approx(1e-3)
    assert np.mean([r["loss"] for r in records]) == pytest.approx(result["training_loss"])
    reloaded = SentenceTransformer(tmp_path / "out")
    np.testing.assert_allclose(reloaded.encode(["a test"]), model.encode(["a test"]), atol=1e-6)


def test_metrics_records_carry_the_gradient_norm_of_their_step(tiny_folder, pairs, tmp_path):
    run_fit(tiny_folder, pairs, steps_per_epoch=2, checkpoint_path=str(tmp_path), checkpoint_save_steps=1000)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    assert all(np.isfinite(r["grad_norm"]) and r["grad_norm"] > 0 for r in records)


class NeedsThree(CosineMSE):
    min_texts = max_texts = 3


@pytest.mark.parametrize(
    ("make_objective", "error", "message"),
    [
        (
            lambda m, ex: (DataLoader(ex, batch_size=16), NeedsThree(m)),
            ValueError,
            "NeedsThree needs exactly 3 texts per example, got 2",
        ),
        (
            lambda m, ex: (
                DataLoader([InputExample(texts=e.texts, label=None) for e in ex], batch_size=16),
                CosineMSE(m),
            ),
            ValueError,
            "CosineMSE needs a label",
        ),
        (lambda m, ex: ([ex], CosineMSE(m)), TypeError, "objective 0: fit takes a jaxst DataLoader"),
    ],
)
def test_bad_objectives_are_named(tiny_folder, pairs, make_objective, error, message):
    model = SentenceTransformer(tiny_folder)
    with pytest.raises(error, match=message):
        fit(model, [make_objective(model, pairs)], show_progress_bar=False)


@pytest.mark.multi_device
def test_batch_sizes_the_devices_do_not_divide_use_fewer_devices_or_fail_under_shard_map():
    """fit never pads: pmap, and shard_map chosen by "auto" in one process, take the most devices dividing
    every batch size; shard_map asked for by name raises."""
    pmap = make_parallel("pmap", [12])
    assert isinstance(pmap, PmapParallel) and pmap.num_devices == 6
    auto = make_parallel("auto", [16, 2])
    assert isinstance(auto, MeshParallel) and auto.num_devices == auto.num_local_devices == 2
    with pytest.raises(ValueError, match="batch size 12 is not divisible by the number of devices \\(8\\)"):
        make_parallel("shard_map", [12])


def test_unknown_scheduler_lists_the_known_ones(tiny_folder, pairs):
    model = SentenceTransformer(tiny_folder)
    with pytest.raises(ValueError, match="known schedulers: constantlr, warmupconstant, warmuplinear"):
        fit(
            model,
            [(DataLoader(pairs, batch_size=16), CosineMSE(model))],
            scheduler="linear",
            show_progress_bar=False,
        )


def test_an_empty_dataloader_is_an_error():
    with pytest.raises(ValueError, match="dataset is empty"):
        DataLoader([], batch_size=16)


def test_training_on_the_cpu_keeps_freed_host_memory_for_the_next_step(tiny_folder, pairs, monkeypatch):
    """The steps run inside `host_memory.keep_freed_memory`, which ends with the run."""
    events = []

    @contextlib.contextmanager
    def recording():
        events.append("enter")
        yield
        events.append("exit")

    monkeypatch.setattr(fit_module, "keep_freed_memory", recording)
    callback = StepRecorder(events)
    run_fit(tiny_folder, pairs, steps_per_epoch=2, callbacks=[callback])
    assert events == ["enter", "step 1", "step 2", "exit"]


class StepRecorder(TrainerCallback):
    def __init__(self, events):
        self.events = events

    def on_step_end(self, run, logs):
        self.events.append(f"step {logs['step']}")
