"""TripletLoss against sentence-transformers' own class."""

import numpy as np
import pytest
from sentence_transformers.sentence_transformer import losses as st_losses
from sentence_transformers.sentence_transformer.losses.triplet import TripletDistanceMetric as STMetric

from jaxst.losses.triplet import TripletDistanceMetric, TripletLoss, triplet_loss
from tests.losses.parity_checks import (
    assert_bfloat16_close,
    assert_matches_torch,
    assert_trace_time_error,
    assert_traces_once,
    assert_vmap_matches_loop,
    edge_cases,
    make_columns,
)

# metric: (ours, theirs, a margin that leaves some triplets inactive on these inputs)
METRICS = {
    "euclidean": (TripletDistanceMetric.EUCLIDEAN, STMetric.EUCLIDEAN, 1.0),
    "cosine": (TripletDistanceMetric.COSINE, STMetric.COSINE, 0.1),
    "manhattan": (TripletDistanceMetric.MANHATTAN, STMetric.MANHATTAN, 3.0),
}
MANHATTAN_TIES = ("duplicate_rows", "zero_vectors")


@pytest.mark.parametrize("margin_kind", ["default", "mixed"])
@pytest.mark.parametrize("metric", METRICS)
def test_matches_sentence_transformers(metric, margin_kind):
    ours, theirs, mixed_margin = METRICS[metric]
    margin = {"triplet_margin": mixed_margin} if margin_kind == "mixed" else {}
    cases = edge_cases(3, lambda batch: None, seed=2)
    loss = TripletLoss(None, distance_metric=ours, **margin)
    assert_matches_torch(
        loss.compute, lambda m: st_losses.TripletLoss(m, distance_metric=theirs, **margin), cases
    )


@pytest.mark.parametrize("case", MANHATTAN_TIES)
def test_manhattan_ties_take_torch_subgradient(case):
    cases = {case: (make_columns(case, 3, seed=2), None)}
    loss = TripletLoss(None, distance_metric="manhattan")
    assert_matches_torch(
        loss.compute, lambda m: st_losses.TripletLoss(m, distance_metric=STMetric.MANHATTAN), cases
    )


def loss_fn(cols, labs):
    return triplet_loss(*cols, triplet_margin=1.0)


def test_jit_vmap_and_bfloat16():
    groups = [(make_columns("random", 3, seed=s), None) for s in range(3)]
    assert_traces_once(loss_fn, *groups[0])
    assert_vmap_matches_loop(loss_fn, groups)
    assert_bfloat16_close(loss_fn, *groups[0])


def test_wrong_shapes_fail_at_trace_time():
    a, p, n = make_columns("random", 3)
    assert_trace_time_error(loss_fn, [a, p, n[:5]], None, "(6, 8)", "(5, 8)")
    assert_trace_time_error(loss_fn, [a[0], p[0], n[0]], None, "(8,)", "rank 2")
    assert np.isfinite(loss_fn([a * 0, p * 0, n * 0], None))
