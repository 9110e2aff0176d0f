"""MultipleNegativesRankingLoss (all options) and its symmetric form: sentence-transformers parity, pmap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sentence_transformers import util as st_util
from sentence_transformers.sentence_transformer import losses as st_losses

from jaxst.losses.ranking import (
    MultipleNegativesRankingLoss,
    MultipleNegativesSymmetricRankingLoss,
    multiple_negatives_ranking_loss,
    multiple_negatives_symmetric_ranking_loss,
)
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

ALL_DIRECTIONS = ("query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc")
# name: (number of columns, our keyword arguments); sentence-transformers takes the same ones, with
# its similarity function where ours names one.
CONFIGS = {
    "pairs": (2, {}),
    "two_hard_negatives": (4, {}),
    "dot_scale_5": (3, {"similarity_fct": "dot", "scale": 5.0}),
    "all_directions": (3, {"directions": ALL_DIRECTIONS}),
    "symmetric_per_direction": (
        3,
        {"directions": ("query_to_doc", "doc_to_query"), "partition_mode": "per_direction"},
    ),
    "hard_negatives_hardness": (3, {"hardness_mode": "hard_negatives", "hardness_strength": 2.0}),
    "in_batch_hardness": (3, {"hardness_mode": "in_batch_negatives", "hardness_strength": 2.0}),
    "all_negatives_hardness": (3, {"hardness_mode": "all_negatives", "hardness_strength": 2.0}),
}
ST_SIMILARITY = {"dot": st_util.dot_score}


def st_kwargs(kwargs: dict) -> dict:
    return {k: ST_SIMILARITY.get(v, v) if k == "similarity_fct" else v for k, v in kwargs.items()}


@pytest.mark.parametrize("config", CONFIGS)
def test_matches_sentence_transformers(config):
    num_columns, kwargs = CONFIGS[config]
    ours = MultipleNegativesRankingLoss(None, **kwargs)
    make_theirs = lambda m: st_losses.MultipleNegativesRankingLoss(m, **st_kwargs(kwargs))
    assert_matches_torch(ours.compute, make_theirs, edge_cases(num_columns, lambda batch: None, seed=3))


@pytest.mark.filterwarnings("ignore:The MultipleNegativesSymmetricRankingLoss is deprecated")
def test_symmetric_matches_sentence_transformers():
    ours = MultipleNegativesSymmetricRankingLoss(None, scale=10.0)
    make_theirs = lambda m: st_losses.MultipleNegativesSymmetricRankingLoss(m, scale=10.0)
    assert_matches_torch(ours.compute, make_theirs, edge_cases(3, lambda batch: None, seed=4))


DEVICES = 8
PER_DEVICE = 2
# Gathering touches every block's global offsets: one plain config, and one with all directions and hardness.
PMAP_CONFIGS = {
    "two_hard_negatives": CONFIGS["two_hard_negatives"],
    "all_directions_hardness": (
        3,
        {"directions": ALL_DIRECTIONS, "hardness_mode": "in_batch_negatives", "hardness_strength": 2.0},
    ),
}


def global_batch(num_columns: int, seed: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """anchors, positives [W * b, D] and negatives [W * b, K, D], with a duplicated row across devices."""
    columns = make_columns("random", num_columns, batch=DEVICES * PER_DEVICE, seed=seed)
    for column in columns:
        column[PER_DEVICE] = column[0]  # device 1's first row repeats device 0's first row
    return (
        jnp.asarray(columns[0]),
        jnp.asarray(columns[1]),
        jnp.stack([jnp.asarray(c) for c in columns[2:]], 1),
    )


def per_device(array: jax.Array) -> jax.Array:
    return array.reshape(DEVICES, PER_DEVICE, *array.shape[1:])


@pytest.mark.multi_device
@pytest.mark.parametrize("gather", [True, False])
@pytest.mark.parametrize("config", PMAP_CONFIGS)
def test_pmap_with_and_without_gathering(config, gather):
    """Per device: the value is the device's loss and the gradient that of the summed per-device losses.

    With gathering, the mean of the per-device values is the loss of one device on the concatenated batch,
    and each device's gradient is n_devices times its slice of that loss's gradient (the scaling that a
    data-parallel pmean of gradients undoes). Without, the global objective is the mean of per-device losses.
    """
    num_columns, kwargs = PMAP_CONFIGS[config]
    batch = global_batch(num_columns, seed=7)
    loss = lambda a, p, n: multiple_negatives_ranking_loss(
        a, p, n, axis_name="data", gather_across_devices=gather, **kwargs
    )
    values, grads = jax.pmap(jax.value_and_grad(loss, argnums=(0, 1, 2)), axis_name="data")(
        *[per_device(x) for x in batch]
    )
    assert values.shape == (DEVICES,)
    if gather:
        objective = lambda a, p, n: multiple_negatives_ranking_loss(a, p, n, **kwargs)
    else:
        objective = lambda a, p, n: jnp.mean(
            jax.vmap(lambda *xs: multiple_negatives_ranking_loss(*xs, **kwargs))(
                *[per_device(x) for x in (a, p, n)]
            )
        )
    expected_value, expected_grads = jax.jit(jax.value_and_grad(objective, argnums=(0, 1, 2)))(*batch)
    assert relative_error(values.mean(), expected_value) <= PARITY_RTOL
    for grad, expected in zip(grads, expected_grads, strict=True):
        assert relative_error(grad.reshape(expected.shape), DEVICES * expected) <= PARITY_RTOL


@pytest.mark.multi_device
def test_pmap_data_parallel_step_with_gathering_equals_one_device_on_the_global_batch():
    """Embeddings from a shared linear encoder: the pmean of per-device parameter gradients equals the
    gradient of one device's loss on the concatenated batch."""
    anchors, positives, negatives = global_batch(3, seed=9)
    weights = jnp.asarray(np.random.default_rng(0).standard_normal((8, 8)).astype(np.float32))

    def encoded_loss(w, a, p, n, **gathering):
        return multiple_negatives_ranking_loss(a @ w, p @ w, n @ w, scale=7.0, **gathering)

    def step(w, a, p, n):
        value, grad = jax.value_and_grad(encoded_loss)(
            w, a, p, n, axis_name="data", gather_across_devices=True
        )
        return jax.lax.pmean(value, "data"), jax.lax.pmean(grad, "data")

    replicated = jnp.broadcast_to(weights, (DEVICES, *weights.shape))
    values, grads = jax.pmap(step, axis_name="data")(
        replicated, *[per_device(x) for x in (anchors, positives, negatives)]
    )
    expected_value, expected_grad = jax.jit(jax.value_and_grad(encoded_loss))(
        weights, anchors, positives, negatives
    )
    assert relative_error(values, np.full(DEVICES, expected_value)) <= PARITY_RTOL
    assert relative_error(grads, np.broadcast_to(expected_grad, grads.shape)) <= PARITY_RTOL


