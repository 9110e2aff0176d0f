"""Normalize: x / max(||x||_2, 1e-12) on the last axis, as sentence-transformers' Normalize (F.normalize)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jax

from jaxst.io.st_format import check_type, read_json_object
from jaxst.similarity import normalize


@dataclasses.dataclass(frozen=True)
class Normalize:
    """sentence-transformers' Normalize module: no parameters; float32 output."""

    module_input_name: str = "sentence_embedding"
    module_output_name: str | None = None

    type_ref = "sentence_transformers.base.modules.normalize.Normalize"

    def __post_init__(self) -> None:
        check_type("module_input_name", self.module_input_name, str)
        check_type("module_output_name", self.module_output_name, str, type(None))
        if self.module_output_name is None:
            object.__setattr__(self, "module_output_name", self.module_input_name)

    @classmethod
    def load(cls, folder: str | Path) -> Normalize:
        """Reads `config.json` of a saved Normalize folder; a missing folder or file gives the defaults.

        Raises:
            ValueError: naming the file, for invalid JSON, an unknown config key or a value of the wrong type.
        """
        path = Path(folder) / "config.json"
        config = read_json_object(path) if path.is_file() else {}
        known = {field.name for field in dataclasses.fields(cls)}
        if unknown := sorted(set(config) - known):
            raise ValueError(
                f"Unknown Normalize config key(s) {unknown} in {path}; jaxst knows {sorted(known)}."
            )
        try:
            return cls(**config)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from error

    def __repr__(self) -> str:
        """As sentence-transformers prints the module: `Kind({config})`."""
        return f"{type(self).__name__}({self.get_config_dict()})"

    def get_config_dict(self) -> dict[str, Any]:
        return {"module_input_name": self.module_input_name, "module_output_name": self.module_output_name}

    def save(self, folder: str | Path, params: None = None) -> None:
        """Writes `config.json` into `folder`."""
        with open(Path(folder) / "config.json", "w", encoding="utf-8") as f:
            json.dump(self.get_config_dict(), f, indent=4)

    def __call__(self, params: None, features: dict[str, jax.Array]) -> dict[str, jax.Array]:
        """features[module_output_name] = normalize(features[module_input_name]); absent input: unchanged."""
        if self.module_input_name not in features:
            return features
        return {**features, self.module_output_name: normalize(features[self.module_input_name])}
