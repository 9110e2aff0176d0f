"""ContrastiveLoss and OnlineContrastiveLoss against sentence-transformers' own classes."""

import numpy as np
import pytest
from sentence_transformers.sentence_transformer import losses as st_losses
from sentence_transformers.sentence_transformer.losses.contrastive import SiameseDistanceMetric as STMetric

from jaxst.losses.contrastive import (
    ContrastiveLoss,
    OnlineContrastiveLoss,
    SiameseDistanceMetric,
    contrastive_loss,
    online_contrastive_loss,
)
from tests.losses.parity_checks import (
    assert_bfloat16_close,
    assert_matches_torch,
    assert_trace_time_error,
    assert_traces_once,
    assert_vmap_matches_loop,
    edge_cases,
    make_columns,
)

METRICS = {
    "cosine_distance": (SiameseDistanceMetric.COSINE_DISTANCE, STMetric.COSINE_DISTANCE),
    "euclidean": (SiameseDistanceMetric.EUCLIDEAN, STMetric.EUCLIDEAN),
    "manhattan": (SiameseDistanceMetric.MANHATTAN, STMetric.MANHATTAN),
}
LABEL_KINDS = ("mixed", "all_positive", "all_negative")


def pair_labels(kind: str, batch: int, seed: int = 1) -> np.ndarray:
    if kind == "all_positive":
        return np.ones(batch, dtype=np.int64)
    if kind == "all_negative":
        return np.zeros(batch, dtype=np.int64)
    labels = np.random.default_rng(seed).integers(0, 2, batch)
    labels[:3] = (1, 1, 0)[: min(batch, 3)]  # positive pairs at rows 1 and 0, a negative at row 2
    return labels


def cases(seed: int) -> dict:
    """The edge cases with mixed labels, and random pairs with labels all 1 and all 0."""
    cases = edge_cases(2, lambda batch: pair_labels("mixed", batch, seed), seed=seed)
    random_columns = cases["random"][0]
    for kind in LABEL_KINDS[1:]:
        cases[kind] = (random_columns, pair_labels(kind, len(random_columns[0])))
    return cases


@pytest.mark.parametrize("metric", METRICS)
def test_contrastive_matches_sentence_transformers(metric):
    ours, theirs = METRICS[metric]
    margin = 2.0 if metric != "cosine_distance" else 0.5  # a margin that leaves some negatives active
    loss = ContrastiveLoss(None, distance_metric=ours, margin=margin)
    make_theirs = lambda m: st_losses.ContrastiveLoss(m, distance_metric=theirs, margin=margin)
    assert_matches_torch(loss.compute, make_theirs, cases(seed=0))


@pytest.mark.filterwarnings("ignore:ContrastiveLoss expects binary labels")
def test_contrastive_sum_and_soft_labels_match_sentence_transformers():
    columns = make_columns("random", 2, seed=3)
    labels = np.array([0.0, 1.0, 0.3, 0.7, 1.0, 0.0], dtype=np.float32)
    loss = lambda cols, labs: contrastive_loss(*cols, labs, size_average=False, margin=0.9)
    make_theirs = lambda m: st_losses.ContrastiveLoss(m, size_average=False, margin=0.9)
    assert_matches_torch(loss, make_theirs, {"soft labels": (columns, labels)})


@pytest.mark.parametrize("metric", METRICS)
def test_online_contrastive_matches_sentence_transformers(metric):
    ours, theirs = METRICS[metric]
    margin = 5.0 if metric != "cosine_distance" else 0.5
    loss = OnlineContrastiveLoss(None, distance_metric=ours, margin=margin)
    make_theirs = lambda m: st_losses.OnlineContrastiveLoss(m, distance_metric=theirs, margin=margin)
    assert_matches_torch(loss.compute, make_theirs, cases(seed=5))


@pytest.mark.filterwarnings("ignore:OnlineContrastiveLoss expects binary labels")
def test_online_contrastive_ignores_other_labels_and_selects_hard_pairs():
    columns = make_columns("random", 2, batch=8, seed=7)
    labels = np.array([0, 1, 2, 1, 0, 2, 0, 1])
    loss = lambda cols, labs: online_contrastive_loss(*cols, labs, distance_metric="euclidean", margin=5.0)
    assert_matches_torch(
        loss,
        lambda m: st_losses.OnlineContrastiveLoss(m, distance_metric=STMetric.EUCLIDEAN, margin=5.0),
        {"labels 0, 1 and 2": (columns, labels)},
    )


LOSSES = {
    "contrastive": lambda cols, labs: contrastive_loss(*cols, labs),
    "online_contrastive": lambda cols, labs: online_contrastive_loss(
        *cols, labs, distance_metric="euclidean"
    ),
}


@pytest.mark.parametrize("name", LOSSES)
def test_jit_vmap_and_bfloat16(name):
    loss = LOSSES[name]
    groups = [(make_columns("random", 2, seed=s), pair_labels("mixed", 6, seed=s)) for s in range(3)]
    assert_traces_once(loss, *groups[0])
    assert_vmap_matches_loop(loss, groups)
    assert_bfloat16_close(loss, *groups[0])


@pytest.mark.parametrize("name", LOSSES)
def test_wrong_shapes_fail_at_trace_time(name):
    loss = LOSSES[name]
    a, b = make_columns("random", 2)
    labels = pair_labels("mixed", 6)
    assert_trace_time_error(loss, [a, b[:5]], labels, "(6, 8)", "(5, 8)")
    assert_trace_time_error(loss, [a, b], labels[:4], "(6, 8)", "(4,)")
    assert_trace_time_error(loss, [a[0], b[0]], labels[:1], "(8,)", "rank 2")


def test_unknown_distance_metric_is_named():
    with pytest.raises(ValueError, match="'cosine_similarity'"):
        ContrastiveLoss(None, distance_metric="cosine_similarity")
