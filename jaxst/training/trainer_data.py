"""The Trainer's datasets as fit's data loaders: prompts, batch samplers, one loader per dataset."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jaxst.training.data import LABEL_COLUMNS, DataLoader, NoDuplicatesDataLoader
from jaxst.training.group_by_label import GroupByLabelDataLoader

LOADERS = {
    "batch_sampler": DataLoader,
    "no_duplicates": NoDuplicatesDataLoader,
    "no_duplicates_hashed": NoDuplicatesDataLoader,
    "group_by_label": GroupByLabelDataLoader,
}


def named_datasets(datasets: Any, argument: str) -> dict[str | None, Any]:
    """{name: dataset}: a `DatasetDict` or dict as it is, one dataset as {None: dataset}.

    Raises:
        TypeError: naming `argument`, for something that is neither a column dataset nor a dict of them.
    """
    if isinstance(datasets, Mapping):
        if not datasets:
            raise ValueError(f"{argument} is an empty dict of datasets.")
        for name, dataset in datasets.items():
            if not hasattr(dataset, "column_names"):
                raise TypeError(
                    f"{argument}[{name!r}] is a {type(dataset).__name__}, not a datasets.Dataset."
                )
        return dict(datasets)
    if not hasattr(datasets, "column_names"):
        raise TypeError(
            f"{argument} must be a datasets.Dataset, a DatasetDict or a dict of datasets, "
            f"got {type(datasets).__name__}."
        )
    return {None: datasets}


class PromptedColumns:
    """A column dataset whose text columns `prompts` names read with the prompt prepended.

    Args:
        dataset: a `datasets.Dataset` (or alike: `column_names`, `len`, `dataset[i]`, `dataset[column]`).
        prompts: {column: prompt}.
    """

    def __init__(self, dataset: Any, prompts: Mapping[str, str]) -> None:
        self.dataset, self.prompts = dataset, dict(prompts)
        self.column_names = dataset.column_names

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):  # a whole column (the label column, read at once)
            column = self.dataset[key]
            prompt = self.prompts.get(key)
            return column if prompt is None else [prompt + text for text in column]
        row = dict(self.dataset[key])
        for column, prompt in self.prompts.items():
            row[column] = prompt + row[column]
        return row


def dataset_prompts(
    prompts: Any, name: str | None, names: list[str | None], columns: list[str]
) -> dict[str, str]:
    """{column: prompt} for the dataset `name` (None: the only one) with text `columns`.

    `prompts` is sentence-transformers' argument: one prompt for every column, {column: prompt},
    {dataset name: prompt} or {dataset name: {column: prompt}} (the keys are dataset names when every
    key is one).

    Raises:
        ValueError: a {column: prompt} naming a column no dataset has.
    """
    if not prompts:
        return {}
    if isinstance(prompts, str):
        return dict.fromkeys(columns, prompts)
    if not isinstance(prompts, Mapping):
        raise TypeError(f"prompts must be a str or a dict, got {type(prompts).__name__}.")
    if None not in names and set(prompts) <= set(names):
        return dataset_prompts(prompts.get(name), name, [None], columns)
    missing = sorted(set(prompts) - set(columns))
    if missing and names == [None]:
        raise ValueError(
            f"prompts name columns {missing} that the dataset does not have; its columns: {columns}."
        )
    return {column: prompt for column, prompt in prompts.items() if column in columns}


def make_loader(
    dataset: Any,
    *,
    batch_sampler: str,
    batch_size: int,
    drop_last: bool,
    seed: int,
    prompts: Mapping[str, str],
) -> DataLoader:
    """The fit DataLoader of one training dataset: `batch_sampler`'s loader over the prompted texts."""
    dataset = with_prompts(dataset, prompts)
    if batch_sampler == "batch_sampler":
        return DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=drop_last, seed=seed)
    return LOADERS[batch_sampler](dataset, batch_size=batch_size, drop_last=drop_last, seed=seed)


def with_prompts(dataset: Any, prompts: Mapping[str, str]) -> Any:
    """The dataset, its columns read with their prompts prepended (as it is without prompts)."""
    return PromptedColumns(dataset, prompts) if prompts else dataset


def text_columns(dataset: Any) -> list[str]:
    """The input columns of a column dataset: all but the label column and "dataset_name"."""
    return [name for name in dataset.column_names if name not in (*LABEL_COLUMNS, "dataset_name")]
