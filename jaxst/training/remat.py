"""Gradient checkpointing (remat) for training: each encoder layer recomputed in the backward pass.

The policy is a static attribute of the encoder (`TransformerEncoder.remat_policy`, in the NNX graphdef),
so a remat forward pass is `model.forward` with a graphdef whose encoder names a policy, over the same
parameters. Outputs, gradients and checkpoint keys do not change; the activation memory of the backward
pass drops to the layer inputs plus what the policy keeps (`jaxst.models.encoder.REMAT_POLICIES`).

The saving is the GPU and TPU compilers': the lowered program recomputes each layer behind optimization
barriers, but XLA's CPU compiler (jax 0.10) folds the recomputation back into the plain program, whose
memory (`compiled.memory_analysis()`) and matmul count it then equals.
"""

from __future__ import annotations

import copy
from typing import Any

from jaxst.models.encoder import DEFAULT_REMAT_POLICY, REMAT_POLICIES, remat_graphdef


def remat_policy(gradient_checkpointing: bool | str) -> str | None:
    """fit's `gradient_checkpointing` option -> the encoder's remat policy name: False -> None, True ->
    DEFAULT_REMAT_POLICY, a name of `REMAT_POLICIES` -> itself.

    Raises:
        ValueError: for any other value, listing the policies.
    """
    if gradient_checkpointing is False:
        return None
    if gradient_checkpointing is True:
        return DEFAULT_REMAT_POLICY
    if isinstance(gradient_checkpointing, str) and gradient_checkpointing in REMAT_POLICIES:
        return gradient_checkpointing
    raise ValueError(
        f"gradient_checkpointing must be True, False or a remat policy name "
        f"({', '.join(map(repr, REMAT_POLICIES))}), got {gradient_checkpointing!r}."
    )


def with_gradient_checkpointing(model: Any, gradient_checkpointing: bool | str) -> Any:
    """`model` itself when `gradient_checkpointing` is False, else a shallow copy (same parameters) whose
    `forward` runs every encoder layer under `jax.checkpoint` with the policy it names (see
    `remat_policy`)."""
    policy = remat_policy(gradient_checkpointing)
    if policy is None:
        return model
    twin = copy.copy(model)
    twin.graphdef = remat_graphdef(model.graphdef, model.params["encoder"], policy)
    return twin
