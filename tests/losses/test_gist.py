"""gist_embed_loss against sentence-transformers' GISTEmbedLoss with a guide stand-in; pmap with gathering."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tokenizers
import torch
from sentence_transformers.sentence_transformer import losses as st_losses
from sentence_transformers.sentence_transformer.losses import gist_embed as st_gist_module
from transformers import PreTrainedTokenizerFast

from jaxst.losses.gist import GISTEmbedLoss, gist_embed_loss
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

# One tokenizer for model and guide: sentence-transformers then feeds the guide the model's features.
TOKENIZER = PreTrainedTokenizerFast(
    tokenizer_object=tokenizers.Tokenizer(tokenizers.models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
)
GUIDE_DIM = 5

OPTIONS = {
    "defaults": {},
    "relative_no_anchor_block": {"margin_strategy": "relative", "margin": 0.1, "contrast_anchors": False},
    "absolute_no_positive_block": {"margin": 0.05, "contrast_positives": False, "temperature": 0.05},
    # g <= 1 < g+ + 3: nothing is dropped, and a batch of one keeps all its logits. Temperature 1 keeps the
    # softmax off saturation, where the self-similarities s(a_i, a_i) = 1 would leave gradients of 1e-19.
    "keep_all": {"margin": -3.0, "temperature": 1.0},
}


def with_tokenizer(model: FixedEmbeddingModel) -> FixedEmbeddingModel:
    model.tokenizer = TOKENIZER
    model.max_seq_length = 16
    return model


class ModelColumnsOnly(torch.nn.Module):
    """ST's GISTEmbedLoss on the first `num_columns` feature dicts; the guide answers for the same dicts."""

    def __init__(self, model: FixedEmbeddingModel, num_columns: int, **options):
        super().__init__()
        self.num_columns = num_columns
        guide = with_tokenizer(FixedEmbeddingModel(model.columns[num_columns:]))
        self.loss = st_losses.GISTEmbedLoss(with_tokenizer(model), guide, **options)

    def forward(self, features, labels):
        return self.loss(features[: self.num_columns], labels)


def guide_of(column: np.ndarray, seed: int = 3) -> np.ndarray:
    """A guide embedding correlated with the model's: tanh of a fixed projection.

    Zero rows and duplicate rows of the model's column stay zero and duplicate in the guide's.
    """
    projection = np.random.default_rng(seed).standard_normal((column.shape[1], GUIDE_DIM)).astype(np.float32)
    return np.tanh(column @ projection).astype(np.float32)


def gist_cases(num_columns: int, *, batch_of_one: bool = False) -> dict:
    """Edge cases as (model columns + guide columns, None).

    With two columns, a batch of one keeps only its positive's logit unless the margin keeps its anchor-anchor
    and positive-positive similarities (see test_batch_of_one_with_only_the_positive_left).
    """
    cases = {}
    for name, (columns, labels) in edge_cases(num_columns, lambda batch: None, batch=6, dim=8).items():
        if name != "batch_of_one" or batch_of_one:
            cases[name] = ([*columns, *[guide_of(c) for c in columns]], labels)
    return cases


def jax_loss(num_columns: int, **options):
    return lambda columns, labels: gist_embed_loss(columns[:num_columns], columns[num_columns:], **options)


@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("num_columns", [2, 3])
def test_matches_sentence_transformers(num_columns, option):
    options = OPTIONS[option]
    assert_matches_torch(
        jax_loss(num_columns, **options),
        lambda model: ModelColumnsOnly(model, num_columns, **options),
        gist_cases(num_columns, batch_of_one=num_columns == 3 or option == "keep_all"),
    )


def test_batch_of_one_with_only_the_positive_left():
    """One (anchor, positive) row, default margin: the guide drops s(a, a) and s(p, p), leaving one finite
    logit, so the loss and its gradient are exactly 0. torch returns 0; XLA's vectorised exp(0) is off by
    an ulp, so jaxst returns rounding noise: the value within 1e-6 of 0 and the gradient within PARITY_RTOL
    of the scale of the same row's gradient when the margin keeps every logit."""
    columns, _ = gist_cases(2, batch_of_one=True)["batch_of_one"]
    value, grads = jax.value_and_grad(jax_loss(2))([jnp.asarray(c) for c in columns], None)
    expected_value, expected_grads = torch_loss_and_grads(lambda m: ModelColumnsOnly(m, 2), columns)
    _, kept_grads = torch_loss_and_grads(lambda m: ModelColumnsOnly(m, 2, margin=-3.0), columns)
    scale = max(np.abs(g).max() for g in kept_grads)
    assert expected_value == 0.0 and abs(float(value)) <= 1e-6
    for grad, expected in zip(grads, expected_grads, strict=True):
        assert np.abs(expected).max() == 0.0 and np.abs(grad).max() <= PARITY_RTOL * scale


