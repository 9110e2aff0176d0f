"""Dense: y = activation(x W^T + b) (+ x, or + x R^T, with use_residual), as sentence-transformers' Dense.

Saved as sentence-transformers saves it: `config.json` (in_features, out_features, bias,
activation_function as the torch class path, module_input_name, module_output_name, use_residual when
True) and `model.safetensors` with the torch names `linear.weight` [out, in], `linear.bias` [out] and,
with a residual projection, `residual.weight` [out, in]. Computed in float32.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from safetensors.numpy import load_file, save_file

from jaxst.io.st_format import check_positive_int, check_type, read_json_object

logger = logging.getLogger(__name__)


def _softplus(x: jax.Array) -> jax.Array:
    # torch Softplus (beta=1, threshold=20): linear above the threshold.
    return jnp.where(x > 20, x, jnp.log1p(jnp.exp(jnp.minimum(x, 20))))


def _relu6(x: jax.Array) -> jax.Array:
    return jnp.clip(x, 0, 6)


# torch.nn activation classes (constructed with their default arguments, as sentence-transformers
# loads them) -> (torch module path, JAX function).
ACTIVATIONS: dict[str, tuple[str, Callable[[jax.Array], jax.Array]]] = {
    "Identity": ("torch.nn.modules.linear", lambda x: x),
    "Tanh": ("torch.nn.modules.activation", jnp.tanh),
    "ReLU": ("torch.nn.modules.activation", jax.nn.relu),
    "GELU": ("torch.nn.modules.activation", lambda x: jax.nn.gelu(x, approximate=False)),
    "Sigmoid": ("torch.nn.modules.activation", jax.nn.sigmoid),
    "SiLU": ("torch.nn.modules.activation", jax.nn.silu),
    "LeakyReLU": ("torch.nn.modules.activation", lambda x: jax.nn.leaky_relu(x, 0.01)),
    "ELU": ("torch.nn.modules.activation", lambda x: jax.nn.elu(x, 1.0)),
    "SELU": ("torch.nn.modules.activation", jax.nn.selu),
    "CELU": ("torch.nn.modules.activation", lambda x: jax.nn.celu(x, 1.0)),
    "Softplus": ("torch.nn.modules.activation", _softplus),
    "Softsign": ("torch.nn.modules.activation", lambda x: x / (1 + jnp.abs(x))),
    "Mish": ("torch.nn.modules.activation", lambda x: x * jnp.tanh(_softplus(x))),
    "Hardtanh": ("torch.nn.modules.activation", lambda x: jnp.clip(x, -1, 1)),
    "ReLU6": ("torch.nn.modules.activation", _relu6),
    "Hardsigmoid": ("torch.nn.modules.activation", lambda x: _relu6(x + 3) / 6),
    "Hardswish": ("torch.nn.modules.activation", lambda x: x * _relu6(x + 3) / 6),
    "LogSigmoid": ("torch.nn.modules.activation", jax.nn.log_sigmoid),
    "Tanhshrink": ("torch.nn.modules.activation", lambda x: x - jnp.tanh(x)),
}
DEFAULT_ACTIVATION = "torch.nn.modules.activation.Tanh"


def activation_class_name(path: str) -> str:
    """The torch class name of a stored activation path, e.g. "torch.nn.modules.activation.Tanh" -> "Tanh".

    A path outside torch falls back to Tanh with a warning, as sentence-transformers does without
    trust_remote_code.

    Raises:
        ValueError: for a torch class jaxst does not implement.
    """
    if not path.startswith("torch."):
        logger.warning("Dense activation %r is not a torch class; falling back to Tanh.", path)
        return "Tanh"
    name = path.rsplit(".", 1)[-1]
    if name not in ACTIVATIONS:
        raise ValueError(
            f"Dense activation_function {path!r} is not supported; jaxst knows {sorted(ACTIVATIONS)}."
        )
    return name


@dataclasses.dataclass(frozen=True)
class Dense:
    """sentence-transformers' Dense module; its parameters live in the model's params pytree.

    `activation_function` is a torch class path ("torch.nn.modules.activation.Tanh"), or, as
    sentence-transformers takes it, a torch activation module (`torch.nn.Tanh()`) or None (Identity).
    A model built with `SentenceTransformer(modules=[...])` draws a new Dense's params with `init_params`.

    Params: {"linear": {"weight": [out, in], "bias": [out]}} plus {"residual": {"weight": [out, in]}}
    when use_residual and in_features != out_features.
    """

    in_features: int
    out_features: int
    bias: bool = True
    activation_function: str = DEFAULT_ACTIVATION
    module_input_name: str = "sentence_embedding"
    module_output_name: str | None = None
    use_residual: bool = False

    type_ref = "sentence_transformers.base.modules.dense.Dense"

    def __post_init__(self) -> None:
        activation = self.activation_function
        if activation is None:  # sentence-transformers' None: no activation
            object.__setattr__(self, "activation_function", "torch.nn.modules.linear.Identity")
        elif not isinstance(activation, str) and type(activation).__module__.startswith("torch."):
            # a torch activation module, as sentence-transformers takes it: nn.Tanh()
            object.__setattr__(
                self, "activation_function", f"{type(activation).__module__}.{type(activation).__name__}"
            )
        check_positive_int("in_features", self.in_features)
        check_positive_int("out_features", self.out_features)
        check_type("bias", self.bias, bool)
        check_type("activation_function", self.activation_function, str)
        check_type("module_input_name", self.module_input_name, str)
        check_type("module_output_name", self.module_output_name, str, type(None))
        check_type("use_residual", self.use_residual, bool)
        name = activation_class_name(self.activation_function)
        module, _ = ACTIVATIONS[name]
        object.__setattr__(self, "activation_function", f"{module}.{name}")
        if self.module_output_name is None:
            object.__setattr__(self, "module_output_name", self.module_input_name)

    @property
    def output_dimension(self) -> int:
        return self.out_features

    def get_embedding_dimension(self) -> int:
        """out_features, as sentence-transformers' Dense names it."""
        return self.out_features

    def init_params(self, key: jax.Array) -> dict[str, dict[str, jax.Array]]:
        """New float32 params, drawn as torch draws nn.Linear's: weight, bias ~ U(-1/sqrt(in), 1/sqrt(in)).

        Args:
            key: a jax.random key.
        """
        bound = 1.0 / np.sqrt(self.in_features)
        shape = (self.out_features, self.in_features)
        keys = jax.random.split(key, 3)
        params = {"linear": {"weight": jax.random.uniform(keys[0], shape, jnp.float32, -bound, bound)}}
        if self.bias:
            params["linear"]["bias"] = jax.random.uniform(keys[1], shape[:1], jnp.float32, -bound, bound)
        if self.has_residual_projection:
            params["residual"] = {"weight": jax.random.uniform(keys[2], shape, jnp.float32, -bound, bound)}
        return params

    @property
    def has_residual_projection(self) -> bool:
        return self.use_residual and self.in_features != self.out_features

    @classmethod
    def load(cls, folder: str | Path) -> tuple[Dense, dict[str, dict[str, jax.Array]]]:
        """Reads a saved Dense module folder: the module and its float32 params.

        Raises:
            ValueError: naming `config.json`, for invalid JSON, an unknown or missing config key or a value
                of the wrong type; for a missing, unexpected or wrong-shaped weight.
            FileNotFoundError: when the folder has no `model.safetensors` (a pickled `pytorch_model.bin`
                is not read: convert it to safetensors first).
        """
        folder = Path(folder)
        config_path = folder / "config.json"
        config = read_json_object(config_path)
        known = {field.name for field in dataclasses.fields(cls)}
        if unknown := sorted(set(config) - known):
            raise ValueError(
                f"Unknown Dense config key(s) {unknown} in {config_path}; jaxst knows {sorted(known)}."
            )
        if missing := sorted({"in_features", "out_features"} - set(config)):
            raise ValueError(f"{config_path}: Dense config key(s) {missing} missing.")
        try:
            module = cls(**config)
        except ValueError as error:
            raise ValueError(f"{config_path}: {error}") from error
        weights_path = folder / "model.safetensors"
        if not weights_path.exists():
            raise FileNotFoundError(
                f"{weights_path} not found: jaxst reads Dense weights from safetensors only "
                "(a pytorch_model.bin must be converted first)."
            )
        return module, module.params_from_torch_state(load_file(weights_path))

    def params_from_torch_state(self, state: dict[str, np.ndarray]) -> dict[str, dict[str, jax.Array]]:
        """Maps the torch state dict (as in `model.safetensors`) to params, checking names and shapes."""
        expected = {"linear.weight": (self.out_features, self.in_features)}
        if self.bias:
            expected["linear.bias"] = (self.out_features,)
        if self.has_residual_projection:
            expected["residual.weight"] = (self.out_features, self.in_features)
        if missing := sorted(set(expected) - set(state)):
            raise ValueError(f"Dense weights are missing {missing}.")
        if unexpected := sorted(set(state) - set(expected)):
            raise ValueError(f"Dense weights have unexpected key(s) {unexpected}.")
        params: dict[str, dict[str, jax.Array]] = {}
        for key, shape in expected.items():
            if state[key].shape != shape:
                raise ValueError(f"Dense weight {key!r} has shape {state[key].shape}, expected {shape}.")
            layer, name = key.split(".")
            params.setdefault(layer, {})[name] = jnp.asarray(state[key], jnp.float32)
        return params

    def __repr__(self) -> str:
        """As sentence-transformers prints the module: `Kind({config})`."""
        return f"{type(self).__name__}({self.get_config_dict()})"

    def get_config_dict(self) -> dict[str, Any]:
        """The config sentence-transformers writes (use_residual only when True)."""
        config = {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.bias,
            "activation_function": self.activation_function,
            "module_input_name": self.module_input_name,
            "module_output_name": self.module_output_name,
        }
        if self.use_residual:
            config["use_residual"] = True
        return config

    def save(self, folder: str | Path, params: dict[str, dict[str, jax.Array]]) -> None:
        """Writes `config.json` and `model.safetensors` (torch names) into `folder`."""
        folder = Path(folder)
        with open(folder / "config.json", "w", encoding="utf-8") as f:
            json.dump(self.get_config_dict(), f, indent=4)
        state = {
            f"{layer}.{name}": np.asarray(value, np.float32)
            for layer, tensors in params.items()
            for name, value in tensors.items()
        }
        save_file(state, folder / "model.safetensors", metadata={"format": "pt"})

    def __call__(
        self, params: dict[str, dict[str, jax.Array]], features: dict[str, jax.Array]
    ) -> dict[str, jax.Array]:
        """features[module_output_name] = activation(x W^T + b) (+ residual), x = the input feature."""
        x = features[self.module_input_name].astype(jnp.float32)
        y = x @ params["linear"]["weight"].T
        if self.bias:
            y = y + params["linear"]["bias"]
        y = ACTIVATIONS[activation_class_name(self.activation_function)][1](y)
        if self.use_residual:
            y = y + (x @ params["residual"]["weight"].T if self.has_residual_projection else x)
        return {**features, self.module_output_name: y}
