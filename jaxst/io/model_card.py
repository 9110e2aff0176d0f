"""The model card (README.md) that `SentenceTransformer.save` writes, as sentence-transformers writes its own.

What the card says about training comes from `ModelCardData`, which every training run (`fit` and
`SentenceTransformerTrainer` alike) fills through `jaxst.training.callbacks.ModelCardCallback`: the
training datasets with their sizes, the losses, the hyperparameters and the last evaluation's metrics.

As in sentence-transformers, a model loaded from a folder with a README.md and not trained since saves that
README again unchanged; any other model gets a card generated from `ModelCardData` and the model itself
(base model, the modules as `repr(model)` prints them, maximum sequence length, output dimensionality,
similarity function, library versions).
"""

from __future__ import annotations

import importlib.metadata
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CARD_FILE = "README.md"
SIMILARITY_TITLES = {
    "cosine": "Cosine Similarity",
    "dot": "Dot Product",
    "euclidean": "Euclidean Distance",
    "manhattan": "Manhattan Distance",
}
VERSIONED_PACKAGES = {"jaxst": "jaxst", "JAX": "jax", "Flax": "flax", "Transformers": "transformers"}


@dataclass
class TrainingDataset:
    """One training dataset of a run: its name, its number of examples and the name of its loss."""

    name: str
    size: int
    loss: str


@dataclass
class ModelCardData:
    """What the model card says beyond the model itself.

    Attributes:
        base_model: the name or path the model was loaded from (None for a model built from modules).
        loaded_card: the README.md text of the folder the model was loaded from, if any.
        train_datasets: the datasets of the last training run, in objective order.
        hyperparameters: the last training run's settings, by name.
        eval_metrics: the metrics of the last evaluation of the last training run.
    """

    base_model: str | None = None
    loaded_card: str | None = None
    train_datasets: list[TrainingDataset] = field(default_factory=list)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    eval_metrics: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_source(cls, base_model: str | Path | None, folder: Path | None) -> ModelCardData:
        """The card data of a model loaded from `folder` (None: built from modules), keeping its README.md."""
        card = folder / CARD_FILE if folder is not None else None
        loaded = card.read_text(encoding="utf8") if card is not None and card.is_file() else None
        return cls(base_model=None if base_model is None else str(base_model), loaded_card=loaded)

    @property
    def trained(self) -> bool:
        """Whether a training run has filled the card data."""
        return bool(self.train_datasets)


def library_versions() -> dict[str, str]:
    """{display name: version} of Python and the libraries a jaxst model depends on ("unknown" if absent)."""
    versions = {"Python": platform.python_version()}
    for title, package in VERSIONED_PACKAGES.items():
        try:
            versions[title] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[title] = "unknown"
    return versions


def metrics_table(metrics: dict[str, float]) -> list[str]:
    """A markdown table of the metrics, each to 4 decimals (as sentence-transformers' cards print them)."""
    return ["| Metric | Value |", "|:--|:--|"] + [
        f"| {name} | {value:.4f} |" for name, value in metrics.items()
    ]


def generate_model_card(model: Any) -> str:
    """The README.md text of `model`: the loaded card when untrained since loading, else a generated one."""
    data: ModelCardData = model.model_card_data
    if data.loaded_card is not None and not data.trained:
        return data.loaded_card
    tags = ["sentence-transformers", "sentence-similarity", "feature-extraction", "jaxst"]
    tags += ["generated_from_trainer"] if data.trained else []
    front = ["---", "library_name: sentence-transformers", "pipeline_tag: sentence-similarity", "tags:"]
    front += [f"- {tag}" for tag in tags] + ["---", ""]
    base = f" finetuned from {data.base_model}" if data.base_model else ""
    dimension = model.get_sentence_embedding_dimension()
    lines = [
        "# Sentence Transformer model",
        "",
        f"This is a sentence-transformers model{base}, saved by jaxst. It maps sentences to a "
        f"{dimension}-dimensional dense vector space.",
        "",
        "## Model Details",
        "",
        "- **Model Type:** Sentence Transformer",
        *([f"- **Base model:** {data.base_model}"] if data.base_model else []),
        f"- **Maximum Sequence Length:** {model.max_seq_length} tokens",
        f"- **Output Dimensionality:** {dimension} dimensions",
        f"- **Similarity Function:** {SIMILARITY_TITLES[model.similarity_fn_name]}",
        "",
        "### Full Model Architecture",
        "",
        "```",
        repr(model),
        "```",
        "",
    ]
    if data.eval_metrics:
        lines += ["## Evaluation", "", *metrics_table(data.eval_metrics), ""]
    if data.trained:
        lines += ["## Training Details", "", "### Training Datasets", ""]
        for dataset in data.train_datasets:
            lines += [f"#### {dataset.name}", "", f"* Size: {dataset.size} training samples"]
            lines += [f"* Loss: `{dataset.loss}`", ""]
        lines += ["### Training Hyperparameters", ""]
        lines += [f"- `{name}`: {value}" for name, value in data.hyperparameters.items()]
        lines += [""]
    lines += ["### Framework Versions", ""]
    lines += [f"- {name}: {version}" for name, version in library_versions().items()]
    return "\n".join(front + lines) + "\n"


def write_model_card(model: Any, folder: Path) -> None:
    """Writes `generate_model_card(model)` to `folder`/README.md."""
    (folder / CARD_FILE).write_text(generate_model_card(model), encoding="utf8")
