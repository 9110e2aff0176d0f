"""The contract between a loss and the train step: Loss' declared needs, and how wrappers find them."""

from __future__ import annotations

import pytest

from jaxst.losses.adaptive_layer import AdaptiveLayerLoss
from jaxst.losses.base import Loss, WrapperLoss, chain_name, find_in_chain, loss_chain
from jaxst.losses.cached import CachedGISTEmbedLoss, CachedMultipleNegativesRankingLoss
from jaxst.losses.classification import SoftmaxLoss
from jaxst.losses.contrastive_tension import ContrastiveTensionLossInBatchNegatives
from jaxst.losses.gist import GISTEmbedLoss
from jaxst.losses.matryoshka import MatryoshkaLoss
from jaxst.losses.ranking import MultipleNegativesRankingLoss

STEP_NEEDS = ("needs_rng", "needs_hidden_states", "mini_batch_size", "guide", "uses_model_copy")


def matryoshka(loss: Loss, **options) -> MatryoshkaLoss:
    return MatryoshkaLoss(None, loss, matryoshka_dims=[8, 4], **options)


def test_a_plain_loss_needs_nothing_from_the_step():
    loss = MultipleNegativesRankingLoss(None)
    assert [getattr(loss, name) for name in STEP_NEEDS] == [False, False, None, None, False]


@pytest.mark.parametrize("depth", [1, 2])
def test_wrappers_have_the_step_needs_of_the_chain_below(depth):
    """Nested wrappers report what a loss anywhere below them needs, and its columns and labels."""

    def wrapped(loss):
        for _ in range(depth):
            loss = matryoshka(loss)
        return loss

    cached_gist = wrapped(CachedGISTEmbedLoss(None, "the guide", mini_batch_size=3))
    assert (cached_gist.mini_batch_size, cached_gist.guide) == (3, "the guide")
    assert (cached_gist.min_texts, cached_gist.max_texts, cached_gist.needs_labels) == (2, 3, False)
    assert wrapped(ContrastiveTensionLossInBatchNegatives(None)).uses_model_copy
    softmax = wrapped(SoftmaxLoss(None, embedding_dimension=8, num_labels=3))
    assert (softmax.min_texts, softmax.max_texts, softmax.needs_labels) == (2, 2, True)
    assert [getattr(softmax, name) for name in STEP_NEEDS] == [False, False, None, None, False]


def test_a_wrapper_sets_what_it_changes():
    """MatryoshkaLoss needs a key only to sample dimensions; AdaptiveLayerLoss needs hidden states, and a key
    when it samples layers or the loss it wraps needs one."""
    assert not matryoshka(MultipleNegativesRankingLoss(None)).needs_rng
    sampling = matryoshka(MultipleNegativesRankingLoss(None), n_dims_per_step=1)
    assert sampling.needs_rng
    adaptive = AdaptiveLayerLoss(None, sampling, n_layers_per_step=-1)
    assert adaptive.needs_hidden_states and adaptive.needs_rng
    plain = AdaptiveLayerLoss(None, GISTEmbedLoss(None, "the guide"), n_layers_per_step=-1)
    assert (plain.needs_rng, plain.guide) == (False, "the guide")


def test_one_walker_down_the_chain():
    cached = CachedMultipleNegativesRankingLoss(None, mini_batch_size=5)
    outer = matryoshka(matryoshka(cached))
    assert [type(link) for link in loss_chain(outer)] == [MatryoshkaLoss, MatryoshkaLoss, type(cached)]
    assert chain_name(outer) == "MatryoshkaLoss(MatryoshkaLoss(CachedMultipleNegativesRankingLoss))"
    assert chain_name(cached) == "CachedMultipleNegativesRankingLoss"
    assert find_in_chain(outer, "mini_batch_size") == 5
    assert find_in_chain(outer, "guide") is None
    assert isinstance(outer, WrapperLoss) and not isinstance(cached, WrapperLoss)
