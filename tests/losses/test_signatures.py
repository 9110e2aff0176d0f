"""Every loss class's constructor against sentence-transformers' class of the same name.

sentence-transformers code builds losses positionally (`MatryoshkaLoss(model, loss, [768, 512, 256])`), so
each jaxst class takes sentence-transformers' parameters by the same names, in the same order, positional
or keyword as theirs, with defaults of the same meaning. The pure snake_case functions keep keyword-only
hyperparameters and are not checked here.
"""

from __future__ import annotations

import enum
import inspect

import pytest
import torch
from sentence_transformers.sentence_transformer import losses as st_losses

import jaxst.losses as jaxst_losses
from jaxst.losses.base import Loss
from jaxst.similarity import SIMILARITY_FUNCTIONS

# sentence-transformers loss classes jaxst does not provide, and why. A class that appears in
# sentence-transformers fails `test_every_loss_class_of_sentence_transformers_is_in_jaxst` until it is
# implemented or listed here.
NOT_IN_JAXST = {
    "DenoisingAutoEncoderLoss": "trains a Hugging Face decoder (AutoModelForCausalLM) tied to the encoder; "
    "jaxst has no decoder language-model heads",
    "EmbedDistillLoss": "not implemented yet (distillation onto teacher embeddings, trainable projection)",
}
# jaxst's own parameters, keyword-only after sentence-transformers' ones.
JAXST_ONLY_KEYWORDS = {
    "axis_name": "the named device axis over which gather_across_devices gathers embeddings",
    "seed": "ContrastiveTensionDataLoader's draw (sentence-transformers uses Python's global random)",
}
# Classes of sentence-transformers' losses module that are not losses, checked the same way.
OTHER_CLASSES = ("ContrastiveTensionDataLoader",)
# Defaults that are torch modules in sentence-transformers, and the jaxst function names of the same
# computation (None: no transformation).
TORCH_MODULE_MEANINGS = {
    "MSELoss": "mean_squared_error",
    "Identity": None,
    "CrossEntropyLoss": "cross_entropy",
}
# sentence-transformers' distance-metric namespaces: their members are plain functions, jaxst's enums.
ST_METRIC_NAMESPACES = (st_losses.SiameseDistanceMetric, st_losses.TripletDistanceMetric)


def st_loss_classes() -> dict[str, type]:
    return {
        name: value
        for name, value in vars(st_losses).items()
        if inspect.isclass(value) and issubclass(value, torch.nn.Module)
    }


def jaxst_loss_classes() -> dict[str, type]:
    return {
        name: value
        for name in jaxst_losses.__all__
        if inspect.isclass(value := getattr(jaxst_losses, name))
        and issubclass(value, Loss)
        and value is not Loss
    }


def constructor_parameters(cls: type) -> list[inspect.Parameter]:
    """The parameters of `cls.__init__` after self (sentence-transformers' deprecated classes wrap
    `__new__`, so the class's own signature reads (*args, **kwargs))."""
    return list(inspect.signature(cls.__init__).parameters.values())[1:]


def canonical_similarity(name: str) -> str:
    """A similarity by its measure: "pairwise_cos_sim" and "cos_sim" are both "cos_sim"."""
    return name.removeprefix("pairwise_")


def st_meaning(default):
    """What a sentence-transformers default means, in terms comparable with `jaxst_meaning`."""
    if isinstance(default, torch.nn.Module):
        return TORCH_MODULE_MEANINGS[type(default).__name__]
    if not inspect.isfunction(default):
        return default
    for namespace in ST_METRIC_NAMESPACES:
        for member, value in vars(namespace).items():
            if value is default:
                return member
    return canonical_similarity(default.__name__)


def jaxst_meaning(name: str, default):
    """What a jaxst default means: an enum member by name, a function by name, a similarity name by its
    function (`jaxst.similarity.SIMILARITY_FUNCTIONS`), anything else as it is."""
    if isinstance(default, enum.Enum):
        return default.name
    if name == "similarity_fct" and isinstance(default, str):
        return canonical_similarity(SIMILARITY_FUNCTIONS[default].__name__)
    if inspect.isfunction(default):
        return canonical_similarity(default.__name__)
    return default


def test_every_loss_class_of_sentence_transformers_is_in_jaxst():
    st_names, jaxst_names = set(st_loss_classes()), set(jaxst_loss_classes())
    assert st_names - jaxst_names == set(NOT_IN_JAXST), "implement these or list them in NOT_IN_JAXST"
    assert jaxst_names <= st_names, f"loss classes sentence-transformers lacks: {jaxst_names - st_names}"


@pytest.mark.parametrize("name", sorted(set(st_loss_classes()) - set(NOT_IN_JAXST)) + list(OTHER_CLASSES))
def test_constructor_signature_equals_sentence_transformers(name):
    theirs = constructor_parameters(getattr(st_losses, name))
    ours = constructor_parameters(getattr(jaxst_losses, name))
    assert [p.name for p in ours[: len(theirs)]] == [p.name for p in theirs]
    for st_parameter, parameter in zip(theirs, ours, strict=False):
        assert parameter.kind == st_parameter.kind, f"{name}({parameter.name}): {parameter.kind.description}"
        meanings = (jaxst_meaning(parameter.name, parameter.default), st_meaning(st_parameter.default))
        assert meanings[0] == meanings[1], f"{name}({parameter.name}) default: jaxst, ST = {meanings}"
    for extra in ours[len(theirs) :]:
        assert extra.name in JAXST_ONLY_KEYWORDS, f"{name}: {extra.name} is not a parameter of ST's class"
        assert extra.kind is inspect.Parameter.KEYWORD_ONLY, f"{name}({extra.name}) must be keyword-only"
