"""MatryoshkaLoss around jaxst losses against sentence-transformers' MatryoshkaLoss around the same losses."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from sentence_transformers.sentence_transformer import losses as st_losses

from jaxst.losses.batch_triplet import BatchHardTripletLoss
from jaxst.losses.cosine import CoSENTLoss
from jaxst.losses.distillation import MSELoss
from jaxst.losses.gist import GISTEmbedLoss
from jaxst.losses.matryoshka import MatryoshkaLoss, matryoshka_loss
from jaxst.losses.mega_batch import MegaBatchMarginLoss, mega_batch_margin_loss
from jaxst.losses.ranking import MultipleNegativesRankingLoss
from jaxst.validation.torch_reference import FixedEmbeddingModel, torch_loss_and_grads
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
from tests.losses.test_gist import guide_of, with_tokenizer
from tests.losses.test_mega_batch import RowIndexedModel

DIM = 8
# Unsorted on purpose: both sort them largest first, carrying the weights along.
DIMS, WEIGHTS = (4, 8, 2), (1.0, 2.0, 0.5)


def teacher(shape):
    return np.random.default_rng(5).standard_normal(shape).astype(np.float32)


# name -> (jaxst loss class, ST loss class, number of columns, labels for a batch size)
WRAPPED = {
    "mnrl": (MultipleNegativesRankingLoss, st_losses.MultipleNegativesRankingLoss, 3, lambda b: None),
    "cosent": (CoSENTLoss, st_losses.CoSENTLoss, 2, lambda b: np.linspace(0, 1, b).astype(np.float32)),
    # Teacher embeddings of the full dimension: truncated to each d as well.
    "mse": (MSELoss, st_losses.MSELoss, 2, lambda b: teacher((b, DIM))),
    "batch_hard": (BatchHardTripletLoss, st_losses.BatchHardTripletLoss, 1, lambda b: np.arange(b) % 2),
}


def st_matryoshka(model: FixedEmbeddingModel, st_class, **options) -> torch.nn.Module:
    model.get_embedding_dimension = model.get_sentence_embedding_dimension
    return st_losses.MatryoshkaLoss(model, st_class(model), **options)


def nonzero_edge_cases(num_columns: int, labels) -> dict:
    """The edge cases but zero vectors, where sentence-transformers' ForwardDecorator re-normalises a zero
    vector once per dimension (gradients of 1e24, 1e36, inf); see test_zero_vectors_match_the_cached_path."""
    cases = edge_cases(num_columns, labels, dim=DIM)
    del cases["zero_vectors"]
    return cases


@pytest.mark.parametrize("name", WRAPPED)
def test_matches_sentence_transformers(name):
    jax_class, st_class, num_columns, labels = WRAPPED[name]
    loss = MatryoshkaLoss(None, jax_class(None), matryoshka_dims=DIMS, matryoshka_weights=WEIGHTS)
    assert_matches_torch(
        loss.compute,
        lambda model: st_matryoshka(model, st_class, matryoshka_dims=DIMS, matryoshka_weights=WEIGHTS),
        nonzero_edge_cases(num_columns, labels),
    )


# name -> (jaxst loss class, ST gradient-cached loss with the same value and gradient)
CACHED = {
    "mnrl": (MultipleNegativesRankingLoss, st_losses.CachedMultipleNegativesRankingLoss),
    "mega_batch": (MegaBatchMarginLoss, st_losses.MegaBatchMarginLoss),
}


@pytest.mark.parametrize("name", CACHED)
def test_zero_vectors_match_the_cached_path(name):
    """Around a gradient-cached loss, sentence-transformers truncates the full embeddings for every dimension
    (its CachedLossDecorator), as jaxst always does: zero vectors included, values and gradients agree."""
    jax_class, st_class = CACHED[name]
    loss = MatryoshkaLoss(None, jax_class(None), matryoshka_dims=DIMS, matryoshka_weights=WEIGHTS)
    value_and_grad = jax.jit(jax.value_and_grad(loss.compute))
    for case, (columns, _) in edge_cases(2, lambda b: None, dim=DIM).items():
        value, grads = value_and_grad([jnp.asarray(c) for c in columns], None)
        leaves = [torch.tensor(c, requires_grad=True) for c in columns]
        model = RowIndexedModel(leaves)
        model.get_embedding_dimension = model.get_sentence_embedding_dimension
        st_loss = st_losses.MatryoshkaLoss(
            model, st_class(model, mini_batch_size=4), matryoshka_dims=DIMS, matryoshka_weights=WEIGHTS
        )
        rows = torch.arange(len(columns[0]))[:, None]
        expected = st_loss([{"column": i, "input_ids": rows} for i in range(2)], None)
        expected.backward()
        assert relative_error(value, float(expected.detach())) <= PARITY_RTOL, case
        for grad, leaf in zip(grads, leaves, strict=True):
            assert relative_error(grad, leaf.grad.numpy()) <= PARITY_RTOL, case


class GuidedColumns(torch.nn.Module):
    """ST's MatryoshkaLoss(GISTEmbedLoss) on columns [anchor, positive, guide anchor, guide positive]."""

    def __init__(self, model: FixedEmbeddingModel):
        super().__init__()
        guide = with_tokenizer(FixedEmbeddingModel(model.columns[2:]))
        gist = st_losses.GISTEmbedLoss(with_tokenizer(model), guide, temperature=0.5)
        self.loss = st_matryoshka(model, lambda m: gist, matryoshka_dims=(8, 3))

    def forward(self, features, labels):
        return self.loss(features[:2], labels)


