"""The train step reports, on the devices, whether the parameters it produced are all finite."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxst.losses.base import Loss
from jaxst.packing import pack
from jaxst.similarity import pairwise_cos_sim
from jaxst.training.parallel import MeshParallel, PmapParallel
from jaxst.training.step import all_finite, batch_loss, init_train_state, make_train_step
from tests.training.test_parallel import DIM, VOCAB, CosineMSE, bag_of_words_forward, make_batches


class SqrtLoss(Loss):
    """Cosine MSE plus a term whose value is 0 and whose gradient is not finite, in a chosen place.

    "loss_params": + sum(sqrt(w)) at w = 0: an infinite gradient for the loss's own parameter w only.
    "model": + sqrt(0 * sum(embeddings)): a NaN gradient for every encoder parameter.
    None: no such term.
    """

    min_texts = max_texts = 2
    needs_labels = True

    def __init__(self, nan_in: str | None):
        super().__init__(None)
        self.nan_in = nan_in

    def init_params(self, rng, embedding_dim):
        return {"w": jnp.zeros(2)}

    def compute(self, embeddings, labels, params=None):
        loss = jnp.mean((pairwise_cos_sim(*embeddings) - labels) ** 2)
        if self.nan_in == "loss_params":
            loss += jnp.sum(jnp.sqrt(params["w"]))
        elif self.nan_in == "model":
            loss += jnp.sqrt(0.0 * jnp.sum(embeddings[0]))
        return loss


def one_step(parallel, nan_in):
    rng = np.random.default_rng(0)
    loss = SqrtLoss(nan_in)
    params = {
        "model": {
            "embed": rng.normal(size=(VOCAB, DIM)).astype(np.float32),
            "dense": rng.normal(size=(DIM, DIM)).astype(np.float32) / 4,
        },
        "losses": (loss.init_params(None, DIM),),
    }
    tx = optax.sgd(0.1)
    step = parallel.compile(make_train_step(bag_of_words_forward, loss, tx, use_dropout=False))
    state = parallel.put_state(init_train_state(params, tx, seed=0))
    state, metrics = step(state, parallel.put_batch(make_batches(0, 1, batch_size=16)[0]))
    return parallel.get_state(state), parallel.get_metrics(metrics)


@pytest.mark.multi_device
@pytest.mark.parametrize("parallel", [PmapParallel, MeshParallel])
@pytest.mark.parametrize("nan_in", [None, "loss_params", "model"])
def test_the_step_reports_whether_the_new_parameters_are_finite(parallel, nan_in):
    """The loss (of the parameters before the update) stays finite; only the flag tells."""
    state, metrics = one_step(parallel(), nan_in)
    assert np.isfinite(metrics["loss"])
    assert metrics["params_finite"] == (nan_in is None)
    model_finite = all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(state.params["model"]))
    assert model_finite == (nan_in != "model")  # a non-finite loss parameter alone is enough


def test_all_finite_looks_at_every_leaf():
    tree = {"a": jnp.ones(3), "b": [jnp.zeros((2, 2)), jnp.arange(3)]}
    assert bool(all_finite(tree))
    for bad in (jnp.nan, jnp.inf, -jnp.inf):
        assert not bool(all_finite({**tree, "b": [jnp.zeros((2, 2)).at[1, 0].set(bad), jnp.arange(3)]}))


class CachedCosineMSE(CosineMSE):
    """A loss that embeds its batch through GradCache, as the cached losses do."""

    mini_batch_size = 2


def test_a_packed_batch_is_refused_for_a_loss_that_trains_on_padded_batches():
    offsets = np.r_[0, np.cumsum([3, 4, 5, 6])]
    ids = np.arange(1, offsets[-1] + 1, dtype=np.int32)
    packed = pack(ids, None, offsets, num_columns=2, num_devices=1, max_seq_length=64, pad_id=0)
    with pytest.raises(ValueError, match="CachedCosineMSE trains on padded batches .* this batch is packed"):
        batch_loss(bag_of_words_forward, CachedCosineMSE(None), {"model": {}, "losses": ({},)}, packed)
