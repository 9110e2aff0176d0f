"""The cached losses: constructors (the plain loss's arguments with the GradCache options), and
CachedMultipleNegativesSymmetricRankingLoss against sentence-transformers on an encoder and through fit."""

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
from jaxst.training.data import InputExample
from tests.losses.encoder_parity import (
    TOLERANCE,
    assert_same_gradients,
    jaxst_batch,
    jaxst_value_and_grads,
    torch_value_and_grads,
)
from tests.losses.fit_checks import fit_steps
from tests.shared_data import read_tsv

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


def test_symmetric_loss_equals_sentence_transformers_on_an_encoder(models, rows):
    """CachedMultipleNegativesSymmetricRankingLoss through the train step (6 rows in mini-batches of 4, the
    last padded) against sentence-transformers' cached class: value and every encoder gradient."""
    model, torch_model = models
    texts, _ = rows
    loss = CachedMultipleNegativesSymmetricRankingLoss(model, 10.0, mini_batch_size=4)
    value, grads = jaxst_value_and_grads(model, loss, jaxst_batch(model, texts, None))()
    with pytest.warns(DeprecationWarning, match="CachedMultipleNegativesRankingLoss"):
        expected, expected_grads, scales = torch_value_and_grads(
            torch_model,
            lambda m: st_losses.CachedMultipleNegativesSymmetricRankingLoss(m, 10.0, mini_batch_size=4),
            texts,
            None,
        )
    assert value == pytest.approx(expected, rel=TOLERANCE)
    assert_same_gradients(grads, expected_grads, scales)


def test_symmetric_loss_trains_through_fit(tiny_folder):
    snli = read_tsv("pairs/snli_triplets.tsv.gz", "test")[:16]
    examples = [InputExample(texts=[r["anchor"], r["positive"]]) for r in snli]
    fit_steps(
        tiny_folder, lambda m: CachedMultipleNegativesSymmetricRankingLoss(m, mini_batch_size=4), examples
    )
