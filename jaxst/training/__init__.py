"""Training: data loading, optimizer and schedules, checkpoints (the train step and fit come with them)."""

from jaxst.training.checkpoint import Checkpointer, CorruptCheckpointError
from jaxst.training.data import (
    Batch,
    DataLoader,
    InputExample,
    NoDuplicatesDataLoader,
    SentencesDataset,
    collate,
    pad_batch,
)
from jaxst.training.optim import SCHEDULERS, make_optimizer, make_schedule, weight_decay_mask

__all__ = [
    "SCHEDULERS",
    "Batch",
    "Checkpointer",
    "CorruptCheckpointError",
    "DataLoader",
    "InputExample",
    "NoDuplicatesDataLoader",
    "SentencesDataset",
    "collate",
    "make_optimizer",
    "make_schedule",
    "pad_batch",
    "weight_decay_mask",
]
