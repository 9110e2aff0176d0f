"""MSELoss, MarginMSELoss and DistillKLDivLoss against sentence-transformers' own classes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from sentence_transformers import util as st_util
from sentence_transformers.sentence_transformer import losses as st_losses

from jaxst.losses.distillation import (
    DistillKLDivLoss,
    MarginMSELoss,
    MSELoss,
    distill_kl_div_loss,
    margin_mse_loss,
    mse_loss,
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

ST_SIMILARITY = {"dot": st_util.pairwise_dot_score, "cosine": st_util.pairwise_cos_sim}


def teacher(shape: tuple, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize(("num_columns", "teacher_per_column"), [(1, False), (2, False), (2, True)])
def test_mse_matches_sentence_transformers(num_columns, teacher_per_column):
    def labels(batch):
        return teacher((batch, num_columns, 8) if teacher_per_column else (batch, 8))

    assert_matches_torch(MSELoss(None).compute, st_losses.MSELoss, edge_cases(num_columns, labels, seed=2))


def test_mse_projection_matches_sentence_transformers():
    loss = MSELoss(None, projection_dim=5)
    projection = loss.init_params(jax.random.key(0), 8)
    assert projection["kernel"].shape == (8, 5) and projection["bias"].shape == (5,)

    def make_theirs(model):
        theirs = st_losses.MSELoss(model, projection_dim=5)
        with torch.no_grad():
            theirs.projection.weight.copy_(torch.tensor(np.asarray(projection["kernel"]).T))
            theirs.projection.bias.copy_(torch.tensor(np.asarray(projection["bias"])))
        return theirs

    columns = make_columns("random", 2, seed=3)
    cases = {"projected": (columns, teacher((6, 5)))}
    assert_matches_torch(lambda cols, labs: loss.compute(cols, labs, projection), make_theirs, cases)


MARGIN_LABELS = {  # name: (number of negatives, label shape for a batch)
    "margins_one_negative": (1, lambda batch: (batch,)),
    "margins_two_negatives": (2, lambda batch: (batch, 2)),
    "scores_two_negatives": (2, lambda batch: (batch, 3)),
}


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
@pytest.mark.parametrize("labels", MARGIN_LABELS)
def test_margin_mse_matches_sentence_transformers(labels, similarity):
    num_negatives, label_shape = MARGIN_LABELS[labels]
    cases = edge_cases(2 + num_negatives, lambda batch: teacher(label_shape(batch)), seed=4)
    cases["all_labels_equal"] = (cases["random"][0], np.full(label_shape(6), 0.5, np.float32))
    ours = MarginMSELoss(None, similarity_fct=similarity)
    theirs = lambda m: st_losses.MarginMSELoss(m, similarity_fct=ST_SIMILARITY[similarity])
    assert_matches_torch(ours.compute, theirs, cases)


KL_CONFIGS = {
    "default": {},
    "cosine_temperature": {"similarity_fct": "cosine", "temperature": 0.05},
    "separate_temperatures": {"temperature": 2.0, "student_temperature": 0.5, "teacher_temperature": 3.0},
}


@pytest.mark.parametrize("config", KL_CONFIGS)
def test_distill_kl_div_matches_sentence_transformers(config):
    kwargs = KL_CONFIGS[config]
    their_kwargs = {k: ST_SIMILARITY.get(v, v) if k == "similarity_fct" else v for k, v in kwargs.items()}
    cases = edge_cases(4, lambda batch: teacher((batch, 3)) * 4, seed=6)
    excluded = cases["random"][1].copy()
    excluded[:, 2] = -np.inf  # the teacher excludes the last candidate of every query
    cases["excluded_candidate"] = (cases["random"][0], excluded)
    cases["all_labels_equal"] = (cases["random"][0], np.ones((6, 3), np.float32))  # a uniform teacher
    ours = DistillKLDivLoss(None, **kwargs)
    assert_matches_torch(ours.compute, lambda m: st_losses.DistillKLDivLoss(m, **their_kwargs), cases)


FUNCTIONS = {  # name: (loss, number of columns, labels for a batch of 6)
    "mse": (lambda cols, labs: mse_loss(jnp.stack(cols, 1), labs), 2, teacher((6, 8))),
    "margin_mse": (
        lambda cols, labs: margin_mse_loss(cols[0], cols[1], jnp.stack(cols[2:], 1), labs),
        4,
        teacher((6, 2)),
    ),
    "distill_kl_div": (
        lambda cols, labs: distill_kl_div_loss(cols[0], jnp.stack(cols[1:], 1), labs),
        4,
        teacher((6, 3)),
    ),
}


@pytest.mark.parametrize("name", FUNCTIONS)
def test_jit_vmap_and_bfloat16(name):
    loss, num_columns, labels = FUNCTIONS[name]
    groups = [(make_columns("random", num_columns, seed=s), labels + s) for s in range(3)]
    assert_traces_once(loss, *groups[0])
    assert_vmap_matches_loop(loss, groups)
    assert_bfloat16_close(loss, *groups[0])


def test_wrong_shapes_fail_at_trace_time():
    q, p, n1, n2 = make_columns("random", 4)
    mse, _, _ = FUNCTIONS["mse"]
    assert_trace_time_error(mse, [q, p], teacher((5, 8)), "(6, 2, 8)", "(5, 8)")
    assert_trace_time_error(mse, [q, p], teacher((6, 7)), "(6, 2, 8)", "(6, 7)")
    margin, _, _ = FUNCTIONS["margin_mse"]
    assert_trace_time_error(margin, [q, p[:5], n1, n2], teacher((6, 2)), "(6, 8)", "(5, 8)")
    assert_trace_time_error(margin, [q, p, n1, n2], teacher((6, 4)), "(6, 2, 8)", "(6, 4)")
    kl, _, _ = FUNCTIONS["distill_kl_div"]
    assert_trace_time_error(kl, [q, p, n1, n2], teacher((6, 2)), "(6, 3, 8)", "(6, 2)")
    assert_trace_time_error(kl, [q[0], p, n1, n2], teacher((6, 3)), "(8,)", "rank 2")
    assert_trace_time_error(kl, [q, p], teacher((6, 1)), "at least 2 candidates", "(6, 1, 8)")
    with pytest.raises(ValueError, match="student_temperature must be a positive finite number"):
        DistillKLDivLoss(None, student_temperature=0.0)
