"""Training data as sentence-transformers' `fit` takes it, without torch.

`InputExample` and `SentencesDataset` keep sentence-transformers' names and fields. `DataLoader` takes
the torch keywords that tutorial code uses (`batch_size`, `shuffle`, `drop_last`) and yields `ExampleBatch`es:
the texts per column and the labels as one numpy array. Shuffling is a pure function of
(seed, epoch), and the loader's position (epoch, batch index) can be saved and restored with
`state_dict` / `load_state_dict`, so that training resumes exactly mid-epoch.

fit also takes a `torch.utils.data.DataLoader` over InputExamples, as sentence-transformers tutorials build
it (`as_data_loader`): its dataset, batch_size, shuffle and drop_last carry over into a jaxst DataLoader
(shuffled in jaxst's order, not torch's).

Inputs a loader accepts:
- a sequence of `InputExample` (or a `SentencesDataset`), checked whole when the loader is built;
- a Hugging Face `datasets.Dataset`, or anything with `column_names` and `dataset[i] -> {column: value}`,
  read with sentence-transformers' column convention: the column named one of `LABEL_COLUMNS` holds the
  labels, a `dataset_name` column is ignored, and every other column is an input text, in column order.
"""

from __future__ import annotations

import logging
import math
import secrets
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

logger = logging.getLogger(__name__)

LABEL_COLUMNS = ("label", "labels", "score", "scores")
_IGNORED_COLUMNS = ("dataset_name",)
# Extra shuffled passes NoDuplicatesDataLoader may take to fill an epoch, as sentence-transformers.
_MAX_RESAMPLE_PASSES = 2


class InputExample:
    """One training example: its texts (one per input column), a label and an id (sentence-transformers').

    Args:
        guid: an id for the example.
        texts: the texts, e.g. [anchor, positive] or [sentence1, sentence2].
        label: the label (int or float, or an array for distillation targets); `None` means no label.
    """

    def __init__(self, guid: str = "", texts: list[str] | None = None, label: Any = 0) -> None:
        self.guid = guid
        self.texts = texts
        self.label = label

    def __str__(self) -> str:
        return f"<InputExample> label: {self.label}, texts: {'; '.join(self.texts)}"

    def __repr__(self) -> str:
        return f"InputExample(guid={self.guid!r}, texts={self.texts!r}, label={self.label!r})"


class SentencesDataset:
    """A list of `InputExample`s, as sentence-transformers' tutorials build it: `SentencesDataset(examples,
    model)`; `model` is not used (texts are tokenized per batch). A jaxst or torch DataLoader takes it."""

    def __init__(self, examples: Sequence[InputExample], model: Any) -> None:
        self.examples = examples

    def __getitem__(self, index: int) -> InputExample:
        return self.examples[index]

    def __len__(self) -> int:
        return len(self.examples)


class ExampleBatch(NamedTuple):
    """One batch of B examples with k texts each.

    Attributes:
        texts: k lists of B texts: texts[j][i] is text j of example i.
        labels: [B] or [B, ...] float32 (float labels) or int32 (int / bool labels); None when no example
            has a label.
    """

    texts: list[list[str]]
    labels: np.ndarray | None


def _check_examples(examples: Sequence[InputExample], indices: Sequence[int]) -> None:
    """Raises ValueError for examples without texts, ragged text counts, or labels given for only some."""
    num_texts = None
    labelled = None
    for example, index in zip(examples, indices, strict=True):
        texts = example.texts
        if isinstance(texts, str):
            raise ValueError(f"Example {index}: texts must be a list of texts, got one string {texts!r}.")
        if not texts:
            raise ValueError(f"Example {index} has no texts.")
        if num_texts is None:
            num_texts, first_index = len(texts), index
        elif len(texts) != num_texts:
            raise ValueError(
                f"Example {index} has {len(texts)} texts but example {first_index} has {num_texts}: "
                "every example of a dataset needs the same number of texts."
            )
        if labelled is None:
            labelled, first_labelled = example.label is not None, index
        elif (example.label is not None) != labelled:
            missing, present = (index, first_labelled) if labelled else (first_labelled, index)
            raise ValueError(f"Example {missing} has no label but example {present} has one.")


