"""fit's training objectives: each (dataloader, loss) pair, checked before training, and its batches."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from jaxst.losses.base import Loss, loss_chain
from jaxst.training.data import DataLoader, ExampleBatch, as_data_loader
from jaxst.training.guide import GuideEmbedder
from jaxst.training.step import takes_packed_batches


@dataclass
class Objective:
    """One (dataloader, loss) pair of `train_objectives`, with its compiled step and batch iterator."""

    loader: DataLoader
    loss: Loss
    index: int
    step: Callable | None = None
    batches: Iterator[ExampleBatch] | None = None
    guide: GuideEmbedder | None = None

    @property
    def packed(self) -> bool:
        """Whether batches are packed (`jaxst.training.step.takes_packed_batches`)."""
        return takes_packed_batches(self.loss)

    @property
    def full_batches(self) -> int:
        """Batches of exactly `batch_size` examples per epoch (1 when the dataset is smaller); a loader
        that batches otherwise says so in its `num_full_batches`."""
        full = getattr(self.loader, "num_full_batches", len(self.loader.dataset) // self.loader.batch_size)
        return max(1, full)

    def start_epoch(self) -> None:
        """Moves the loader to the start of its next epoch (unless it is at one), as fit epochs begin."""
        position = self.loader.state_dict()
        if position["batch_index"]:
            position = {**position, "epoch": position["epoch"] + 1, "batch_index": 0}
        self.loader.load_state_dict(position)
        self.batches = None

    def next_batch(self) -> ExampleBatch:
        """The next full batch; the loader starts its next epoch when this one runs out."""
        for _ in range(2):
            if self.batches is None:
                self.batches = iter(self.loader)
            for batch in self.batches:
                if len(batch.texts[0]) == self.loader.batch_size or self.full_batches == 1:
                    return batch
            self.batches = None
        raise ValueError(f"Training objective {self.index} ({type(self.loss).__name__}) yields no batch.")


def epoch_plan(
    objectives: Sequence[Objective],
    sampler: str,
    *,
    rounds: int | None,
    seed: int,
    epoch: int,
    batches_per_step: int = 1,
) -> list[int]:
    """The objective index of each step of `epoch`, as sentence-transformers' multi-dataset batch samplers.

    A step takes `batches_per_step` (m, gradient accumulation) full batches of its objective, so an
    objective offers steps_o = max(1, full_batches_o // m) steps per epoch.
    round_robin: one step of each objective in turn, for `rounds` rounds (default: the smallest
        steps_o), so an epoch has rounds * len(objectives) steps (fit's order);
    proportional: every step of every objective once, in the order of
        `np.random.default_rng([seed, epoch]).permutation` of [0] * steps_0 + [1] * steps_1 + ...,
        so larger datasets are drawn from more often (the draw differs from torch's).
    """
    steps = [max(1, o.full_batches // batches_per_step) for o in objectives]
    if sampler == "round_robin":
        rounds = rounds or min(steps)
        return [o.index for _ in range(rounds) for o in objectives]
    if rounds is not None:
        raise ValueError("steps_per_epoch applies to the round_robin multi-dataset batch sampler only.")
    order = np.repeat(np.arange(len(objectives)), steps)
    return np.random.default_rng([seed, epoch]).permutation(order).tolist()


def check_labels(loader: DataLoader, loss: Loss) -> None:
    """Hands every example's label to `check_label` of `loss` and of the losses it wraps.

    Raises:
        ValueError: naming the example (its index in the dataset), the loss and the label.
    """
    checkers = [link for link in loss_chain(loss) if type(link).check_label is not Loss.check_label]
    if not checkers:
        return  # every label is accepted: no need to read them
    for index, label in enumerate(loader.labels()):
        for checker in checkers:
            try:
                checker.check_label(label)
            except ValueError as error:
                raise ValueError(f"Example {index} ({type(checker).__name__}): {error}") from None


def check_objectives(train_objectives: Sequence[Any]) -> list[Objective]:
    """Validates `train_objectives`, the first example of each against its loss, and every label."""
    if not train_objectives:
        raise ValueError("fit needs at least one (dataloader, loss) training objective.")
    objectives = []
    for index, pair in enumerate(train_objectives):
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise ValueError(f"Training objective {index} must be a (dataloader, loss) pair, got {pair!r}.")
        try:
            loader, loss = as_data_loader(pair[0]), pair[1]
        except (TypeError, ValueError) as error:
            raise type(error)(f"Training objective {index}: {error}") from None
        if not isinstance(loss, Loss):
            raise TypeError(f"Training objective {index}: expected a jaxst loss, got {type(loss).__name__}.")
        first = loader.example(0)
        try:
            loss.check_example_shape(len(first.texts), first.label is not None)
            check_labels(loader, loss)
        except ValueError as error:
            raise ValueError(f"Training objective {index}: {error}") from None
        objectives.append(Objective(loader, loss, index))
    return objectives
