"""LoRA on an encoder's linear layers: `LoraDense` wraps a targeted `Dense`; attach, list and merge.

An encoder's linear layers are found through its checkpoint key table (`key_mapping(spec).table`): a
`Dense` kernel loaded from the torch key "<name>.weight" is the linear layer that transformers calls
<name> (e.g. "encoder.layer.0.attention.self.query" in BERT, "layers.0.self_attn.q_proj" in Qwen3), the
name PEFT matches `target_modules` against and writes its adapter keys under.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxst.io.hf import ParamPath
from jaxst.lora.config import DEFAULT_TARGET_MODULES, LoraConfig
from jaxst.models.encoder import TransformerEncoder
from jaxst.models.layers import Dense, DropoutKey


class LoraParam(nnx.Param):
    """A LoRA factor: the only parameters that train once an adapter is attached."""


class LoraDense(Dense):
    """A `Dense` with a LoRA adapter: y = x W + b + scaling * ((dropout(x) A) B), as peft's lora.Linear.

    kernel W [in, out] and bias b [out] are the base layer's (frozen in training, any float dtype);
    lora_a A [in, r] and lora_b B [r, out] are float32 `LoraParam`s; matmuls run in the compute dtype.
    dropout (lora_dropout = p > 0, train mode only): each entry of the input of A is zeroed with
    probability p and the others scaled by 1 / (1 - p), as torch's Dropout; the key is the layer's own
    `DropoutKey`, which the encoder sets for each forward pass (`seed_dropout_keys`).
    """

    def __init__(
        self,
        base: Dense,
        *,
        rank: int,
        scaling: float,
        init: bool | str,
        rng: jax.Array,
        dropout_rate: float = 0.0,
    ):
        """Wraps `base`, with A and B initialised as peft's `init_lora_weights` (see `LoraConfig`)."""
        self.kernel, self.bias, self.dtype = base.kernel, base.bias, base.dtype
        in_features, out_features = base.kernel.shape
        a_key, b_key = jax.random.split(rng)
        if init == "gaussian":
            lora_a = jax.random.normal(a_key, (in_features, rank)) / rank
        else:
            lora_a = kaiming_uniform(a_key, (in_features, rank))
        lora_b = (
            kaiming_uniform(b_key, (rank, out_features)) if init is False else jnp.zeros((rank, out_features))
        )
        self.lora_a = LoraParam(lora_a)
        self.lora_b = LoraParam(lora_b)
        self.scaling = scaling
        self.dropout_rate = dropout_rate
        if dropout_rate > 0:
            self.dropout_key = DropoutKey(jnp.zeros((2,), jnp.uint32))
            self.dropout_active = False

    def __call__(self, x: jax.Array) -> jax.Array:
        """x [..., in] in the compute dtype -> [..., out] in the compute dtype."""
        dropped = x
        if self.dropout_rate > 0 and self.dropout_active:
            keep = jax.random.bernoulli(self.dropout_key[...], 1.0 - self.dropout_rate, x.shape)
            dropped = jnp.where(keep, x / (1.0 - self.dropout_rate), jnp.zeros((), x.dtype)).astype(x.dtype)
        update = (dropped @ self.lora_a[...].astype(self.dtype)) @ self.lora_b[...].astype(self.dtype)
        return super().__call__(x) + update * self.scaling

    def merged(self) -> Dense:
        """A plain `Dense` with kernel W + scaling * A B (formed in float32, cast to W's dtype)."""
        delta = (self.lora_a[...] @ self.lora_b[...]) * self.scaling
        kernel = (self.kernel[...].astype(jnp.float32) + delta).astype(self.kernel.dtype)
        in_features, out_features = kernel.shape
        dense = nnx.eval_shape(
            lambda: Dense(
                in_features,
                out_features,
                dtype=self.dtype,
                init_std=0.0,
                rngs=nnx.Rngs(0),
                use_bias=self.bias is not None,
            )
        )
        dense.kernel = nnx.Param(kernel)
        dense.bias = None if self.bias is None else nnx.Param(self.bias[...])
        return dense


