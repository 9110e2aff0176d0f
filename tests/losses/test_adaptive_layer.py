"""AdaptiveLayerLoss against sentence-transformers' on a tiny BERT: value and every parameter's gradient.

jaxst runs its loss through the train step's `batch_loss` (forward with hidden states, the pipeline per
layer), sentence-transformers its AdaptiveLayerLoss around its own wrapped loss (`encoder_parity`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from sentence_transformers.sentence_transformer import losses as st_losses
from sentence_transformers.sentence_transformer.losses import adaptive_layer as st_adaptive_layer

from jaxst.losses.adaptive_layer import AdaptiveLayerLoss, kl_to_teacher
from jaxst.losses.cached import CachedMultipleNegativesRankingLoss
from jaxst.losses.cosine import CoSENTLoss
from jaxst.losses.matryoshka import MatryoshkaLoss
from jaxst.losses.ranking import MultipleNegativesRankingLoss
from jaxst.training.parallel import PmapParallel
from jaxst.training.step import init_train_state, make_train_step
from tests.losses.encoder_parity import (
    NUM_LAYERS,
    TOLERANCE,
    assert_same_gradients,
    jaxst_batch,
    jaxst_value_and_grads,
    torch_value_and_grads,
)
from tests.shared_data import read_tsv

CASES = {
    "mnrl_defaults_all_layers": (
        lambda m: MultipleNegativesRankingLoss(m),
        lambda m: st_losses.MultipleNegativesRankingLoss(m),
        {"n_layers_per_step": -1},
        False,
    ),
    "cosent_weighted_linear": (
        lambda m: CoSENTLoss(m),
        lambda m: st_losses.CoSENTLoss(m),
        {
            "n_layers_per_step": NUM_LAYERS,
            "last_layer_weight": 0.5,
            "prior_layers_weight": 2.0,
            "kl_div_weight": 0.7,
            "kl_temperature": 0.5,
            "layer_weighting": "linear",
        },
        True,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_value_and_gradients_equal_sentence_transformers(models, rows, case):
    model, torch_model = models
    make_ours, make_theirs, options, with_labels = CASES[case]
    texts, labels = rows
    labels = labels if with_labels else None
    loss = AdaptiveLayerLoss(model, make_ours(model), **options)
    value, grads = jaxst_value_and_grads(model, loss, jaxst_batch(model, texts, labels))()
    expected, expected_grads, scales = torch_value_and_grads(
        torch_model, lambda m: st_losses.AdaptiveLayerLoss(m, make_theirs(m), **options), texts, labels
    )
    assert value == pytest.approx(expected, rel=TOLERANCE)
    assert_same_gradients(grads, expected_grads, scales)


def test_one_sampled_layer_per_step_equals_sentence_transformers_with_that_layer(models, rows, monkeypatch):
    """n_layers_per_step=1 of 2 prior layers: each key's value and gradients are ST's with one layer
    forced (its random.sample patched); over 8 keys both layers are drawn, by one compiled program."""
    model, torch_model = models
    texts, _ = rows
    options = {"n_layers_per_step": 1, "layer_weighting": "log"}
    loss = AdaptiveLayerLoss(model, MultipleNegativesRankingLoss(model), **options)
    assert loss.needs_rng
    run = jaxst_value_and_grads(model, loss, jaxst_batch(model, texts, None))
    expected = {}
    for layer in range(NUM_LAYERS):
        monkeypatch.setattr(st_adaptive_layer.random, "sample", lambda population, k, layer=layer: [layer])
        expected[layer] = torch_value_and_grads(
            torch_model,
            lambda m: st_losses.AdaptiveLayerLoss(m, st_losses.MultipleNegativesRankingLoss(m), **options),
            texts,
            None,
        )
    assert expected[0][0] != pytest.approx(expected[1][0], rel=1e-3)
    drawn = set()
    for seed in range(8):
        value, grads = run(jax.random.key(seed))
        layer = next(layer for layer in expected if value == pytest.approx(expected[layer][0], rel=TOLERANCE))
        assert_same_gradients(grads, *expected[layer][1:])
        drawn.add(layer)
    assert drawn == {0, 1}


@pytest.mark.multi_device
def test_under_pmap_every_device_draws_the_same_layers(models):
    """The layer key is the step's, not the device's: on 8 devices with negatives gathered, two SGD steps
    with one sampled layer each give the parameters of one device on the global batch of 16."""
    model, _ = models
    snli = read_tsv("pairs/snli_triplets.tsv.gz", "test")[:32]
    batches = [
        jaxst_batch(model, [[r["anchor"] for r in rows], [r["positive"] for r in rows]], None)
        for rows in (snli[:16], snli[16:])
    ]

    def train(loss, devices):
        parallel = PmapParallel(devices)
        tx = optax.sgd(0.5)
        step = parallel.compile(make_train_step(model.forward, loss, tx, use_dropout=False))
        state = parallel.put_state(init_train_state({"model": model.params, "losses": ({},)}, tx, seed=0))
        losses = []
        for batch in batches:
            state, metrics = step(state, parallel.put_batch({k: np.asarray(v) for k, v in batch.items()}))
            losses.append(parallel.get_metrics(metrics)["loss"])
        return parallel.get_state(state).params["model"], losses

    gathered = MultipleNegativesRankingLoss(model, gather_across_devices=True)
    params_8, losses_8 = train(AdaptiveLayerLoss(model, gathered), jax.local_devices())
    params_1, losses_1 = train(
        AdaptiveLayerLoss(model, MultipleNegativesRankingLoss(model)), jax.local_devices()[:1]
    )
    np.testing.assert_allclose(losses_8, losses_1, rtol=TOLERANCE)
    for ours, theirs in zip(jax.tree.leaves(params_8), jax.tree.leaves(params_1), strict=True):
        np.testing.assert_allclose(ours, theirs, atol=TOLERANCE, rtol=0)


def test_kl_term_is_torch_kl_div_batchmean():
    rng = np.random.default_rng(0)
    student, teacher_logits = rng.normal(size=(2, 5, 7)).astype(np.float32)
    teacher = jax.nn.softmax(jnp.asarray(teacher_logits) / 0.3)
    expected = torch.nn.functional.kl_div(
        torch.log_softmax(torch.from_numpy(student) / 0.3, dim=-1),
        torch.from_numpy(np.array(teacher)),
        reduction="batchmean",
    )
    assert float(kl_to_teacher(jnp.asarray(student), teacher, 0.3)) == pytest.approx(
        float(expected), rel=1e-6
    )


def test_bad_options_are_named(models):
    model, _ = models
    with pytest.raises(ValueError, match="layer_weighting must be one of .* got 'square'"):
        AdaptiveLayerLoss(model, MultipleNegativesRankingLoss(model), layer_weighting="square")
    with pytest.raises(ValueError, match="cannot wrap CachedMultipleNegativesRankingLoss: a GradCache loss"):
        AdaptiveLayerLoss(model, CachedMultipleNegativesRankingLoss(model))
    loss = AdaptiveLayerLoss(model, CoSENTLoss(model), n_layers_per_step=1)
    assert (loss.min_texts, loss.max_texts, loss.needs_labels) == (2, 2, True)
    hidden = [jnp.zeros((4, 3, 32))] * (NUM_LAYERS + 1)
    output = {"all_layer_embeddings": hidden, "attention_mask": jnp.ones((4, 3), jnp.int32)}
    with pytest.raises(ValueError, match="n_layers_per_step=1 samples 1 of 2 prior layers .* pass rng="):
        loss.compute([jnp.ones((2, 32))] * 2, jnp.ones(2), model_output=output, model_params=model.params)
    assert loss.get_config_dict() == {
        "loss": "CoSENTLoss",
        "n_layers_per_step": 1,
        "last_layer_weight": 1.0,
        "prior_layers_weight": 1.0,
        "kl_div_weight": 1.0,
        "kl_temperature": 0.3,
        "layer_weighting": "uniform",
    }


def test_a_gradcache_loss_anywhere_down_the_chain_is_refused_at_construction():
    """GradCache never holds the whole batch's hidden states: wrapped directly or inside MatryoshkaLoss, the
    combination is an error that names it, before any training."""
    cached = CachedMultipleNegativesRankingLoss(None, mini_batch_size=4)
    matryoshka = MatryoshkaLoss(None, cached, matryoshka_dims=[32, 16])
    with pytest.raises(
        ValueError,
        match=r"cannot wrap MatryoshkaLoss\(CachedMultipleNegativesRankingLoss\): a GradCache loss",
    ):
        AdaptiveLayerLoss(None, matryoshka)


def test_wrapping_a_loss_that_needs_hidden_states_is_refused():
    """Another AdaptiveLayerLoss, or MatryoshkaLoss around one (which would pool the layers at the full
    dimension next to truncated embeddings); the other order is sentence-transformers' Matryoshka2dLoss."""
    adaptive = AdaptiveLayerLoss(None, MultipleNegativesRankingLoss(None))
    with pytest.raises(
        ValueError, match=r"cannot wrap AdaptiveLayerLoss\(MultipleNegativesRankingLoss\), which"
    ):
        AdaptiveLayerLoss(None, adaptive)
    with pytest.raises(ValueError, match=r"MatryoshkaLoss cannot wrap AdaptiveLayerLoss\(MultipleNegatives"):
        MatryoshkaLoss(None, adaptive, matryoshka_dims=[32, 16])
    matryoshka = MatryoshkaLoss(None, MultipleNegativesRankingLoss(None), matryoshka_dims=[32, 16])
    assert AdaptiveLayerLoss(None, matryoshka).needs_hidden_states
