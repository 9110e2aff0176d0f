"""Gradient checkpointing: every layer of every family runs under `jax.checkpoint` in the backward pass,
the gradients equal the plain step's, and fit's step differentiates the remat forward pass."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxst.batch_layouts import as_batch
from jaxst.losses import CosineSimilarityLoss
from jaxst.models.encoder import REMAT_POLICIES, remat_graphdef
from jaxst.models.loading import load_encoder
from jaxst.sentence_transformer import SentenceTransformer
from jaxst.training import fit as fit_module
from jaxst.training.batching import batch_arrays
from jaxst.training.data import DataLoader, ExampleBatch, InputExample
from jaxst.training.fit import fit
from jaxst.training.remat import with_gradient_checkpointing
from jaxst.training.step import batch_loss
from tests.models.tiny_models import padded_batch, save_tiny_model
from tests.shared_data import stsb_sentences
from tests.st.tiny_qwen3 import save_tiny_qwen3
from tests.st.tiny_st import build_torch_model, save_tiny_encoder

# The primitive `jax.checkpoint` leaves in a jaxpr.
REMAT_PRIMITIVES = ("checkpoint", "remat2")
FAMILIES = ("bert", "distilbert", "roberta", "mpnet", "modernbert", "qwen3", "gemma3_text", "t5")


@pytest.fixture(scope="module", params=["bert", "qwen3"])
def st_folder(request, tmp_path_factory):
    """A tiny sentence-transformers folder (Transformer, mean Pooling) of a BERT or a Qwen3 encoder."""
    root = tmp_path_factory.mktemp(request.param)
    encoder = save_tiny_qwen3 if request.param == "qwen3" else save_tiny_encoder
    build_torch_model(encoder(root / "encoder"), root / "st")
    return root / "st"


@pytest.fixture(scope="module")
def pairs():
    sentences = stsb_sentences("test", 16)
    labels = np.linspace(0.0, 1.0, 8, dtype=np.float32)
    return ExampleBatch([sentences[:8], sentences[8:]], labels)


def remat_equations(jaxpr: jax.extend.core.Jaxpr) -> list[jax.extend.core.JaxprEqn]:
    """The `jax.checkpoint` equations of `jaxpr` and of the jaxprs nested in it."""
    found = []
    for equation in jaxpr.eqns:
        if equation.primitive.name in REMAT_PRIMITIVES:
            found.append(equation)
        for inner in jax.extend.core.jaxprs_in_params(equation.params):
            found.extend(remat_equations(inner))
    return found


def grad_jaxpr(encoder: nnx.Module, graphdef: nnx.GraphDef) -> jax.extend.core.Jaxpr:
    """The jaxpr of the gradient of sum(last hidden state^2) for a padded batch, with dropout."""
    params = nnx.state(encoder)
    batch = padded_batch(pad_token_id=0)

    def loss(params):
        hidden = nnx.merge(graphdef, params)(
            batch["input_ids"], batch["attention_mask"], dropout_rng=jax.random.key(0)
        )
        return jnp.sum(hidden.astype(jnp.float32) ** 2)

    return jax.make_jaxpr(jax.grad(loss))(params).jaxpr


@pytest.mark.parametrize("family", FAMILIES)
def test_the_backward_pass_recomputes_every_layer_of_every_family(family, tmp_path):
    """One `jax.checkpoint` per layer, under the named policy; none without remat. (The check reads the
    jaxpr: XLA's CPU compiler folds the recomputation back, see `jaxst.training.remat`.)"""
    save_tiny_model(tmp_path, family)
    encoder = load_encoder(tmp_path)
    graphdef, params = nnx.split(encoder)
    policy = "nothing_saveable" if family == "t5" else "dots_with_no_batch_dims_saveable"
    remat = remat_equations(grad_jaxpr(encoder, remat_graphdef(graphdef, params, policy)))
    assert len(remat) == encoder.num_hidden_layers == 2
    assert all(equation.params["policy"] is REMAT_POLICIES[policy] for equation in remat)
    assert remat_equations(grad_jaxpr(encoder, graphdef)) == []


def test_gradients_equal_the_plain_steps(st_folder, pairs):
    """CosineSimilarityLoss with dropout, through the step's `batch_loss`: the same loss, and gradients
    within 1e-5 of the largest gradient, with the default policy."""
    model = SentenceTransformer(st_folder)
    loss = CosineSimilarityLoss(model)
    params = {"model": model.params, "losses": ({},)}
    batch = as_batch(batch_arrays(model, pairs))

    def value_and_grad(forward):
        def of(params):
            return batch_loss(forward, loss, params, batch, dropout_rng=jax.random.key(1))

        return jax.jit(jax.value_and_grad(of))(params)

    plain_value, plain = value_and_grad(model.forward)
    remat_value, remat = value_and_grad(with_gradient_checkpointing(model, True).forward)
    assert float(remat_value) == pytest.approx(float(plain_value), abs=1e-6)
    largest = max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(plain))
    gaps = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), remat, plain)
    assert max(jax.tree.leaves(gaps)) <= 1e-5 * largest


class StepBuilt(Exception):
    """Stops fit once it has built its step, before compiling or training."""


@pytest.mark.parametrize("st_folder", ["bert"], indirect=True)
@pytest.mark.parametrize(
    "option, policy, use_amp",
    [
        (False, None, False),
        (True, "dots_with_no_batch_dims_saveable", False),
        ("dots_saveable", "dots_saveable", True),
    ],
)
def test_fit_builds_its_step_on_the_forward_of_its_gradient_checkpointing_option(
    st_folder, pairs, monkeypatch, option, policy, use_amp
):
    """The encoder of the forward pass fit's step differentiates has the option's remat policy, in
    bfloat16 too (use_amp), over the model's own parameters."""
    model = SentenceTransformer(st_folder)
    examples = [InputExample(texts=[a, b], label=0.5) for a, b in zip(*pairs.texts, strict=True)]
    built = []

    def make_train_step(forward, *args, **kwargs):
        built.append(forward)
        raise StepBuilt

    monkeypatch.setattr(fit_module, "make_train_step", make_train_step)
    with pytest.raises(StepBuilt):
        fit(
            model,
            [(DataLoader(examples, batch_size=4), CosineSimilarityLoss(model))],
            gradient_checkpointing=option,
            use_amp=use_amp,
            show_progress_bar=False,
        )
    (forward,) = built
    assert forward.__self__.params is model.params
    encoder = nnx.merge(forward.__self__.graphdef, model.params["encoder"])
    assert encoder.remat_policy == policy
    assert encoder.dtype == (jnp.bfloat16 if use_amp else jnp.float32)


@pytest.mark.parametrize("st_folder", ["bert"], indirect=True)
def test_an_unknown_policy_is_refused_naming_the_known_ones(st_folder, pairs):
    model = SentenceTransformer(st_folder)
    examples = [InputExample(texts=[a, b], label=0.5) for a, b in zip(*pairs.texts, strict=True)]
    with pytest.raises(ValueError, match="gradient_checkpointing.*'dots_with_no_batch_dims_saveable'"):
        fit(
            model,
            [(DataLoader(examples, batch_size=4), CosineSimilarityLoss(model))],
            gradient_checkpointing="everything",
            show_progress_bar=False,
        )
