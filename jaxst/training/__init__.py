"""Training: data loading, optimizer and schedules, checkpoints, the Trainer and its callbacks (the train
step and fit come with them).

The names below are imported on first use, so that reading a data file (`jaxst.training.data`) does
not load JAX."""

from typing import TYPE_CHECKING

from jaxst.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from jaxst.training.callbacks import TrainerCallback
    from jaxst.training.checkpoint import Checkpointer, CorruptCheckpointError
    from jaxst.training.data import DataLoader, InputExample, NoDuplicatesDataLoader, SentencesDataset
    from jaxst.training.group_by_label import GroupByLabelDataLoader
    from jaxst.training.optim import SCHEDULERS, make_optimizer, make_schedule, weight_decay_mask
    from jaxst.training.trainer import SentenceTransformerTrainer
    from jaxst.training.training_args import (
        BatchSamplers,
        MultiDatasetBatchSamplers,
        SentenceTransformerTrainingArguments,
    )

__all__ = [
    "BatchSamplers",
    "MultiDatasetBatchSamplers",
    "SCHEDULERS",
    "Checkpointer",
    "CorruptCheckpointError",
    "DataLoader",
    "GroupByLabelDataLoader",
    "InputExample",
    "NoDuplicatesDataLoader",
    "SentenceTransformerTrainer",
    "SentenceTransformerTrainingArguments",
    "SentencesDataset",
    "TrainerCallback",
    "make_optimizer",
    "make_schedule",
    "weight_decay_mask",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(["Checkpointer", "CorruptCheckpointError"], "jaxst.training.checkpoint"),
        **dict.fromkeys(
            ["DataLoader", "InputExample", "NoDuplicatesDataLoader", "SentencesDataset"],
            "jaxst.training.data",
        ),
        "GroupByLabelDataLoader": "jaxst.training.group_by_label",
        "SentenceTransformerTrainer": "jaxst.training.trainer",
        **dict.fromkeys(
            ["BatchSamplers", "MultiDatasetBatchSamplers", "SentenceTransformerTrainingArguments"],
            "jaxst.training.training_args",
        ),
        "TrainerCallback": "jaxst.training.callbacks",
        **dict.fromkeys(
            ["SCHEDULERS", "make_optimizer", "make_schedule", "weight_decay_mask"], "jaxst.training.optim"
        ),
    },
)