def _labels_array(labels: list[Any], indices: Sequence[int]) -> np.ndarray:
    try:
        array = np.asarray(labels)
    except ValueError as error:
        raise ValueError(f"Labels of examples {list(indices)} do not stack into one array: {error}") from None
    if array.dtype.kind in "biu":
        return array.astype(np.int32)
    if array.dtype.kind == "f":
        return array.astype(np.float32)
    raise ValueError(f"Labels must be numbers, got {array.dtype} labels for examples {list(indices)}.")


def collate(examples: Sequence[InputExample], indices: Sequence[int] | None = None) -> ExampleBatch:
    """Turns examples into a `ExampleBatch`; `indices` (their dataset positions) name examples in errors.

    Raises:
        ValueError: no examples, an example without texts, examples with different numbers of texts,
            labels on some examples only, or labels that are not numbers of one shape.
    """
    indices = range(len(examples)) if indices is None else indices
    if not examples:
        raise ValueError("Cannot collate an empty batch.")
    _check_examples(examples, indices)
    texts = [list(column) for column in zip(*(example.texts for example in examples), strict=True)]
    if examples[0].label is None:
        return ExampleBatch(texts, None)
    return ExampleBatch(texts, _labels_array([example.label for example in examples], indices))


class _ColumnRows:
    """Rows of a column dataset (Hugging Face `datasets.Dataset` or alike) as `InputExample`s."""

    def __init__(self, dataset: Any) -> None:
        names = dataset.column_names
        if isinstance(names, Mapping):
            raise TypeError(
                f"Got a dataset dict with splits {list(names)}: pass one split, e.g. dataset['train']."
            )
        label_columns = [name for name in names if name in LABEL_COLUMNS]
        if len(label_columns) > 1:
            raise ValueError(f"The dataset has several label columns {label_columns}: keep one.")
        self.label_column = label_columns[0] if label_columns else None
        self.text_columns = [name for name in names if name not in LABEL_COLUMNS + _IGNORED_COLUMNS]
        if not self.text_columns:
            raise ValueError(f"The dataset has no input columns, only {list(names)}.")
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> InputExample:
        row = self.dataset[int(index)]
        label = row[self.label_column] if self.label_column is not None else None
        return InputExample(texts=[row[name] for name in self.text_columns], label=label)

    def labels(self) -> Sequence[Any]:
        """Every row's label (None without a label column).

        Read as one column where the dataset allows it (`dataset["label"][:]`, Hugging Face's one
        read), else row by row.
        """
        if self.label_column is None:
            return [None] * len(self)
        try:
            return list(self.dataset[self.label_column][:])
        except (KeyError, TypeError, IndexError):
            return [self[index].label for index in range(len(self))]


def _example_source(dataset: Any) -> Any:
    """Indexable InputExamples of a dataset; sequences of examples are checked whole here."""
    if hasattr(dataset, "column_names"):
        return _ColumnRows(dataset)
    if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
        raise TypeError(f"A DataLoader needs a sequence of InputExample or a Dataset, got {type(dataset)}.")
    examples = [dataset[index] for index in range(len(dataset))]
    for index, example in enumerate(examples):
        if not hasattr(example, "texts"):
            raise TypeError(f"Example {index} is a {type(example).__name__}, not an InputExample.")
    _check_examples(examples, range(len(examples)))
    return examples


