import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxst.training.tree_sums import all_finite, global_norm


def parameter_like_tree(rng):
    """Leaves of a small encoder's kinds: a large matrix, vectors, a bfloat16 array and an integer one."""
    return {
        "embeddings": rng.normal(size=(3000, 64)).astype(np.float32),
        "layers": [rng.normal(size=(64, 64)).astype(np.float32), rng.normal(size=64).astype(np.float32)],
        "half": rng.normal(size=(8, 8)).astype(jnp.bfloat16),
        "count": np.arange(3, dtype=np.int32),
    }


@pytest.mark.parametrize("jit", [False, True])
def test_all_finite_finds_one_bad_element_in_any_leaf(jit):
    rng = np.random.default_rng(0)
    tree = parameter_like_tree(rng)
    check = jax.jit(all_finite) if jit else all_finite
    assert bool(check(tree))
    places = [("embeddings", (2999, 63)), ("embeddings", (0, 0)), ("half", (3, 4))]
    for bad in (np.nan, np.inf, -np.inf):
        for name, index in places:
            broken = {**tree, name: tree[name].copy()}
            broken[name][index] = bad
            assert not bool(check(broken)), (bad, name, index)
        vector = tree["layers"][1].copy()
        vector[17] = bad
        assert not bool(check({**tree, "layers": [tree["layers"][0], vector]})), bad


def test_all_finite_does_not_overflow_on_large_finite_values():
    big = np.full((1000, 100), np.finfo(np.float32).max, np.float32)
    assert bool(jax.jit(all_finite)({"w": big, "v": -big[0]}))


def test_global_norm_is_the_norm_of_all_leaves_as_one_vector():
    rng = np.random.default_rng(1)
    tree = {k: v for k, v in parameter_like_tree(rng).items() if k != "count"}
    flat = np.concatenate([np.asarray(leaf, np.float64).ravel() for leaf in jax.tree.leaves(tree)])
    expected = np.sqrt(np.sum(flat**2))
    for norm in (global_norm, jax.jit(global_norm)):
        got = norm(tree)
        assert got.dtype == jnp.float32
        np.testing.assert_allclose(float(got), expected, rtol=1e-6)
