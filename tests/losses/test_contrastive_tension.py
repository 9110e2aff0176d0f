"""The ContrastiveTension losses against sentence-transformers': on fixed embeddings, on a tiny encoder
(the model's and the model copy's gradients), and trained through fit."""

from __future__ import annotations

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from sentence_transformers import util as st_util
from sentence_transformers.sentence_transformer import losses as st_losses

from jaxst.losses.contrastive_tension import (
    ContrastiveTensionLoss,
    ContrastiveTensionLossInBatchNegatives,
    contrastive_tension_loss,
    contrastive_tension_loss_in_batch_negatives,
)
from jaxst.losses.contrastive_tension_data import ContrastiveTensionDataLoader, contrastive_tension_examples
from jaxst.similarity import dot_score
from jaxst.training.data import InputExample
from jaxst.validation.torch_reference import FixedEmbeddingModel
from tests.losses.encoder_parity import (
    TOLERANCE,
    assert_same_gradients,
    jaxst_batch,
    jaxst_value_and_grads,
    model_encoder,
    torch_value_and_grads,
)
from tests.losses.fit_checks import fit_steps
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
from tests.shared_data import read_tsv

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


# A stand-in model with one parameter, for the copy that init_params makes.
STUB_MODEL = types.SimpleNamespace(params={"weight": jnp.ones(3)})


def class_loss(scale: float = 20.0, **options):
    """The jaxst class with its trainable logit scale at its initial value, as ST's starts: column 0 is
    the copy's embeddings, column 1 the model's."""
    loss = ContrastiveTensionLossInBatchNegatives(STUB_MODEL, scale=scale, **options)
    params = loss.init_params(jax.random.key(0), 8)
    return lambda columns, labels: loss.compute([columns[1]], labels, params, copy_embeddings=[columns[0]])


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
    loss = ContrastiveTensionLossInBatchNegatives(STUB_MODEL)
    params = loss.init_params(jax.random.key(0), 8)
    np.testing.assert_array_equal(params["logit_scale"], st_loss.logit_scale.detach().numpy())
    copy, model = [jnp.asarray(c) for c in columns]
    grad = jax.grad(lambda p: loss.compute([model], None, p, copy_embeddings=[copy]))(params)
    assert relative_error(grad["logit_scale"], st_loss.logit_scale.grad.numpy()) <= PARITY_RTOL
    assert loss.get_config_dict() == {"scale": 20.0, "similarity_fct": "cos_sim"}
    assert (loss.min_texts, loss.max_texts, loss.needs_labels, loss.uses_model_copy) == (1, 1, False, True)


def test_fixed_scale_without_params_and_shapes():
    columns = [jnp.asarray(c) for c in make_columns("random", 2)]
    loss = ContrastiveTensionLossInBatchNegatives(None, scale=5.0)
    fixed = loss.compute(columns[1:], None, copy_embeddings=columns[:1])
    np.testing.assert_allclose(
        fixed, contrastive_tension_loss_in_batch_negatives(*columns, scale=5.0), rtol=1e-6
    )
    loss = lambda cols, labels: contrastive_tension_loss_in_batch_negatives(*cols)
    assert_trace_time_error(loss, [jnp.zeros((6, 8)), jnp.zeros((5, 8))], None, "(6, 8)", "(5, 8)")
    assert_trace_time_error(loss, [jnp.zeros(8), jnp.zeros(8)], None, "(8,)", "rank 2")


def test_jit_vmap_bfloat16():
    loss = class_loss()
    columns = make_columns("random", 2)
    assert_traces_once(loss, columns, None)
    assert_vmap_matches_loop(loss, [(make_columns("random", 2, seed=s), None) for s in range(3)])
    assert_bfloat16_close(loss, columns, None)


def st_pair_loss(model: FixedEmbeddingModel) -> torch.nn.Module:
    """ST's ContrastiveTensionLoss whose model1 (the copy) answers the first texts with column 0 and model2
    (the model) the second texts with column 1."""
    loss = st_losses.ContrastiveTensionLoss(model)
    loss.model1 = FixedEmbeddingModel(model.columns)
    loss.model2 = model
    return loss


def pair_labels(batch: int) -> np.ndarray:
    return (np.arange(batch) % 3 == 0).astype(np.float32)


def test_pair_loss_matches_sentence_transformers():
    """The class takes text a from the copy and text b from the model: the other two embeddings it is
    handed are zeros here, so that reading them would change the value."""

    def loss(columns, labels):
        return ContrastiveTensionLoss(STUB_MODEL).compute(
            [jnp.zeros_like(columns[0]), columns[1]], labels, copy_embeddings=[columns[0], columns[1] * 0]
        )

    cases = edge_cases(2, pair_labels)
    assert_matches_torch(loss, st_pair_loss, cases)
    pure = lambda cols, labels: contrastive_tension_loss(*cols, labels)
    columns, labels = cases["random"]
    assert_traces_once(pure, columns, labels)
    assert_bfloat16_close(pure, columns, labels)
    assert_trace_time_error(pure, [jnp.zeros((6, 8))] * 2, jnp.zeros(5), "labels", "(5,)")