class DataLoader:
    """Batches of a dataset, in the same order for the same (seed, epoch), with no torch.

    Every `iter(loader)` starts the next epoch (the first is epoch 0), except the first after
    `load_state_dict`, which continues the saved epoch at the saved batch.

    Args:
        dataset: InputExamples (list or `SentencesDataset`) or a column dataset (see the module doc).
        batch_size: examples per batch.
        shuffle: a new order every epoch: `np.random.default_rng([seed, epoch]).permutation(n)`.
        drop_last: drop the last batch when it is smaller than `batch_size`.
        seed: the shuffling seed; None draws one (and `state_dict` records it).

    Raises:
        ValueError: an empty dataset, no batch at all (`drop_last` with fewer examples than
            `batch_size`), a bad batch size or seed, or bad examples (see `collate`).
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        if seed is not None and (not isinstance(seed, int) or seed < 0):
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}.")
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = secrets.randbits(63) if seed is None else seed
        self._examples = _example_source(dataset)
        if len(self._examples) == 0:
            raise ValueError("The DataLoader's dataset is empty: there is nothing to train on.")
        if len(self) == 0:
            raise ValueError(
                f"The DataLoader yields no batch: {len(self._examples)} examples, batch_size {batch_size}, "
                "drop_last=True."
            )
        self._epoch = 0
        self._batch_index = 0  # batches of the current epoch already yielded
        self._plan_length: int | None = None  # batches in the current epoch, once it started
        self._resume = False

    def __len__(self) -> int:
        if self.drop_last:
            return len(self._examples) // self.batch_size
        return math.ceil(len(self._examples) / self.batch_size)

    def example(self, index: int) -> InputExample:
        """Example `index` of the dataset, as an InputExample (also for a column dataset)."""
        return self._examples[index]

    def labels(self) -> Sequence[Any]:
        """The label of every example, in dataset order (None for an example without one)."""
        if isinstance(self._examples, _ColumnRows):
            return self._examples.labels()
        return [example.label for example in self._examples]

    def _permutation(self, *key: int) -> np.ndarray:
        return np.random.default_rng([self.seed, *key]).permutation(len(self._examples))

    def _epoch_plan(self, epoch: int) -> list[np.ndarray]:
        """The dataset indices of every batch of `epoch`."""
        order = self._permutation(epoch) if self.shuffle else np.arange(len(self._examples))
        batches = [order[start : start + self.batch_size] for start in range(0, len(order), self.batch_size)]
        return batches[: len(self)]

    def __iter__(self) -> Iterator[ExampleBatch]:
        if self._resume:
            self._resume = False
        else:
            if self._plan_length is not None:
                self._epoch += 1
            self._batch_index = 0
        plan = self._epoch_plan(self._epoch)
        if self._batch_index >= len(plan):
            raise ValueError(
                f"Cannot resume at batch {self._batch_index} of epoch {self._epoch}, "
                f"which has {len(plan)} batches."
            )
        self._plan_length = len(plan)
        return self._batches(plan, self._batch_index)

    def _batches(self, plan: list[np.ndarray], start: int) -> Iterator[ExampleBatch]:
        for position in range(start, len(plan)):
            indices = plan[position]
            batch = collate([self._examples[index] for index in indices], indices.tolist())
            self._batch_index = position + 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        """The position of the next batch: {"seed", "epoch", "batch_index", "num_examples", "batch_size"}."""
        epoch, batch_index = self._epoch, self._batch_index
        if self._plan_length is not None and batch_index >= self._plan_length:
            epoch, batch_index = epoch + 1, 0
        return {
            "seed": self.seed,
            "epoch": epoch,
            "batch_index": batch_index,
            "num_examples": len(self._examples),
            "batch_size": self.batch_size,
        }

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        """Continues from a `state_dict()`: the next `iter` yields its epoch from its batch on.

        Raises:
            ValueError: the state belongs to a dataset of another size or another batch size.
        """
        for key in ("num_examples", "batch_size"):
            current = self.state_dict()[key]
            if state[key] != current:
                raise ValueError(f"The saved loader state has {key}={state[key]}, this loader has {current}.")
        self.seed = int(state["seed"])
        self._epoch = int(state["epoch"])
        self._batch_index = int(state["batch_index"])
        self._plan_length = None
        self._resume = True


class NoDuplicatesDataLoader(DataLoader):
    """Shuffled batches in which no text occurs twice (for in-batch-negative losses such as MNRL).

    The batching of sentence-transformers' fit (its NoDuplicatesBatchSampler): each epoch shuffles the
    dataset, then fills each batch greedily in that order, deferring an example to a later batch when
    one of its texts (compared as `str`) is already in the batch. When a pass yields fewer batches than
    `len(loader)` (only with `drop_last`), up to two reshuffled passes add batches.

    Args:
        train_examples: as `DataLoader`'s dataset.
        batch_size: examples per batch.
        drop_last: drop batches that could not be filled; the default False keeps them (smaller).
        seed: the shuffling seed; None draws one.

    Raises:
        ValueError: as `DataLoader`, and when not one batch can be filled (too few distinct texts).
    """

    def __init__(
        self, train_examples: Any, batch_size: int, drop_last: bool = False, seed: int | None = None
    ) -> None:
        super().__init__(train_examples, batch_size=batch_size, shuffle=True, drop_last=drop_last, seed=seed)
        self._text_sets = [frozenset(map(str, self._examples[i].texts)) for i in range(len(self._examples))]

    def _one_pass(self, order: np.ndarray) -> list[np.ndarray]:
        batches = []
        remaining = order.tolist()
        while remaining:
            batch, batch_texts, deferred = [], set(), []
            for position, index in enumerate(remaining):
                if len(batch) == self.batch_size:
                    deferred += remaining[position:]
                    break
                if batch_texts.isdisjoint(self._text_sets[index]):
                    batch.append(index)
                    batch_texts |= self._text_sets[index]
                else:
                    deferred.append(index)
            remaining = deferred
            if len(batch) == self.batch_size or not self.drop_last:
                batches.append(np.asarray(batch))
        return batches

    def _epoch_plan(self, epoch: int) -> list[np.ndarray]:
        plan = self._one_pass(self._permutation(epoch))
        if not plan:
            raise ValueError(
                f"NoDuplicatesDataLoader cannot fill one batch of {self.batch_size} examples without a "
                "repeated text: the dataset has too few distinct texts for this batch size."
            )
        for extra_pass in range(1, _MAX_RESAMPLE_PASSES + 1):
            if len(plan) >= len(self):
                break
            plan += self._one_pass(self._permutation(epoch, extra_pass))[: len(self) - len(plan)]
        if len(plan) < len(self):
            logger.warning(
                "NoDuplicatesDataLoader filled only %d of %d batches in epoch %d: the dataset has too few "
                "distinct texts for batch size %d.",
                len(plan),
                len(self),
                epoch,
                self.batch_size,
            )
        return plan


def as_data_loader(loader: Any) -> DataLoader:
    """`loader` as a jaxst DataLoader: itself, or one made from a `torch.utils.data.DataLoader`.

    A torch loader carries over its dataset, batch_size, drop_last and shuffle (a RandomSampler without
    replacement over the whole dataset; a SequentialSampler is no shuffling). Its collate_fn must be
    torch's default: jaxst batches texts and labels itself, as sentence-transformers' fit replaces it.

    Raises:
        TypeError: for anything else, saying what fit takes.
        ValueError: for a torch loader whose batch sampler, sampler or collate_fn jaxst cannot honour
            (naming it), and as DataLoader for its dataset.
    """
    if isinstance(loader, DataLoader):
        return loader
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(loader, torch.utils.data.DataLoader):
        kind = f"{type(loader).__module__}.{type(loader).__qualname__}"
        raise TypeError(
            "fit takes a jaxst DataLoader (jaxst.DataLoader, jaxst.NoDuplicatesDataLoader) or a "
            f"torch.utils.data.DataLoader over InputExamples, got {kind}."
        )
    data = torch.utils.data
    accepted = "jaxst takes a torch DataLoader made with dataset, batch_size, shuffle and drop_last only"
    if loader.batch_size is None or type(loader.batch_sampler) is not data.BatchSampler:
        raise ValueError(f"The torch DataLoader has a custom batch_sampler; {accepted}.")
    sampler = loader.sampler
    shuffled = type(sampler) is data.RandomSampler
    if not shuffled and type(sampler) is not data.SequentialSampler:
        raise ValueError(
            f"The torch DataLoader's sampler {type(sampler).__name__} cannot be honoured; {accepted}."
        )
    if shuffled and (sampler.replacement or sampler._num_samples is not None):
        raise ValueError(f"The torch DataLoader samples with replacement or num_samples; {accepted}.")
    if loader.collate_fn is not data.default_collate:
        collate_name = getattr(loader.collate_fn, "__name__", loader.collate_fn)
        raise ValueError(
            f"The torch DataLoader's collate_fn {collate_name!r} cannot be honoured (jaxst batches "
            f"InputExamples itself); {accepted}."
        )
    return DataLoader(
        loader.dataset, batch_size=loader.batch_size, shuffle=shuffled, drop_last=loader.drop_last
    )
