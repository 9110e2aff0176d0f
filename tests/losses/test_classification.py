"""SoftmaxLoss against sentence-transformers' own class, with the classifier weights copied across."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from sentence_transformers.sentence_transformer import losses as st_losses

from jaxst.losses.classification import SoftmaxLoss, init_softmax_classifier, softmax_loss
from jaxst.validation.torch_reference import torch_loss_and_grads
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

DIM, NUM_LABELS = 8, 3
CONCATENATIONS = {
    "default": {},
    "all_three": {"concatenation_sent_multiplication": True},
    "multiplication_only": {
        "concatenation_sent_rep": False,
        "concatenation_sent_difference": False,
        "concatenation_sent_multiplication": True,
    },
}


def classifier_for(concatenation: dict, seed: int = 0):
    return init_softmax_classifier(jax.random.key(seed), DIM, NUM_LABELS, **concatenation)


def torch_softmax_loss(classifier, concatenation: dict, created: list | None = None):
    """Builds ST's SoftmaxLoss with our classifier weights (torch's weight is the transposed kernel)."""

    def make(model):
        loss = st_losses.SoftmaxLoss(model, embedding_dimension=DIM, num_labels=NUM_LABELS, **concatenation)
        with torch.no_grad():
            loss.classifier.weight.copy_(torch.tensor(np.asarray(classifier["kernel"]).T))
            loss.classifier.bias.copy_(torch.tensor(np.asarray(classifier["bias"])))
        if created is not None:
            created.append(loss)
        return loss

    return make


def class_labels(batch: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, NUM_LABELS, batch)


@pytest.mark.parametrize("concatenation", CONCATENATIONS)
def test_matches_sentence_transformers(concatenation):
    options = CONCATENATIONS[concatenation]
    classifier = classifier_for(options)
    cases = edge_cases(2, class_labels, seed=5)
    random_columns = cases["random"][0]
    cases["all_labels_equal"] = (random_columns, np.full(6, 2))
    probabilities = np.random.default_rng(2).dirichlet(np.ones(NUM_LABELS), 6).astype(np.float32)
    cases["probability_labels"] = (random_columns, probabilities)
    ours = SoftmaxLoss(None, embedding_dimension=DIM, num_labels=NUM_LABELS, **options)
    assert_matches_torch(
        lambda cols, labs: ours.compute(cols, labs, classifier),
        torch_softmax_loss(classifier, options),
        cases,
    )


@pytest.mark.parametrize("labels", ["classes", "probabilities"])
def test_classifier_gradient_matches_sentence_transformers(labels):
    options = CONCATENATIONS["all_three"]
    classifier = classifier_for(options, seed=3)
    columns = make_columns("random", 2, seed=6)
    targets = class_labels(6) if labels == "classes" else np.full((6, NUM_LABELS), 1 / NUM_LABELS, np.float32)
    grads = jax.grad(softmax_loss)(classifier, *map(jnp.asarray, columns), jnp.asarray(targets), **options)
    created = []
    torch_loss_and_grads(torch_softmax_loss(classifier, options, created), columns, targets)
    torch_classifier = created[0].classifier
    assert relative_error(grads["kernel"], torch_classifier.weight.grad.numpy().T) <= PARITY_RTOL
    assert relative_error(grads["bias"], torch_classifier.bias.grad.numpy()) <= PARITY_RTOL


def test_init_params_draws_like_torch_linear():
    loss = SoftmaxLoss(None, embedding_dimension=96, num_labels=40, concatenation_sent_multiplication=True)
    params = loss.init_params(jax.random.key(0), 96)
    bound = 1 / np.sqrt(4 * 96)
    assert params["kernel"].shape == (4 * 96, 40) and params["bias"].shape == (40,)
    assert params["kernel"].dtype == jnp.float32
    torch_layer = torch.nn.Linear(4 * 96, 40)
    for ours, theirs in ((params["kernel"], torch_layer.weight), (params["bias"], torch_layer.bias)):
        ours, theirs = np.asarray(ours), theirs.detach().numpy()
        assert np.abs(ours).max() <= bound and np.abs(theirs).max() <= bound
        # Uniform(-bound, bound): standard deviation bound / sqrt(3), for both.
        np.testing.assert_allclose(ours.std(), bound / np.sqrt(3), rtol=0.2 if ours.ndim == 1 else 0.03)
        np.testing.assert_allclose(theirs.std(), bound / np.sqrt(3), rtol=0.2 if ours.ndim == 1 else 0.03)
    with pytest.raises(ValueError, match="embedding_dimension=96"):
        loss.init_params(jax.random.key(0), 384)


CLASSIFIER = classifier_for({})


def loss_fn(cols, labs):
    return softmax_loss(CLASSIFIER, *cols, labs)


def test_jit_vmap_and_bfloat16():
    groups = [(make_columns("random", 2, seed=s), class_labels(6, seed=s)) for s in range(3)]
    assert_traces_once(loss_fn, *groups[0])
    assert_vmap_matches_loop(loss_fn, groups)
    assert_bfloat16_close(loss_fn, *groups[0])


def test_wrong_shapes_and_options_fail_clearly():
    a, b = make_columns("random", 2)
    labels = class_labels(6)
    assert_trace_time_error(loss_fn, [a, b[:5]], labels, "(6, 8)", "(5, 8)")
    assert_trace_time_error(loss_fn, [a, b], labels[:4], "(6, 8)", "(4,)")
    assert_trace_time_error(loss_fn, [a[0], b[0]], labels[:1], "(8,)", "rank 2")
    assert_trace_time_error(loss_fn, [a[:, :5], b[:, :5]], labels, "kernel (24, 3)", "size 15")
    with pytest.raises(ValueError, match="at least one of concatenation_sent_rep"):
        SoftmaxLoss(
            None,
            embedding_dimension=DIM,
            num_labels=2,
            concatenation_sent_rep=False,
            concatenation_sent_difference=False,
        )


@pytest.mark.parametrize("label", [0, 2, np.int64(1), 2.0, np.float32(1.0), [0.2, 0.3, 0.5], np.eye(3)[1]])
def test_class_indices_and_class_probabilities_are_valid_labels(label):
    SoftmaxLoss(None, embedding_dimension=DIM, num_labels=NUM_LABELS).check_label(label)


@pytest.mark.parametrize(
    ("label", "message"),
    [
        (-1, r"label -1 is outside the classes \[0, 3\)"),
        (3, r"label 3 is outside the classes \[0, 3\)"),
        (0.5, "label 0.5 is not a class index"),
        (True, "label True is not a class index"),
        ("1", "label '1' is not a class index"),
        (float("nan"), "label nan is not a class index"),
        (None, "label None is not a class index"),
        ([0.5, 0.5], r"label \[0.5, 0.5\] is neither a class index nor 3 class probabilities"),
        ([0.5, float("nan"), 0.5], "class probabilities must be finite and non-negative"),
        ([1.5, -0.5, 0.0], "class probabilities must be finite and non-negative"),
    ],
)
def test_labels_that_are_not_classes_are_named(label, message):
    """Inside the traced loss, -1 or 0.5 would train on a wrong class without an error."""
    with pytest.raises(ValueError, match=message):
        SoftmaxLoss(None, embedding_dimension=DIM, num_labels=NUM_LABELS).check_label(label)


def test_a_custom_loss_fct_gets_the_logits_and_labels_as_in_sentence_transformers():
    """loss_fct (logits, labels) -> scalar replaces the cross-entropy: here a sum of squared logits of the
    labelled class, written once in torch and once in JAX."""
    classifier = classifier_for({})

    def torch_loss_fct(logits, labels):
        return (logits.gather(1, labels[:, None]) ** 2).sum()

    def jax_loss_fct(logits, labels):
        return jnp.sum(jnp.take_along_axis(logits, labels[:, None].astype(jnp.int32), axis=1) ** 2)

    ours = SoftmaxLoss(None, DIM, NUM_LABELS, loss_fct=jax_loss_fct)
    assert_matches_torch(
        lambda cols, labs: ours.compute(cols, labs, classifier),
        torch_softmax_loss(classifier, {"loss_fct": torch_loss_fct}),
        {"random": (make_columns("random", 2, seed=5), class_labels(6))},
    )
