"""CosineSimilarityLoss, CoSENTLoss and AnglELoss against sentence-transformers' own classes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from sentence_transformers import util as st_util
from sentence_transformers.sentence_transformer import losses as st_losses

from jaxst.losses.cosine import (
    AnglELoss,
    CoSENTLoss,
    CosineSimilarityLoss,
    angle_loss,
    cosent_loss,
    cosine_similarity_loss,
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

LABEL_KINDS = ("scores", "all_equal", "ties")


def score_labels(kind: str, batch: int, seed: int = 1) -> np.ndarray:
    if kind == "all_equal":
        return np.full(batch, 0.5, dtype=np.float32)
    labels = np.random.default_rng(seed).uniform(0, 1, batch).astype(np.float32)
    if kind == "ties":
        labels = np.round(labels * 2) / 2  # values in {0, 0.5, 1}
    return labels


def cases() -> dict:
    """The edge cases with score labels, and random pairs with all labels equal and with tied labels."""
    cases = edge_cases(2, lambda batch: score_labels("scores", batch), seed=11)
    random_columns = cases["random"][0]
    for kind in LABEL_KINDS[1:]:
        cases[kind] = (random_columns, score_labels(kind, len(random_columns[0])))
    return cases


LOSSES = {  # name: (our class, sentence-transformers' class), both with default hyperparameters
    "cosine_similarity": (CosineSimilarityLoss, st_losses.CosineSimilarityLoss),
    "cosent": (CoSENTLoss, st_losses.CoSENTLoss),
    "angle": (AnglELoss, st_losses.AnglELoss),
}


@pytest.mark.parametrize("name", LOSSES)
def test_pair_losses_match_sentence_transformers(name):
    ours, theirs = LOSSES[name]
    assert_matches_torch(ours(None).compute, theirs, cases())


def test_cosine_similarity_loss_options_match_sentence_transformers():
    columns = make_columns("random", 2, seed=4)
    labels = score_labels("scores", 6)
    loss = CosineSimilarityLoss(
        None, loss_fct=lambda p, t: jnp.mean(jnp.abs(p - t)), cos_score_transformation=jax.nn.relu
    )
    make_theirs = lambda m: st_losses.CosineSimilarityLoss(
        m, loss_fct=torch.nn.L1Loss(), cos_score_transformation=torch.nn.ReLU()
    )
    assert_matches_torch(loss.compute, make_theirs, {"L1 of relu(cos)": (columns, labels)})


@pytest.mark.parametrize(("similarity", "theirs"), [("dot", st_util.pairwise_dot_score)])
def test_cosent_options_match_sentence_transformers(similarity, theirs):
    columns = make_columns("random", 2, seed=8)
    labels = np.array([1, 0, 1, 1, 0, 0])
    loss = CoSENTLoss(None, scale=3.0, similarity_fct=similarity)
    make_theirs = lambda m: st_losses.CoSENTLoss(m, scale=3.0, similarity_fct=theirs)
    cases = {"int labels": (columns, labels), "bool labels": (columns, labels.astype(bool))}
    assert_matches_torch(loss.compute, make_theirs, cases)


@pytest.mark.parametrize("num_columns", [3, 4])
def test_angle_on_tuples_matches_sentence_transformers(num_columns):
    columns = make_columns("random", num_columns, dim=7, seed=num_columns)  # an odd dim: padded for the sine
    cases = {"no labels": (columns, None), "labels": (columns, score_labels("scores", 6))}
    make_theirs = lambda m: st_losses.AnglELoss(m, scale=5.0)
    assert_matches_torch(AnglELoss(None, scale=5.0).compute, make_theirs, cases)


def test_angle_pairs_without_labels_are_refused():
    with pytest.raises(ValueError, match="AnglELoss needs score labels"):
        AnglELoss(None).compute(make_columns("random", 2), None)


FUNCTIONS = {
    "cosine_similarity": lambda cols, labs: cosine_similarity_loss(*cols, labs),
    "cosent": lambda cols, labs: cosent_loss(*cols, labs),
    "angle": lambda cols, labs: angle_loss(*cols, labs),
}


@pytest.mark.parametrize("name", FUNCTIONS)
def test_jit_vmap_and_bfloat16(name):
    loss = FUNCTIONS[name]
    groups = [(make_columns("random", 2, seed=s), score_labels("scores", 6, seed=s)) for s in range(3)]
    assert_traces_once(loss, *groups[0])
    assert_vmap_matches_loop(loss, groups)
    assert_bfloat16_close(loss, *groups[0])


@pytest.mark.parametrize("name", FUNCTIONS)
def test_wrong_shapes_fail_at_trace_time(name):
    loss = FUNCTIONS[name]
    a, b = make_columns("random", 2)
    labels = score_labels("scores", 6)
    assert_trace_time_error(loss, [a, b[:5]], labels, "(6, 8)", "(5, 8)")
    assert_trace_time_error(loss, [a, b], labels[:4], "(6, 8)", "(4,)")
    assert_trace_time_error(loss, [a[0], b[0]], labels[:1], "(8,)", "rank 2")