def test_the_guide_drops_candidates():
    """Not vacuous: on the random case the guide drops some candidates, and dropping changes the loss."""
    columns, _ = gist_cases(3)["random"]
    dropped = gist_embed_loss(columns[:3], columns[3:])
    kept = gist_embed_loss(columns[:3], columns[3:], margin=-10.0)  # g > g+ + 10 never holds
    assert not np.isclose(dropped, kept)


DEVICES, PER_DEVICE = 8, 2


@pytest.mark.multi_device
def test_pmap_with_gathering_matches_sentence_transformers_per_rank(monkeypatch):
    """Each device's value equals ST's on that rank (all_gather_with_grad, get_rank patched to a simulated
    8-rank world); each device's gradient equals its slice of the gradient of the sum over ranks, which is
    what all_gather_with_grad's backward (a sum over ranks) gives each rank."""
    columns = [c for c in make_columns("random", 3, batch=DEVICES * PER_DEVICE, seed=4)]
    columns += [guide_of(c) for c in columns]
    leaves = [torch.tensor(c, requires_grad=True) for c in columns]
    rank = {"now": 0}
    owner = {}

    def gather(tensor: torch.Tensor) -> torch.Tensor:
        full = leaves[owner[id(tensor)]]
        begin = rank["now"] * PER_DEVICE
        return torch.cat([full[:begin], tensor, full[begin + PER_DEVICE :]])

    monkeypatch.setattr(st_gist_module, "all_gather_with_grad", gather)
    monkeypatch.setattr(st_gist_module, "get_rank", lambda: rank["now"])
    expected_values = []
    total = 0.0
    for r in range(DEVICES):
        rank["now"] = r
        local = [leaf[r * PER_DEVICE : (r + 1) * PER_DEVICE] for leaf in leaves]
        owner.update({id(t): i for i, t in enumerate(local)})
        model = FixedEmbeddingModel(local)
        value = ModelColumnsOnly(model, 3, gather_across_devices=True)(
            [{"column": i} for i in range(3)], None
        )
        expected_values.append(float(value.detach()))
        total = total + value
    total.backward()

    def loss(*cols):
        return gist_embed_loss(cols[:3], cols[3:], gather_across_devices=True, axis_name="data")

    per_device = [jnp.asarray(c).reshape(DEVICES, PER_DEVICE, -1) for c in columns]
    values, grads = jax.pmap(jax.value_and_grad(loss, argnums=(0, 1, 2)), axis_name="data")(*per_device)
    assert relative_error(values, np.array(expected_values)) <= PARITY_RTOL
    for grad, leaf in zip(grads, leaves, strict=False):
        assert relative_error(grad.reshape(leaf.shape), leaf.grad.numpy()) <= PARITY_RTOL


def test_jit_vmap_bfloat16_and_shapes():
    loss = jax_loss(3)
    columns, _ = gist_cases(3)["random"]
    assert_traces_once(loss, columns, None)
    assert_vmap_matches_loop(
        loss, [(gist_cases(3)["random"][0], None), (gist_cases(3)["duplicate_rows"][0], None)]
    )
    assert_bfloat16_close(loss, columns, None)
    six, five = jnp.zeros((6, 8)), jnp.zeros((5, 8))
    guide = jnp.zeros((6, GUIDE_DIM))
    assert_trace_time_error(loss, [six, five, six, guide, guide, guide], None, "(6, 8)", "(5, 8)")
    assert_trace_time_error(loss, [six, six, six, guide, guide, guide[:5]], None, "(6, 5)", "(5, 5)")
    assert_trace_time_error(loss, [six, six, jnp.zeros(8), guide, guide, guide], None, "(8,)", "rank 2")
    with pytest.raises(ValueError, match="2 model columns but 3 guide columns"):
        gist_embed_loss([six, six], [guide] * 3)
    with pytest.raises(ValueError, match="gather_across_devices=True needs the axis_name"):
        gist_embed_loss([six, six], [guide] * 2, gather_across_devices=True)


def test_class():
    columns, _ = gist_cases(3)["random"]
    loss = GISTEmbedLoss(None, guide="the guide", margin_strategy="relative", margin=0.1)
    np.testing.assert_allclose(
        loss.compute(columns[:3], None, guide_embeddings=columns[3:]),
        gist_embed_loss(columns[:3], columns[3:], margin_strategy="relative", margin=0.1),
        rtol=1e-6,
    )
    assert loss.guide == "the guide" and loss.get_config_dict()["guide"] == "the guide"
    assert (loss.min_texts, loss.max_texts, loss.needs_labels) == (2, 3, False)
    with pytest.raises(ValueError, match="margin_strategy must be 'absolute' or 'relative', got 'max'"):
        GISTEmbedLoss(None, None, margin_strategy="max")
