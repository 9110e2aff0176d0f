"""Encoder-level parity with sentence-transformers: a jaxst loss through the train step's `batch_loss`
and sentence-transformers' loss on the same tiny BERT and texts, value and every encoder gradient.

Both sides embed the same rows with the same weights (dropout off); the gradients of the encoder's
parameters are compared tensor by tensor through the checkpoint key table.
"""

from __future__ import annotations

import copy

import jax
import jax.numpy as jnp
import numpy as np
import torch
from flax import nnx

from jaxst.models.registry import key_table
from jaxst.training.batching import batch_arrays
from jaxst.training.data import ExampleBatch
from jaxst.training.step import batch_loss

NUM_LAYERS = 2  # the tiny model's
TOLERANCE = 1e-5


def jaxst_batch(model, texts, labels):
    """The train step's batch: [k, b, T] token arrays padded to a training bucket (+ labels)."""
    arrays = batch_arrays(model, ExampleBatch(texts, labels))
    return {name: jnp.asarray(value) for name, value in arrays.items()}


def model_encoder(grads):
    return grads["model"]["encoder"]


def jaxst_value_and_grads(model, loss, batch, *, loss_params=None, encoder_of=model_encoder):
    """A jitted (key -> loss value, encoder gradients) of the train step's loss on `batch`.

    `loss_params`: the loss's parameters ({} by default); `encoder_of` picks the encoder's gradients out of
    the gradients of {"model": ..., "losses": (loss_params,)} (by default the model's)."""
    params = {"model": model.params, "losses": ({} if loss_params is None else loss_params,)}
    run = jax.jit(jax.value_and_grad(lambda p, key: batch_loss(model.forward, loss, p, batch, loss_rng=key)))

    def value_and_grads(key=None):
        value, grads = run(params, key)
        return float(value), encoder_of(grads)

    return value_and_grads


def torch_run(torch_model, make_loss, texts, labels, dtype, encoder_of=None):
    """sentence-transformers' value, encoder gradients and bias term magnitudes on a copy of the model
    cast to `dtype`.

    `encoder_of(loss, model)` names the SentenceTransformer whose encoder gradients are read (by default
    the model; e.g. a ContrastiveTension loss's `model1`). The term magnitudes: for each Linear and
    LayerNorm bias key, sum over every call and token of |dL/d(the module's output)| per feature, the
    terms whose sum is that bias's gradient (`bias_term_magnitudes`)."""
    torch_model = copy.deepcopy(torch_model).to(dtype)
    torch_model.zero_grad()
    loss = make_loss(torch_model)
    read_from = torch_model if encoder_of is None else encoder_of(loss, torch_model)
    magnitudes, hooks = bias_term_magnitudes(read_from[0].auto_model)
    features = [torch_model.preprocess(column) for column in texts]
    value = loss(features, None if labels is None else torch.from_numpy(labels).to(dtype))
    value.backward()
    for hook in hooks:
        hook.remove()
    grads = {
        name: np.zeros(p.shape) if p.grad is None else p.grad.numpy().astype(np.float64)
        for name, p in read_from[0].auto_model.named_parameters()
    }
    return float(value.detach()), grads, magnitudes


def bias_term_magnitudes(encoder):
    """({bias key: float64 [features] zeros, filled during backward}, the hooks to remove afterwards).

    A Linear's or LayerNorm's bias gradient is the sum over tokens of the gradient of its output; each
    forward call's output gets a tensor hook adding |that gradient| summed over the leading dimensions."""
    magnitudes, hooks = {}, []
    for name, module in encoder.named_modules():
        if not isinstance(module, (torch.nn.Linear, torch.nn.LayerNorm)) or module.bias is None:
            continue
        key = f"{name}.bias"
        magnitudes[key] = np.zeros(module.bias.shape)

        def on_output(module, inputs, output, key=key):
            if output.requires_grad:
                output.register_hook(lambda grad: add_magnitude(key, grad))

        def add_magnitude(key, grad):
            magnitudes[key] += grad.detach().abs().reshape(-1, grad.shape[-1]).sum(0).double().numpy()

        hooks.append(module.register_forward_hook(on_output))
    return magnitudes, hooks


def torch_value_and_grads(torch_model, make_loss, texts, labels, encoder_of=None):
    """sentence-transformers' value and encoder gradients in float64, and the scale each tensor's error
    is measured against.

    The reference in float64 leaves only jaxst's float32 rounding in the comparison. A tensor's scale is
    its largest |entry|, except for the Linear and LayerNorm biases: a bias's gradient is a sum over every
    token of its output's gradient, and here those terms mostly cancel (the tiny random model's sentence
    embeddings are nearly parallel, and CoSENT scales their differences by 20), so that float32 rounding,
    which scales with the terms, not their sum, misses 1e-5 of the sum's largest entry on some inputs and
    CPUs (PyTorch's own float32 run by up to 1.1e-5, jaxst by up to 1.5e-5, measured). A bias's scale is
    therefore the largest per-feature sum of the terms' magnitudes (`bias_term_magnitudes`), which equals
    its largest |entry| where nothing cancels.

    `encoder_of` as for `torch_run`.

    Returns:
        (value, {key: float64 gradient}, {key: the scale of that tensor's error}).
    """
    value, grads, magnitudes = torch_run(torch_model, make_loss, texts, labels, torch.float64, encoder_of)
    scales = {key: float(np.max(np.abs(grad))) for key, grad in grads.items()}
    for key, magnitude in magnitudes.items():
        scales[key] = max(scales[key], float(np.max(magnitude)))
    return value, grads, scales


def assert_same_gradients(jax_grads, torch_grads, scales):
    """Every encoder tensor (transposed where torch stores a Linear weight): max |error| over the tensor's
    scale (`torch_value_and_grads`) below TOLERANCE.

    The attention key biases are the exception: their gradient is zero in exact arithmetic (softmax is
    invariant to adding one number to a row of scores), so both sides must be float noise, below 1e-9.
    """
    flat = {path: np.asarray(v[...]) for path, v in nnx.to_flat_state(jax_grads)}
    table = key_table("bert", NUM_LAYERS)
    assert set(table) == {k for k in torch_grads if not k.startswith("pooler.")}
    for key, (path, transposed) in table.items():
        ours = flat[path].T if transposed else flat[path]
        theirs = torch_grads[key]
        if key.endswith("attention.self.key.bias"):
            assert np.max(np.abs(ours)) < 1e-9 and np.max(np.abs(theirs)) < 1e-9, key
            continue
        error = float(np.max(np.abs(ours - theirs))) / scales[key]
        assert error < TOLERANCE, f"{key}: error {error:.2e} of the tensor's scale {scales[key]:.2e}"
