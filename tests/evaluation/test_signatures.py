"""Every jaxst evaluator's constructor takes sentence-transformers' arguments: the same names in the same
order, positional where sentence-transformers' are, with the same defaults."""

import inspect

import numpy as np
import pytest
from sentence_transformers.sentence_transformer import evaluation as st_evaluation

from jaxst import evaluation

EVALUATORS = [name for name in evaluation.__all__ if inspect.isclass(getattr(evaluation, name))]

# Inputs on which a callable default must give sentence-transformers' default's values.
rng = np.random.default_rng(0)
CALLABLE_DEFAULT_INPUTS = {
    "main_score_function": ([0.25, 0.5, 0.75],),  # SequentialEvaluator: the last score
    "similarity_fct": (rng.standard_normal((3, 8)), rng.standard_normal((5, 8))),  # cosine similarity
}


def assert_same_default(name: str, ours, theirs) -> None:
    """Equal; or a tuple where sentence-transformers has a list (an immutable default, as jaxst's style
    wants); or callables with the same values on CALLABLE_DEFAULT_INPUTS[name]."""
    if callable(theirs) and ours is not theirs:
        inputs = CALLABLE_DEFAULT_INPUTS[name]
        np.testing.assert_allclose(np.asarray(ours(*inputs)), np.asarray(theirs(*inputs)), rtol=1e-6)
    elif isinstance(theirs, list):
        assert ours == tuple(theirs), name
    else:
        assert ours == theirs, name


def test_every_sentence_transformers_evaluator_with_a_jaxst_class_is_compared():
    assert set(EVALUATORS) <= set(dir(st_evaluation))
    assert len(EVALUATORS) >= 12


@pytest.mark.parametrize("name", EVALUATORS)
def test_constructor_signature_as_sentence_transformers(name):
    ours = inspect.signature(getattr(evaluation, name)).parameters
    theirs = inspect.signature(getattr(st_evaluation, name)).parameters
    assert list(ours) == list(theirs)
    for parameter, their_parameter in theirs.items():
        assert ours[parameter].kind == their_parameter.kind, parameter
        assert_same_default(parameter, ours[parameter].default, their_parameter.default)
