"""mega_batch_margin_loss against sentence-transformers' MegaBatchMarginLoss, plain and with GradCache."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from sentence_transformers.sentence_transformer import losses as st_losses

from jaxst.losses.mega_batch import MegaBatchMarginLoss, mega_batch_margin_loss
from jaxst.validation.torch_reference import FixedEmbeddingModel
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


def loss(columns, labels):
    del labels
    return mega_batch_margin_loss(*columns)


def cases():
    all_cases = edge_cases(2, lambda batch: None)
    # Positives 2k and 2k + 1 differ only in the sign of coordinate 1, where every anchor is 0: each anchor
    # scores them exactly alike, so its hardest negative is a tie between two rows.
    tied = make_columns("random", 2)
    tied[0][:, 1] = 0.0
    tied[1][1::2] = tied[1][0::2]
    tied[1][1::2, 1] *= -1.0
    all_cases["tied_negatives"] = (tied, None)
    return all_cases


@pytest.mark.parametrize("margins", [(0.8, 0.3), (0.2, -0.5)])
def test_matches_sentence_transformers_plain(margins):
    positive_margin, negative_margin = margins
    assert_matches_torch(
        lambda columns, labels: mega_batch_margin_loss(
            *columns, positive_margin=positive_margin, negative_margin=negative_margin
        ),
        lambda model: st_losses.MegaBatchMarginLoss(
            model,
            positive_margin=positive_margin,
            negative_margin=negative_margin,
            use_mini_batched_version=False,
        ),
        cases(),
    )


class RowIndexedModel(FixedEmbeddingModel):
    """Stand-in whose features carry row indices as `input_ids` [n, 1], so GradCache can slice them."""

    def forward(self, features: dict) -> dict:
        return {"sentence_embedding": self.columns[features["column"]][features["input_ids"][:, 0]]}

    def __getitem__(self, index: int) -> torch.nn.Module:
        return torch.nn.Identity()  # the first module, which MegaBatchMarginLoss checks is no StaticEmbedding


def test_mini_batched_version_matches_the_same_pure_function():
    """sentence-transformers' default path (GradCache over mini-batches of 3) gives this loss and gradient."""
    for name, (columns, _) in cases().items():
        leaves = [torch.tensor(c, requires_grad=True) for c in columns]
        model = RowIndexedModel(leaves)
        rows = torch.arange(len(columns[0]))[:, None]
        st_loss = st_losses.MegaBatchMarginLoss(model, mini_batch_size=3)
        value = st_loss([{"column": i, "input_ids": rows} for i in range(2)], None)
        value.backward()
        expected = mega_batch_margin_loss(*[jnp.asarray(c) for c in columns])
        assert relative_error(expected, float(value.detach())) <= PARITY_RTOL, name
        grads = jax.grad(lambda cols: mega_batch_margin_loss(*cols))([jnp.asarray(c) for c in columns])
        for grad, leaf in zip(grads, leaves, strict=True):
            assert relative_error(grad, leaf.grad.numpy()) <= PARITY_RTOL, name


def test_jit_vmap_bfloat16_and_shapes():
    columns = make_columns("random", 2)
    assert_traces_once(loss, columns, None)
    assert_vmap_matches_loop(loss, [(make_columns("random", 2, seed=s), None) for s in range(3)])
    assert_bfloat16_close(loss, columns, None)
    assert_trace_time_error(loss, [jnp.zeros((6, 8)), jnp.zeros((5, 8))], None, "(6, 8)", "(5, 8)")
    assert_trace_time_error(loss, [jnp.zeros(8), jnp.zeros(8)], None, "(8,)", "rank 2")


def test_class():
    loss_class = MegaBatchMarginLoss(None, positive_margin=0.5, mini_batch_size=4)
    columns = [jnp.asarray(c) for c in make_columns("random", 2)]
    np.testing.assert_allclose(
        loss_class.compute(columns, None), mega_batch_margin_loss(*columns, positive_margin=0.5), rtol=1e-6
    )
    assert loss_class.embedding_mini_batch_size == 4
    assert MegaBatchMarginLoss(None, use_mini_batched_version=False).embedding_mini_batch_size is None
    assert loss_class.get_config_dict() == {
        "positive_margin": 0.5,
        "negative_margin": 0.3,
        "mini_batch_size": 4,
        "mini_batch_num_tokens": None,
    }
    with pytest.raises(ValueError, match="exactly 2"):
        loss_class.check_example_shape(3, False)
    with pytest.raises(ValueError, match="mini_batch_num_tokens"):
        MegaBatchMarginLoss(None, mini_batch_num_tokens=0)
