"""`GroupByLabelDataLoader`: batches for in-batch triplet mining, as sentence-transformers' group_by_label
batch sampler (for BatchAllTripletLoss, BatchHardTripletLoss, ...)."""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Any

import numpy as np

from jaxst.training.data import DataLoader


class GroupByLabelDataLoader(DataLoader):
    """Batches in which every label present has at least 2 examples, and no batch has a single label.

    Each epoch, the examples of each label (labels with fewer than 2 examples are left out) are shuffled
    and cut to an even count; then the labels take turns, in an order drawn anew every round, each giving
    2 examples to a stream, until fewer than 2 labels have examples left (two consecutive pairs never
    share a label across a round boundary). The stream is cut into batches of `batch_size`; a last
    shorter batch of at least 4 examples is kept unless `drop_last`. This is sentence-transformers'
    GroupByLabelBatchSampler; the random draws use numpy (`default_rng([seed, epoch])`), not torch.

    Args:
        dataset: as `DataLoader`'s; every example needs a label (hashable: an int, a string, ...).
        batch_size: an even number >= 4.
        drop_last: drop the last, shorter batch.
        seed: the shuffling seed; None draws one.

    Raises:
        ValueError: an odd batch size or one below 4, or fewer than 2 labels with 2 or more examples.
    """

    def __init__(
        self, dataset: Any, batch_size: int, drop_last: bool = False, seed: int | None = None
    ) -> None:
        if isinstance(batch_size, int) and (batch_size < 4 or batch_size % 2):
            raise ValueError(f"group_by_label batches need an even batch_size >= 4, got {batch_size}.")
        groups: dict[Any, list[int]] = defaultdict(list)
        # The plain loader reads the labels, as `len` (which the loader's checks call) needs the groups.
        for index, label in enumerate(DataLoader(dataset, batch_size=batch_size).labels()):
            if label is None:
                raise ValueError(
                    f"group_by_label batches need a label on every example; example {index} has none."
                )
            groups[label.item() if isinstance(label, np.generic) else label].append(index)
        self.groups = {label: indices for label, indices in groups.items() if len(indices) >= 2}
        if len(self.groups) < 2:
            raise ValueError(
                "group_by_label batches need at least 2 labels with 2 or more examples each; "
                f"{len(self.groups)} label(s) qualify."
            )
        pairs = sorted((len(indices) // 2 for indices in self.groups.values()), reverse=True)
        self.stream_length = 2 * sum(min(p, pairs[1]) for p in pairs)
        super().__init__(dataset, batch_size=batch_size, shuffle=True, drop_last=drop_last, seed=seed)

    def __len__(self) -> int:
        batches = self.stream_length // self.batch_size
        if not self.drop_last and self.stream_length % self.batch_size >= 4:
            batches += 1
        return batches

    @property
    def num_full_batches(self) -> int:
        """Batches of exactly `batch_size` examples per epoch."""
        return self.stream_length // self.batch_size

    def _epoch_plan(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        queues = {}
        for label, indices in self.groups.items():
            order = rng.permutation(len(indices))[: len(indices) // 2 * 2]
            queues[label] = deque(indices[i] for i in order)
        labels, stream, last = list(queues), [], None
        while len(labels) >= 2:
            labels = [labels[i] for i in rng.permutation(len(labels))]
            if stream and labels[0] == last:
                labels[0], labels[1] = labels[1], labels[0]
            for label in labels:
                stream += [queues[label].popleft(), queues[label].popleft()]
            last = labels[-1]
            labels = [label for label in labels if queues[label]]
        stream = np.asarray(stream)
        return [stream[start : start + self.batch_size] for start in range(0, len(stream), self.batch_size)][
            : len(self)
        ]