def test_pair_loss_contract():
    loss = ContrastiveTensionLoss(STUB_MODEL)
    assert (loss.min_texts, loss.max_texts, loss.needs_labels, loss.uses_model_copy) == (2, 2, True, True)
    assert loss.get_config_dict() == {}
    params = loss.init_params(jax.random.key(0), 8)
    assert params["model_copy"]["weight"] is not STUB_MODEL.params["weight"]
    np.testing.assert_array_equal(params["model_copy"]["weight"], STUB_MODEL.params["weight"])
    for label in (0, 1, 1.0, np.float32(0)):
        loss.check_label(label)
    for label in (2, -1, "1", None, [1]):
        with pytest.raises(ValueError, match="is not a pair label"):
            loss.check_label(label)


def test_data_loader_batches_as_sentence_transformers():
    """ST's batch count for the same sentences; in each batch a positive pair every pos_neg_ratio pairs
    and no sentence twice; new pairs every epoch, the same for the same seed."""
    sentences = [f"sentence {i}" for i in range(70)]
    loader = ContrastiveTensionDataLoader(sentences, 8, pos_neg_ratio=4, seed=1)
    assert len(loader) == len(st_losses.ContrastiveTensionDataLoader(sentences, 8, pos_neg_ratio=4)) == 5
    epochs = [list(loader), list(loader)]
    for batch in epochs[0]:
        assert list(batch.labels) == [1, 0, 0, 0] * 2
        assert all((a == b) == bool(label) for a, b, label in zip(*batch.texts, batch.labels, strict=True))
    used = [text for batch in epochs[0] for text in set(batch.texts[0]) | set(batch.texts[1])]
    assert len(used) == len(set(used)) == 5 * 14
    assert epochs[0][0].texts != epochs[1][0].texts
    assert list(ContrastiveTensionDataLoader(sentences, 8, 4, seed=1))[0].texts == epochs[0][0].texts
    with pytest.raises(ValueError, match="batch size must be divisible by pos_neg_ratio"):
        ContrastiveTensionDataLoader(sentences, 6, pos_neg_ratio=4)
    with pytest.raises(ValueError, match="pos_neg_ratio must be a positive integer, got 0"):
        contrastive_tension_examples(sentences, pos_neg_ratio=0)


def copy_encoder(grads):
    return grads["losses"][0]["model_copy"]["encoder"]


ENCODER_CASES = {
    "pair": (
        lambda m: ContrastiveTensionLoss(m),
        lambda m: st_losses.ContrastiveTensionLoss(m),
        lambda texts: [texts[0], texts[0][:2] + texts[1][2:]],  # rows 0 and 1 the same sentence twice
        np.array([1, 1, 0, 0, 0, 0], np.float32),
    ),
    "in_batch_negatives": (
        lambda m: ContrastiveTensionLossInBatchNegatives(m, scale=10.0),
        lambda m: st_losses.ContrastiveTensionLossInBatchNegatives(m, scale=10.0),
        lambda texts: texts[:1],
        None,
    ),
}


@pytest.mark.parametrize("case", sorted(ENCODER_CASES))
def test_model_and_copy_gradients_equal_sentence_transformers_on_an_encoder(models, rows, case):
    """Through the train step's batch_loss (dropout off): the value, the gradients of the model (ST's
    model2) and of the model copy (ST's model1), every encoder tensor."""
    model, torch_model = models
    make_ours, make_theirs, columns_of, labels = ENCODER_CASES[case]
    texts = columns_of(rows[0])
    loss = make_ours(model)
    batch = jaxst_batch(model, texts, labels)
    loss_params = loss.init_params(jax.random.key(0), 32)
    value, both_grads = jaxst_value_and_grads(
        model, loss, batch, loss_params=loss_params, encoder_of=lambda g: (model_encoder(g), copy_encoder(g))
    )()
    for grads, theirs in zip(both_grads, (None, lambda st_loss, _: st_loss.model1), strict=True):
        expected, expected_grads, scales = torch_value_and_grads(
            torch_model, make_theirs, texts, labels, encoder_of=theirs
        )
        assert value == pytest.approx(expected, rel=TOLERANCE)
        assert_same_gradients(grads, expected_grads, scales)


def test_both_losses_train_through_fit_with_a_model_copy(tiny_folder):
    sentences = [r["anchor"] for r in read_tsv("pairs/snli_triplets.tsv.gz", "test")[:30]]
    fit_steps(tiny_folder, ContrastiveTensionLoss, ContrastiveTensionDataLoader(sentences, 8, 4, seed=0))
    singles = [InputExample(texts=[s]) for s in sentences[:16]]
    fit_steps(tiny_folder, ContrastiveTensionLossInBatchNegatives, singles)
