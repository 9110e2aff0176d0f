"""The cached losses' constructors: the plain loss's arguments passed through, with the GradCache options."""

from __future__ import annotations

import inspect

import pytest
from sentence_transformers.sentence_transformer import losses as st_losses

from jaxst.losses.cached import (
    CachedGISTEmbedLoss,
    CachedMultipleNegativesRankingLoss,
    CachedMultipleNegativesSymmetricRankingLoss,
)
from jaxst.losses.gist import GISTEmbedLoss
from jaxst.losses.ranking import MultipleNegativesRankingLoss, MultipleNegativesSymmetricRankingLoss

CACHED = [
    (
        CachedMultipleNegativesRankingLoss,
        MultipleNegativesRankingLoss,
        st_losses.CachedMultipleNegativesRankingLoss,
    ),
    (
        CachedMultipleNegativesSymmetricRankingLoss,
        MultipleNegativesSymmetricRankingLoss,
        st_losses.CachedMultipleNegativesSymmetricRankingLoss,
    ),
    (CachedGISTEmbedLoss, GISTEmbedLoss, st_losses.CachedGISTEmbedLoss),
]
CACHE_OPTIONS = {"mini_batch_size": 32, "mini_batch_num_tokens": None, "show_progress_bar": False}


def defaults(cls: type) -> dict:
    parameters = inspect.signature(cls.__init__).parameters
    return {name: p.default for name, p in parameters.items() if name != "self"}


@pytest.mark.parametrize(("cached", "plain", "theirs"), CACHED)
def test_signature_is_the_plain_losss_with_the_cache_options(cached, plain, theirs):
    """Every parameter of the plain loss and the GradCache options; defaults as sentence-transformers'
    (its similarity_fct default is the function cos_sim, jaxst's the name "cosine"; axis_name is jaxst's).
    The order is checked with every other loss class in test_signatures."""
    ours = defaults(cached)
    assert ours == {**defaults(plain), **CACHE_OPTIONS}
    expected = defaults(theirs)
    shared = set(ours) & set(expected) - {"similarity_fct"}
    assert {name: ours[name] for name in shared} == {name: expected[name] for name in shared}
    assert set(expected) - set(ours) == set()
    assert set(ours) - set(expected) == {"axis_name"}


@pytest.mark.parametrize(("cached", "plain", "_"), CACHED)
def test_configuration_is_the_plain_losss_with_the_mini_batch_options(cached, plain, _):
    args = (None, "the guide") if plain is GISTEmbedLoss else (None,)
    options = {"temperature": 0.05} if plain is GISTEmbedLoss else {"scale": 10.0}
    config = cached(*args, mini_batch_size=8, show_progress_bar=True, **options).get_config_dict()
    assert config == {
        **plain(*args, **options).get_config_dict(),
        "mini_batch_size": 8,
        "mini_batch_num_tokens": None,
    }
    with pytest.raises(TypeError, match="unexpected keyword argument 'mini_batch'"):
        cached(*args, mini_batch=8)