FUNCTIONS = {
    "mnrl": lambda cols, labs: multiple_negatives_ranking_loss(cols[0], cols[1], jnp.stack(cols[2:], 1)),
    "symmetric": lambda cols, labs: multiple_negatives_symmetric_ranking_loss(cols[0], cols[1]),
}


@pytest.mark.parametrize("name", FUNCTIONS)
def test_jit_vmap_and_bfloat16(name):
    loss = FUNCTIONS[name]
    groups = [(make_columns("random", 3, seed=s), None) for s in range(3)]
    assert_traces_once(loss, *groups[0])
    assert_vmap_matches_loop(loss, groups)
    assert_bfloat16_close(loss, *groups[0], rtol=5e-2)


def test_wrong_shapes_fail_at_trace_time():
    a, p, n = make_columns("random", 3)
    loss = lambda cols, labs: multiple_negatives_ranking_loss(*cols)
    assert_trace_time_error(loss, [a, p[:5]], None, "(6, 8)", "(5, 8)")
    assert_trace_time_error(loss, [a, p, n[:4, None]], None, "(6, 8)", "(4, 1, 8)")
    assert_trace_time_error(loss, [a, p, n], None, "negatives", "(6, 8)", "rank 3")
    assert_trace_time_error(loss, [a[0], p[0]], None, "(8,)", "rank 2")
    assert_trace_time_error(loss, [a, p[:, :5]], None, "(6, 8)", "(6, 5)")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"directions": ("doc_to_query",)}, "'query_to_doc' must be among"),
        ({"directions": ("query_to_doc", "sideways")}, "non-empty subset"),
        ({"directions": ALL_DIRECTIONS, "partition_mode": "per_direction"}, "Use partition_mode='joint'"),
        ({"hardness_mode": "hardest"}, "hardness_mode must be"),
        ({"hardness_strength": -1.0}, "non-negative"),
        ({"scale": 0.0}, "scale must be positive"),
        ({"gather_across_devices": True, "axis_name": None}, "needs the axis_name"),
    ],
)
def test_invalid_options_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MultipleNegativesRankingLoss(None, **kwargs)
