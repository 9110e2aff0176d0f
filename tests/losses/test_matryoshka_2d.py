"""Matryoshka2dLoss against sentence-transformers' on a tiny BERT (value and every encoder gradient), and
trained through fit."""

from __future__ import annotations

import pytest
from sentence_transformers.sentence_transformer import losses as st_losses

from jaxst.losses import Matryoshka2dLoss, MatryoshkaLoss, MultipleNegativesRankingLoss
from jaxst.training.data import InputExample
from tests.losses.encoder_parity import (
    TOLERANCE,
    assert_same_gradients,
    jaxst_batch,
    jaxst_value_and_grads,
    torch_value_and_grads,
)
from tests.losses.fit_checks import fit_steps
from tests.shared_data import read_tsv

# Every layer and every dimension (no draw), so that both sides compute the same terms.
OPTIONS = {
    "matryoshka_weights": [1.0, 0.5, 2.0],
    "n_layers_per_step": -1,
    "n_dims_per_step": -1,
    "last_layer_weight": 0.7,
    "kl_temperature": 0.5,
    "layer_weighting": "log",
}


def test_value_and_gradients_equal_sentence_transformers(models, rows):
    model, torch_model = models
    texts, _ = rows
    loss = Matryoshka2dLoss(model, MultipleNegativesRankingLoss(model), [16, 32, 8], **OPTIONS)
    value, grads = jaxst_value_and_grads(model, loss, jaxst_batch(model, texts, None))()
    expected, expected_grads, scales = torch_value_and_grads(
        torch_model,
        lambda m: st_losses.Matryoshka2dLoss(
            m, st_losses.MultipleNegativesRankingLoss(m), [16, 32, 8], **OPTIONS
        ),
        texts,
        None,
    )
    assert value == pytest.approx(expected, rel=TOLERANCE)
    assert_same_gradients(grads, expected_grads, scales)


def test_is_adaptive_layer_loss_around_matryoshka_loss_with_its_configuration():
    loss = Matryoshka2dLoss(None, MultipleNegativesRankingLoss(None), [32, 16])
    assert isinstance(loss.loss, MatryoshkaLoss)
    assert loss.needs_hidden_states and loss.needs_rng and loss.loss.needs_rng  # one dimension per call
    assert loss.get_config_dict() == {
        "loss": "MultipleNegativesRankingLoss",
        "n_layers_per_step": 1,
        "last_layer_weight": 1.0,
        "prior_layers_weight": 1.0,
        "kl_div_weight": 1.0,
        "kl_temperature": 0.3,
        "layer_weighting": "uniform",
        "matryoshka_dims": (32, 16),
        "matryoshka_weights": (1, 1),
        "n_dims_per_step": 1,
    }


def test_trains_through_fit_with_sampled_layers_and_dimensions(tiny_folder):
    snli = read_tsv("pairs/snli_triplets.tsv.gz", "test")[:16]
    examples = [InputExample(texts=[r["anchor"], r["positive"]]) for r in snli]
    fit_steps(
        tiny_folder, lambda m: Matryoshka2dLoss(m, MultipleNegativesRankingLoss(m), [32, 16, 8]), examples
    )
