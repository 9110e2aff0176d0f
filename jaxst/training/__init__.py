"""Training: data loading, optimizer and schedules, checkpoints (the train step and fit come with them)."""

from jaxst.training.checkpoint import Checkpointer, CorruptCheckpointError
from jaxst.training.data import DataLoader, InputExample, NoDuplicatesDataLoader, SentencesDataset
from jaxst.training.optim import SCHEDULERS, make_optimizer, make_schedule, weight_decay_mask

__all__ = [
    "SCHEDULERS",
    "Checkpointer",
    "CorruptCheckpointError",
    "DataLoader",
    "InputExample",
    "NoDuplicatesDataLoader",
    "SentencesDataset",
    "make_optimizer",
    "make_schedule",
    "weight_decay_mask",
]
