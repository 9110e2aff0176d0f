"""Training: data loading, optimizer and schedules, checkpoints (the train step and fit come with them)."""

from jaxst.training.data import (
    Batch,
    DataLoader,
    InputExample,
    NoDuplicatesDataLoader,
    SentencesDataset,
    collate,
    pad_batch,
)

__all__ = [
    "Batch",
    "DataLoader",
    "InputExample",
    "NoDuplicatesDataLoader",
    "SentencesDataset",
    "collate",
    "pad_batch",
]
