"""global_orthogonal_regularization_loss against sentence-transformers' GlobalOrthogonalRegularizationLoss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sentence_transformers import util as st_util
from sentence_transformers.sentence_transformer import losses as st_losses

from jaxst.losses.orthogonal import GlobalOrthogonalRegularizationLoss, global_orthogonal_regularization_loss
from jaxst.similarity import cos_sim, dot_score
from tests.losses.parity_checks import (
    assert_bfloat16_close,
    assert_matches_torch,
    assert_trace_time_error,
    assert_traces_once,
    assert_vmap_matches_loop,
    edge_cases,
    make_columns,
)


class SummedTerms(torch.nn.Module):
    """sentence-transformers' loss returns {"gor_mean", "gor_second_moment"}; its trainer sums the terms."""

    def __init__(self, loss: torch.nn.Module):
        super().__init__()
        self.loss = loss

    def forward(self, features, labels):
        return torch.stack(list(self.loss(features, labels).values())).sum()


OPTIONS = {
    "defaults": ({}, {}),
    "sum_second_moment_only": (
        {"mean_weight": 0.0, "aggregation": "sum"},
        {"mean_weight": 0.0, "aggregation": "sum"},
    ),
    "dot_mean_only": (
        {"similarity_fct": dot_score, "second_moment_weight": None, "mean_weight": 0.5},
        {"similarity_fct": st_util.dot_score, "second_moment_weight": None, "mean_weight": 0.5},
    ),
}


def jax_loss(**options):
    return lambda columns, labels: global_orthogonal_regularization_loss(columns, **options)


@pytest.mark.parametrize("num_columns", [1, 3])
@pytest.mark.parametrize("option", OPTIONS)
def test_matches_sentence_transformers(option, num_columns):
    jax_options, st_options = OPTIONS[option]
    # The mean term squares a mean of similarities; around 0 it is a sum with heavy cancellation, whose
    # float32 rounding (1e-6 absolute, differently ordered in each framework) dwarfs it. Shifting the
    # nonzero rows by 0.5 keeps the mean away from 0; zero rows stay zero.
    cases = {
        name: ([c + 0.5 * (np.abs(c).sum(axis=1, keepdims=True) > 0) for c in columns], labels)
        for name, (columns, labels) in edge_cases(num_columns, lambda batch: None).items()
    }
    # Columns of different batch sizes, in D = 2 where M2 is close to 1 / D (both sides of the relu).
    cases["ragged_columns"] = (
        [make_columns("random", 1, batch=b, dim=2)[0] for b in (5, 3, 2)[:num_columns]],
        None,
    )
    assert_matches_torch(
        jax_loss(**jax_options),
        lambda model: SummedTerms(st_losses.GlobalOrthogonalRegularizationLoss(model, **st_options)),
        cases,
    )


def test_jit_vmap_bfloat16_and_shapes():
    loss = jax_loss()
    columns = make_columns("random", 2)
    assert_traces_once(loss, columns, None)
    assert_vmap_matches_loop(loss, [(make_columns("random", 2, seed=s), None) for s in range(3)])
    assert_bfloat16_close(loss, columns, None)
    assert_trace_time_error(loss, [np.zeros((6, 8)), np.zeros(8)], None, "(8,)", "rank 2")


def test_class_and_options():
    columns = make_columns("random", 2)
    loss = GlobalOrthogonalRegularizationLoss(None, aggregation="sum")
    np.testing.assert_allclose(
        loss.compute(columns, None), jax_loss(aggregation="sum")(columns, None), rtol=1e-6
    )
    assert loss.get_config_dict() == {
        "similarity_fct": cos_sim.__name__,
        "mean_weight": 1.0,
        "second_moment_weight": 1.0,
        "aggregation": "sum",
    }
    with pytest.raises(ValueError, match="At least one of mean_weight or second_moment_weight"):
        GlobalOrthogonalRegularizationLoss(None, mean_weight=0, second_moment_weight=None)
    with pytest.raises(ValueError, match="aggregation must be 'mean' or 'sum', got 'max'"):
        global_orthogonal_regularization_loss(columns, aggregation="max")
