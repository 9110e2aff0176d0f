"""contrastive_tension_loss_in_batch_negatives against ST's ContrastiveTensionLossInBatchNegatives."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from sentence_transformers import util as st_util
from sentence_transformers.sentence_transformer import losses as st_losses

from jaxst.losses.contrastive_tension import (
    ContrastiveTensionLossInBatchNegatives,
    contrastive_tension_loss_in_batch_negatives,
)
from jaxst.similarity import dot_score
from jaxst.validation.torch_reference import FixedEmbeddingModel
from tests.losses.parity_checks import (
    PARITY_RTOL,
    assert_bfloat16_close,
    assert_matches_torch,
    assert_trace_time_error,
    assert_traces_once,
    assert_vmap_matches_loop,
    edge_cases,
    make_columns,
    relative_error,
)

SIMILARITIES = {
    "cosine": ({}, {}),
    "dot": ({"similarity_fct": dot_score}, {"similarity_fct": st_util.dot_score}),
}


def st_loss_on_two_columns(model: FixedEmbeddingModel, **options) -> torch.nn.Module:
    """ST's loss, whose model1 (its copy of the encoder) returns column 0 and model2 column 1.

    ST embeds its first feature dict with both models; the stand-ins each answer it with their own column.
    """
    loss = st_losses.ContrastiveTensionLossInBatchNegatives(model, **options)
    loss.model1 = FixedEmbeddingModel([model.columns[0]])
    loss.model2 = FixedEmbeddingModel([model.columns[1]])
    return loss


def class_loss(scale: float = 20.0, **options):
    """The jaxst class with its trainable logit scale at its initial value, as ST's starts."""
    loss = ContrastiveTensionLossInBatchNegatives(None, scale=scale, **options)
    params = loss.init_params(jax.random.key(0), 8)
    return lambda columns, labels: loss.compute(columns, labels, params)


@pytest.mark.parametrize("similarity", SIMILARITIES)
@pytest.mark.parametrize("scale", [20.0, 1.0])
def test_matches_sentence_transformers(similarity, scale):
    jax_options, st_options = SIMILARITIES[similarity]
    assert_matches_torch(
        class_loss(scale, **jax_options),
        lambda model: st_loss_on_two_columns(model, scale=scale, **st_options),
        edge_cases(2, lambda batch: None),
    )


def test_logit_scale_gradient_matches_sentence_transformers():
    columns = make_columns("random", 2)
    leaves = [torch.tensor(c, requires_grad=True) for c in columns]
    st_loss = st_loss_on_two_columns(FixedEmbeddingModel(leaves))
    value = st_loss([{"column": 0}], None)
    value.backward()
    loss = ContrastiveTensionLossInBatchNegatives(None)
    params = loss.init_params(jax.random.key(0), 8)
    np.testing.assert_array_equal(params["logit_scale"], st_loss.logit_scale.detach().numpy())
    grad = jax.grad(lambda p: loss.compute([jnp.asarray(c) for c in columns], None, p))(params)
    assert relative_error(grad["logit_scale"], st_loss.logit_scale.grad.numpy()) <= PARITY_RTOL
    assert loss.get_config_dict() == {"scale": 20.0, "similarity_fct": "cos_sim"}
    assert (loss.min_texts, loss.max_texts, loss.needs_labels, loss.uses_model_copy) == (1, 1, False, True)


def test_fixed_scale_without_params_and_shapes():
    columns = [jnp.asarray(c) for c in make_columns("random", 2)]
    fixed = ContrastiveTensionLossInBatchNegatives(None, scale=5.0).compute(columns, None)
    np.testing.assert_allclose(
        fixed, contrastive_tension_loss_in_batch_negatives(*columns, scale=5.0), rtol=1e-6
    )
    with pytest.raises(ValueError, match="embedded twice"):
        ContrastiveTensionLossInBatchNegatives(None).compute(columns[:1], None)
    loss = lambda cols, labels: contrastive_tension_loss_in_batch_negatives(*cols)
    assert_trace_time_error(loss, [jnp.zeros((6, 8)), jnp.zeros((5, 8))], None, "(6, 8)", "(5, 8)")
    assert_trace_time_error(loss, [jnp.zeros(8), jnp.zeros(8)], None, "(8,)", "rank 2")


def test_jit_vmap_bfloat16():
    loss = class_loss()
    columns = make_columns("random", 2)
    assert_traces_once(loss, columns, None)
    assert_vmap_matches_loop(loss, [(make_columns("random", 2, seed=s), None) for s in range(3)])
    assert_bfloat16_close(loss, columns, None)