def test_guide_embeddings_pass_through_untruncated():
    """sentence-transformers truncates only the trained model's output; the guide's stays whole."""
    loss = MatryoshkaLoss(None, GISTEmbedLoss(None, None, temperature=0.5), matryoshka_dims=(8, 3))
    cases = {
        name: ([*columns, *[guide_of(c) for c in columns]], None)
        for name, (columns, _) in nonzero_edge_cases(2, lambda b: None).items()
        if name != "batch_of_one"  # where GIST's guide leaves a single logit: see test_gist
    }
    assert_matches_torch(
        lambda cols, labels: loss.compute(cols[:2], labels, guide_embeddings=cols[2:]), GuidedColumns, cases
    )


def test_n_dims_per_step_draws_distinct_dims_uniformly():
    """With n_dims_per_step=2 of 3 dims, each key's value and gradient equal sentence-transformers' loss on
    one of the three pairs of dimensions (with their weights), and over 30 keys every pair comes up."""
    columns = make_columns("random", 2, dim=DIM)
    loss = MatryoshkaLoss(
        None,
        MegaBatchMarginLoss(None, positive_margin=1.0, negative_margin=-0.5),
        matryoshka_dims=DIMS,
        matryoshka_weights=WEIGHTS,
        n_dims_per_step=2,
    )
    assert loss.needs_rng
    pairs = {}
    for pair in itertools.combinations(range(3), 2):
        pairs[pair] = torch_loss_and_grads(
            lambda model, pair=pair: st_matryoshka(
                model,
                lambda m: st_losses.MegaBatchMarginLoss(
                    m, positive_margin=1.0, negative_margin=-0.5, use_mini_batched_version=False
                ),
                matryoshka_dims=[DIMS[i] for i in pair],
                matryoshka_weights=[WEIGHTS[i] for i in pair],
            ),
            columns,
        )
    step = jax.jit(jax.value_and_grad(lambda cols, key: loss.compute(cols, None, rng=key)))
    seen = set()
    for seed in range(30):
        value, grads = step([jnp.asarray(c) for c in columns], jax.random.key(seed))
        matches = [pair for pair, (v, _) in pairs.items() if relative_error(value, v) <= PARITY_RTOL]
        assert len(matches) == 1, (seed, float(value))
        for grad, expected in zip(grads, pairs[matches[0]][1], strict=True):
            assert relative_error(grad, expected) <= PARITY_RTOL
        seen.add(matches[0])
    assert seen == set(pairs)
    with pytest.raises(ValueError, match="needs a jax.random key"):
        loss.compute([jnp.asarray(c) for c in columns], None)


def mega_batch_matryoshka(columns, labels):
    return matryoshka_loss(
        lambda cols, labs: mega_batch_margin_loss(*cols),
        columns,
        labels,
        matryoshka_dims=DIMS,
        matryoshka_weights=WEIGHTS,
    )


def test_jit_vmap_bfloat16_and_shapes():
    columns = make_columns("random", 2, dim=DIM)
    assert_traces_once(mega_batch_matryoshka, columns, None)
    assert_vmap_matches_loop(
        mega_batch_matryoshka, [(make_columns("random", 2, dim=DIM, seed=s), None) for s in range(3)]
    )
    assert_bfloat16_close(mega_batch_matryoshka, columns, None)
    small = [jnp.zeros((6, 6))] * 2
    assert_trace_time_error(mega_batch_matryoshka, small, None, "dimension 8", "(6, 6)")
    assert_trace_time_error(
        mega_batch_matryoshka, [jnp.zeros((6, 8)), jnp.zeros((6, 9))], None, "(6, 8)", "(6, 9)"
    )


def test_class_and_options():
    inner = MSELoss(None, projection_dim=4)
    loss = MatryoshkaLoss(None, inner, matryoshka_dims=[2, 4], n_dims_per_step=5)
    assert (loss.min_texts, loss.max_texts, loss.needs_labels, loss.needs_rng) == (1, None, True, False)
    assert loss.get_config_dict() == {
        "loss": "MSELoss",
        "matryoshka_dims": (4, 2),
        "matryoshka_weights": (1, 1),
        "n_dims_per_step": 5,
    }
    params = loss.init_params(jax.random.key(0), 4)
    assert jax.tree.structure(params) == jax.tree.structure(inner.init_params(jax.random.key(0), 4))
    with pytest.raises(ValueError, match="at least one dimension"):
        MatryoshkaLoss(None, inner, matryoshka_dims=[])
    with pytest.raises(ValueError, match="must be > 0"):
        MatryoshkaLoss(None, inner, matryoshka_dims=[4, 0])
    with pytest.raises(ValueError, match="2 weights for 1 dims"):
        MatryoshkaLoss(None, inner, matryoshka_dims=[4], matryoshka_weights=[1, 2])
