"""Gradient accumulation: m micro-batches per update equal one step on the m times larger batch, only
separable losses accumulate, and fit counts optimizer updates (schedule, steps, checkpoints)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxst.batch_layouts import as_batch
from jaxst.data import load_stsb
from jaxst.losses import (
    CachedMultipleNegativesRankingLoss,
    ContrastiveLoss,
    CoSENTLoss,
    CosineSimilarityLoss,
    MultipleNegativesRankingLoss,
    OnlineContrastiveLoss,
    SoftmaxLoss,
)
from jaxst.losses.matryoshka import MatryoshkaLoss
from jaxst.sentence_transformer import SentenceTransformer
from jaxst.training.accumulation import micro_batches
from jaxst.training.batching import batch_arrays
from jaxst.training.data import DataLoader, ExampleBatch, InputExample
from jaxst.training.fit import fit
from jaxst.training.optim import make_schedule
from jaxst.training.parallel import MeshParallel, PmapParallel
from jaxst.training.step import init_train_state, make_train_step
from tests.training.test_parallel import DIM, VOCAB, CosineMSE, bag_of_words_forward, make_batches


@pytest.fixture(scope="module")
def examples():
    """32 STS-B pairs labelled with their scores in [0, 1]."""
    return [InputExample(texts=[a, b], label=s) for a, b, s in load_stsb("train")[:32]]


def test_an_accumulated_update_equals_one_step_on_the_whole_batch(tiny_folder, examples):
    """8 examples as 4 micro-batches of 2 against one batch of 8, one padded layout, with SGD (lr 1) so
    that the update is the gradient itself: equal within 1e-5 of the largest gradient, loss parameters
    (SoftmaxLoss' classifier) included; the reported loss is the whole batch's."""
    model = SentenceTransformer(tiny_folder)
    loss = SoftmaxLoss(model, embedding_dimension=32, num_labels=2)
    pairs = examples[:8]
    labels = (np.array([p.label for p in pairs]) > 0.5).astype(np.int32)
    batch = batch_arrays(model, ExampleBatch([[p.texts[j] for p in pairs] for j in range(2)], labels))
    params = {"model": model.params, "losses": (loss.init_params(jax.random.key(0), 32),)}
    tx = optax.sgd(1.0)
    parallel = PmapParallel(jax.local_devices()[:1])

    def update(steps):
        step = parallel.compile(
            make_train_step(model.forward, loss, tx, use_dropout=False, gradient_accumulation_steps=steps)
        )
        state, metrics = step(parallel.put_state(init_train_state(params, tx, 0)), parallel.put_batch(batch))
        new = parallel.get_state(state).params
        return jax.tree.map(lambda a, b: np.asarray(a) - np.asarray(b), params, new), parallel.get_metrics(
            metrics
        )

    whole, whole_metrics = update(1)
    accumulated, accumulated_metrics = update(4)
    assert accumulated_metrics["loss"] == pytest.approx(whole_metrics["loss"], abs=1e-6)
    largest = max(float(np.max(np.abs(g))) for g in jax.tree.leaves(whole))
    gaps = jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), accumulated, whole)
    assert max(jax.tree.leaves(gaps)) <= 1e-5 * largest


def test_micro_batches_split_every_array_along_its_example_axis():
    batch = as_batch(
        {
            "input_ids": np.arange(2 * 6 * 3).reshape(2, 6, 3),
            "attention_mask": np.ones((2, 6, 3), np.int32),
            "labels": np.arange(6.0),
        }
    )
    micro = micro_batches(batch, 3)
    assert micro.input_ids.shape == (3, 2, 2, 3) and micro.labels.shape == (3, 2)
    np.testing.assert_array_equal(micro.input_ids[1], batch.input_ids[:, 2:4])
    np.testing.assert_array_equal(micro.labels[2], [4.0, 5.0])
    with pytest.raises(ValueError, match="6 examples does not split into 4"):
        micro_batches(batch, 4)


@pytest.mark.parametrize(
    "make_loss, name",
    [
        (lambda m: MultipleNegativesRankingLoss(m), "MultipleNegativesRankingLoss"),
        (lambda m: CachedMultipleNegativesRankingLoss(m, mini_batch_size=4), "CachedMultipleNegatives"),
        (lambda m: CoSENTLoss(m), "CoSENTLoss"),
        (lambda m: OnlineContrastiveLoss(m), "OnlineContrastiveLoss"),
        (lambda m: ContrastiveLoss(m, size_average=False), "ContrastiveLoss"),
        (
            lambda m: MatryoshkaLoss(m, MultipleNegativesRankingLoss(m), matryoshka_dims=[32, 16]),
            r"MatryoshkaLoss\(Multiple",
        ),
    ],
)
def test_losses_that_are_not_separable_are_refused_pointing_to_the_cached_losses(make_loss, name):
    with pytest.raises(ValueError, match=rf"gradient_accumulation_steps=2: {name}.*not separable.*Cached"):
        make_train_step(lambda *a, **k: None, make_loss(None), optax.sgd(1.0), gradient_accumulation_steps=2)


def test_separable_losses_say_so_and_wrappers_follow_the_wrapped_loss():
    assert CosineSimilarityLoss(None).separable and ContrastiveLoss(None).separable
    assert not CosineSimilarityLoss(None, loss_fct=lambda p, t: jnp.sum((p - t) ** 2)).separable
    assert MatryoshkaLoss(None, CosineSimilarityLoss(None), matryoshka_dims=[32, 16]).separable
    assert not MatryoshkaLoss(None, CoSENTLoss(None), matryoshka_dims=[32, 16]).separable


@pytest.mark.parametrize("steps", [0, 1.5, True])
def test_a_bad_accumulation_count_is_refused(tiny_folder, examples, steps):
    model = SentenceTransformer(tiny_folder)
    with pytest.raises(ValueError, match="gradient_accumulation_steps must be a positive integer"):
        fit(
            model,
            [(DataLoader(examples, batch_size=4), CosineSimilarityLoss(model))],
            gradient_accumulation_steps=steps,
            show_progress_bar=False,
        )


def test_fit_counts_updates_and_resumes_bit_identically_at_update_boundaries(tiny_folder, examples, tmp_path):
    """32 examples in batches of 4 with 2 micro-batches per update: 4 updates per epoch, the schedule's
    learning rate per update, checkpoints at updates; a run resumed from update 3 ends with the same bits."""

    def run(**kwargs):
        model = SentenceTransformer(tiny_folder)
        loader = DataLoader(examples, batch_size=4, shuffle=True, seed=3)
        result = fit(
            model,
            [(loader, CosineSimilarityLoss(model))],
            epochs=2,
            warmup_steps=2,
            optimizer_params={"lr": 1e-3},
            show_progress_bar=False,
            gradient_accumulation_steps=2,
            checkpoint_save_steps=3,
            **kwargs,
        )
        return model, result

    full, result = run(checkpoint_path=str(tmp_path / "full"))
    assert result["global_step"] == 8
    assert sorted(p.name for p in (tmp_path / "full").iterdir() if p.name.isdigit()) == ["3", "6"]
    records = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    schedule = make_schedule(name="WarmupLinear", lr=1e-3, warmup_steps=2, total_steps=8)
    assert [r["step"] for r in records] == list(range(1, 9))
    assert [r["lr"] for r in records] == [float(schedule(step)) for step in range(8)]

    resumed, result = run(resume_from_checkpoint=str(tmp_path / "full" / "3"))
    assert result["global_step"] == 8
    for a, b in zip(jax.tree.leaves(full.params), jax.tree.leaves(resumed.params), strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))


class SeparableCosineMSE(CosineMSE):
    separable = True


@pytest.mark.multi_device
@pytest.mark.parametrize("parallel", [PmapParallel, MeshParallel])
def test_accumulation_on_eight_devices_equals_the_whole_batch_on_one(parallel):
    """A batch of 32 on 8 devices as 2 micro-batches per device, against the batch whole on one device:
    the same loss and update (SGD) within 1e-5."""
    batch = make_batches(0, 1, batch_size=32)[0]
    rng = np.random.default_rng(0)
    params = {
        "model": {
            "embed": rng.normal(size=(VOCAB, DIM)).astype(np.float32),
            "dense": rng.normal(size=(DIM, DIM)).astype(np.float32) / 4,
        },
        "losses": ({},),
    }
    tx = optax.sgd(0.1)

    def update(parallel, steps):
        step = parallel.compile(
            make_train_step(
                bag_of_words_forward, SeparableCosineMSE(None), tx, gradient_accumulation_steps=steps
            )
        )
        state, metrics = step(parallel.put_state(init_train_state(params, tx, 0)), parallel.put_batch(batch))
        return parallel.get_state(state).params, parallel.get_metrics(metrics)["loss"]

    whole, whole_loss = update(PmapParallel(jax.local_devices()[:1]), 1)
    accumulated, accumulated_loss = update(parallel(), 2)
    assert accumulated_loss == pytest.approx(whole_loss, abs=1e-6)
    for a, b in zip(jax.tree.leaves(accumulated), jax.tree.leaves(whole), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
