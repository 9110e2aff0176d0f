"""Affine layers owned by losses (SoftmaxLoss' classifier, MSELoss' projection), as parameter pytrees.

Parameters are `{"kernel": [in, out], "bias": [out]}` (Flax's layout; torch's `nn.Linear.weight` is the
transposed kernel), initialised as torch's `nn.Linear` does: kernel and bias uniform in
[-1/sqrt(in), 1/sqrt(in)] (kaiming_uniform with a = sqrt(5)).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

LinearParams = dict[str, jax.Array]


def init_linear(rng: jax.Array, in_features: int, out_features: int) -> LinearParams:
    """float32 parameters of an affine map R^in -> R^out, drawn as torch's `nn.Linear` draws them."""
    bound = 1.0 / in_features**0.5
    kernel_rng, bias_rng = jax.random.split(rng)
    return {
        "kernel": jax.random.uniform(kernel_rng, (in_features, out_features), jnp.float32, -bound, bound),
        "bias": jax.random.uniform(bias_rng, (out_features,), jnp.float32, -bound, bound),
    }


def check_linear(loss_name: str, params: LinearParams, in_features: int) -> None:
    """Raises ValueError unless params is {"kernel": [in_features, out], "bias": [out]}."""
    if not isinstance(params, dict) or set(params) != {"kernel", "bias"}:
        keys = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise ValueError(f"{loss_name}: expected linear parameters {{'kernel', 'bias'}}, got {keys}.")
    kernel, bias = params["kernel"], params["bias"]
    if kernel.ndim != 2 or kernel.shape[0] != in_features or bias.shape != kernel.shape[1:]:
        raise ValueError(
            f"{loss_name}: linear parameters must be kernel [{in_features}, out] and bias [out] for inputs "
            f"of size {in_features}, got kernel {tuple(kernel.shape)} and bias {tuple(bias.shape)}."
        )


def apply_linear(params: LinearParams, x: jax.Array) -> jax.Array:
    """x @ kernel + bias in float32. x [..., in] -> [..., out]."""
    return x.astype(jnp.float32) @ params["kernel"].astype(jnp.float32) + params["bias"].astype(jnp.float32)