def kaiming_uniform(key: jax.Array, shape: tuple[int, int]) -> jax.Array:
    """torch's default Linear init, kaiming_uniform_(a=sqrt(5)), of a kernel [in, out]: U(-1/sqrt(in),
    1/sqrt(in)) in float32."""
    bound = 1.0 / math.sqrt(shape[0])
    return jax.random.uniform(key, shape, minval=-bound, maxval=bound)


def linear_layers(encoder: TransformerEncoder) -> dict[str, ParamPath]:
    """Every linear layer of `encoder`: its transformers module name -> its module path in the encoder."""
    layers = {}
    for key, (path, _) in type(encoder).key_mapping(encoder.spec).table.items():
        if (
            key.endswith(".weight")
            and path[-1] == "kernel"
            and isinstance(module_at(encoder, path[:-1]), Dense)
        ):
            layers[key.removesuffix(".weight")] = path[:-1]
    return layers


def adapted_layers(encoder: TransformerEncoder) -> Iterator[tuple[str, LoraDense]]:
    """(transformers module name, layer) of each of `encoder`'s `LoraDense` layers, in key-table order."""
    for name, path in linear_layers(encoder).items():
        module = module_at(encoder, path)
        if isinstance(module, LoraDense):
            yield name, module


def resolve_targets(config: LoraConfig, model_type: str) -> LoraConfig:
    """`config` with target_modules set: PEFT's default for `model_type` when it is None.

    Raises:
        ValueError: target_modules is None and PEFT has no default for the model type.
    """
    if config.target_modules is not None:
        return config
    if model_type not in DEFAULT_TARGET_MODULES:
        raise ValueError(
            f"LoraConfig option target_modules is needed for model type {model_type!r}: PEFT has no default "
            f"for it (defaults exist for {sorted(DEFAULT_TARGET_MODULES)})."
        )
    return config.with_target_modules(DEFAULT_TARGET_MODULES[model_type])


def matches(pattern: tuple[str, ...] | str, name: str) -> bool:
    """PEFT's module matching: a string is a regular expression the whole name must match; a list matches
    a name equal to an entry or ending in "." + entry."""
    if isinstance(pattern, str):
        return re.fullmatch(pattern, name) is not None
    return name in pattern or any(name.endswith(f".{entry}") for entry in pattern)


def attach(encoder: TransformerEncoder, config: LoraConfig, rng: jax.Array) -> None:
    """Replaces each linear layer `config` targets by a `LoraDense` (in place); config.target_modules must
    be resolved (`resolve_targets`). Layer i of the key table draws its A and B from fold_in(rng, i).

    Raises:
        ValueError: naming target_modules and some layer names, when no layer matches.
    """
    layers = linear_layers(encoder)
    chosen = [
        name
        for name in layers
        if (config.target_modules == "all-linear" or matches(config.target_modules, name))
        and not (config.exclude_modules and matches(config.exclude_modules, name))
    ]
    if not chosen:
        raise ValueError(
            f"LoraConfig target_modules={config.target_modules!r} "
            f"(exclude_modules={config.exclude_modules!r}) "
            f"matches no linear layer of this {encoder.spec.model_type} model; its layers are named like "
            f"{list(layers)[:6]}."
        )
    for index, name in enumerate(chosen):
        path = layers[name]
        adapted = LoraDense(
            module_at(encoder, path),
            rank=config.r,
            scaling=config.scaling,
            init=config.init_lora_weights,
            rng=jax.random.fold_in(rng, index),
            dropout_rate=float(config.lora_dropout),
        )
        _set_module(encoder, path, adapted)


def merge(encoder: TransformerEncoder) -> None:
    """Folds every `LoraDense` of `encoder` into a plain `Dense` (W + scaling * A B), in place."""
    paths = linear_layers(encoder)
    for name, layer in list(adapted_layers(encoder)):
        _set_module(encoder, paths[name], layer.merged())


def module_at(root: nnx.Module, path: ParamPath) -> Any:
    """The submodule (or parameter) of `root` at `path`, e.g. ("layers", 0, "query")."""
    module: Any = root
    for part in path:
        module = module[part] if isinstance(part, int) else getattr(module, part)
    return module


def _set_module(root: nnx.Module, path: ParamPath, module: nnx.Module) -> None:
    parent, last = module_at(root, path[:-1]), path[-1]
    if isinstance(last, int):
        parent[last] = module
    else:
        setattr(parent, last, module)
