"""InputExample, DataLoader and NoDuplicatesDataLoader against sentence-transformers' own classes."""

from __future__ import annotations

import math
from collections import Counter

import datasets
import numpy as np
import pytest
import torch
from sentence_transformers.base.data_collator import DEFAULT_LABEL_COLUMNS
from sentence_transformers.base.sampler import NoDuplicatesBatchSampler
from sentence_transformers.sentence_transformer.readers.input_example import InputExample as STInputExample

from jaxst.training.data import (
    LABEL_COLUMNS,
    DataLoader,
    ExampleBatch,
    InputExample,
    NoDuplicatesDataLoader,
    SentencesDataset,
    as_data_loader,
    collate,
)
from tests.shared_data import read_tsv, stsb


@pytest.fixture(scope="module")
def sts_examples() -> list[InputExample]:
    rows = stsb("dev")[:101]
    return [InputExample(texts=[r["sentence1"], r["sentence2"]], label=float(r["score"]) / 5) for r in rows]


@pytest.fixture(scope="module")
def triplets() -> list[dict[str, str]]:
    return read_tsv("pairs/snli_triplets.tsv.gz", "dev")[:60]


def all_batches(loader: DataLoader, epochs: int) -> list[ExampleBatch]:
    return [batch for _ in range(epochs) for batch in loader]


def assert_same_batches(a: list[ExampleBatch], b: list[ExampleBatch]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.texts == y.texts
        np.testing.assert_array_equal(x.labels, y.labels)


def test_input_example_matches_sentence_transformers():
    ours, theirs = InputExample(), STInputExample()
    assert (ours.guid, ours.texts, ours.label) == (theirs.guid, theirs.texts, theirs.label)
    ours = InputExample("id-1", ["a b", "c"], 0.5)
    theirs = STInputExample("id-1", ["a b", "c"], 0.5)
    assert (ours.guid, ours.texts, ours.label) == (theirs.guid, theirs.texts, theirs.label)
    assert str(ours) == str(theirs)


def test_readers_alias_and_sentences_dataset(triplets):
    from jaxst.readers import InputExample as ReadersInputExample

    assert ReadersInputExample is InputExample
    examples = [InputExample(texts=[r["anchor"], r["positive"], r["negative"]]) for r in triplets]
    dataset = SentencesDataset(examples, model=None)
    assert len(dataset) == len(examples) and dataset[3] is examples[3]
    batch = next(iter(DataLoader(dataset, shuffle=False, batch_size=16)))
    assert batch.texts == [[r[c] for r in triplets[:16]] for c in ("anchor", "positive", "negative")]
    np.testing.assert_array_equal(batch.labels, np.zeros(16, np.int32))


def test_one_epoch_yields_every_example_once(sts_examples):
    loader = DataLoader(sts_examples, shuffle=True, batch_size=16, seed=3)
    batches = list(loader)
    assert len(loader) == len(batches) == math.ceil(101 / 16)
    assert [len(b.texts[0]) for b in batches] == [16] * 6 + [5]
    seen = Counter((a, b) for batch in batches for a, b in zip(*batch.texts, strict=True))
    assert seen == Counter(tuple(e.texts) for e in sts_examples)
    label_of = {tuple(e.texts): e.label for e in sts_examples}
    for batch in batches:
        assert batch.labels.dtype == np.float32
        expected = [label_of[pair] for pair in zip(*batch.texts, strict=True)]
        np.testing.assert_array_equal(batch.labels, np.float32(expected))


def test_label_dtypes_follow_the_examples():
    ints = collate([InputExample(texts=["a", "b"], label=1), InputExample(texts=["c", "d"], label=0)])
    assert ints.labels.dtype == np.int32 and ints.labels.tolist() == [1, 0]
    floats = collate([InputExample(texts=["a"], label=1), InputExample(texts=["c"], label=0.25)])
    assert floats.labels.dtype == np.float32 and floats.labels.tolist() == [1.0, 0.25]
    vectors = collate(
        [InputExample(texts=["a"], label=np.ones(3)), InputExample(texts=["b"], label=np.zeros(3))]
    )
    assert vectors.labels.shape == (2, 3) and vectors.labels.dtype == np.float32
    assert collate([InputExample(texts=["a"], label=None)]).labels is None


def test_order_is_a_function_of_seed_and_epoch(sts_examples):
    first = all_batches(DataLoader(sts_examples, shuffle=True, batch_size=8, seed=11), 2)
    again = all_batches(DataLoader(sts_examples, shuffle=True, batch_size=8, seed=11), 2)
    assert_same_batches(first, again)
    epochs = len(first) // 2
    assert first[0].texts != first[epochs].texts  # a new order every epoch
    other_seed = all_batches(DataLoader(sts_examples, shuffle=True, batch_size=8, seed=12), 1)
    assert other_seed[0].texts != first[0].texts
    in_order = list(DataLoader(sts_examples, batch_size=8, drop_last=True))
    assert len(in_order) == 101 // 8
    assert in_order[1].texts[0] == [e.texts[0] for e in sts_examples[8:16]]


@pytest.mark.parametrize("seed", [5, None])
@pytest.mark.parametrize("stop_after", [0, 3, 12, 13, 20])
def test_resume_mid_epoch_gives_the_same_batches(sts_examples, seed, stop_after):
    epochs = 3
    reference = DataLoader(sts_examples, shuffle=True, batch_size=8, seed=seed)  # 13 batches an epoch
    expected = all_batches(reference, epochs)

    interrupted = DataLoader(sts_examples, shuffle=True, batch_size=8, seed=reference.seed)
    consumed, iterator = [], iter(interrupted)
    while len(consumed) < stop_after:
        try:
            consumed.append(next(iterator))
        except StopIteration:
            iterator = iter(interrupted)
    state = interrupted.state_dict()
    assert (state["epoch"], state["batch_index"]) == divmod(stop_after, 13)

    resumed = DataLoader(sts_examples, shuffle=True, batch_size=8)
    resumed.load_state_dict(state)
    rest = [batch for _ in range(epochs - state["epoch"]) for batch in resumed]
    assert_same_batches(consumed + rest, expected)


def test_load_state_dict_refuses_another_dataset(sts_examples):
    state = DataLoader(sts_examples, batch_size=8).state_dict()
    with pytest.raises(ValueError, match="num_examples=101"):
        DataLoader(sts_examples[:50], batch_size=8).load_state_dict(state)
    with pytest.raises(ValueError, match="batch_size=8"):
        DataLoader(sts_examples, batch_size=4).load_state_dict(state)
    past_the_end = DataLoader(sts_examples, batch_size=8)
    past_the_end.load_state_dict({**state, "epoch": 1, "batch_index": 13})
    with pytest.raises(ValueError, match="Cannot resume at batch 13 of epoch 1, which has 13 batches"):
        iter(past_the_end)


@pytest.mark.parametrize(
    ("examples", "message"),
    [
        (
            [InputExample(texts=["a", "b"]), InputExample(texts=["c", "d", "e"])],
            "Example 1 has 3 texts but example 0 has 2",
        ),
        (
            [InputExample(texts=["a"], label=1), InputExample(texts=["b"], label=None)],
            "Example 1 has no label but example 0",
        ),
        (
            [InputExample(texts=["a"], label=None), InputExample(texts=["b"], label=2)],
            "Example 0 has no label but example 1",
        ),
        ([InputExample(texts="just one string")], "texts must be a list"),
        ([InputExample(texts=["a"]), InputExample()], "Example 1 has no texts"),
        ([InputExample(texts=["a"], label="yes")], "Labels must be numbers"),
        ([InputExample(texts=["a"], label=[1, 2]), InputExample(texts=["b"], label=[1])], "do not stack"),
    ],
)
def test_bad_examples_raise_clear_errors(examples, message):
    with pytest.raises(ValueError, match=message):
        collate(examples)


def test_bad_datasets_are_refused_when_the_loader_is_built():
    ragged = [InputExample(texts=["a", "b"])] * 5 + [InputExample(texts=["c"])]
    with pytest.raises(ValueError, match="Example 5 has 1 texts but example 0 has 2"):
        DataLoader(ragged, batch_size=2)  # refused before any batch, not at batch 3
    with pytest.raises(ValueError, match="empty"):
        DataLoader([], batch_size=4)
    with pytest.raises(ValueError, match="yields no batch"):
        DataLoader([InputExample(texts=["a"])] * 3, batch_size=4, drop_last=True)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        DataLoader([InputExample(texts=["a"])], batch_size=0)
    with pytest.raises(TypeError, match="Example 0 is a str, not an InputExample"):
        DataLoader(["a sentence"], batch_size=1)


def test_hugging_face_dataset_columns_follow_sentence_transformers():
    assert tuple(DEFAULT_LABEL_COLUMNS) == LABEL_COLUMNS
    rows = stsb("dev")[:10]
    dataset = datasets.Dataset.from_dict(
        {
            "sentence2": [r["sentence2"] for r in rows],
            "score": [float(r["score"]) / 5 for r in rows],
            "sentence1": [r["sentence1"] for r in rows],
            "dataset_name": ["sts"] * 10,
        }
    )
    batch = next(iter(DataLoader(dataset, batch_size=4)))
    assert batch.texts == [[r["sentence2"] for r in rows[:4]], [r["sentence1"] for r in rows[:4]]]
    np.testing.assert_array_equal(batch.labels, np.float32([float(r["score"]) / 5 for r in rows[:4]]))

    unlabelled = datasets.Dataset.from_dict({"anchor": ["a", "b"], "positive": ["c", "d"]})
    assert next(iter(DataLoader(unlabelled, batch_size=2))) == ExampleBatch([["a", "b"], ["c", "d"]], None)
    with pytest.raises(ValueError, match=r"several label columns \['label', 'score'\]"):
        DataLoader(datasets.Dataset.from_dict({"text": ["a"], "label": [1], "score": [0.5]}))
    with pytest.raises(TypeError, match="pass one split"):
        DataLoader(datasets.DatasetDict({"train": unlabelled}))
    with pytest.raises(ValueError, match="Example 1 has no label but example 0 has one"):
        list(DataLoader(datasets.Dataset.from_dict({"text": ["a", "b"], "label": [1.0, None]}), batch_size=2))


class ColumnTable:
    """A minimal column dataset: column_names and row access, as the loader's duck typing needs."""

    def __init__(self, columns: dict[str, list]):
        self.columns = columns
        self.column_names = list(columns)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    def __getitem__(self, index: int) -> dict:
        return {name: values[index] for name, values in self.columns.items()}


def test_column_datasets_are_duck_typed():
    table = ColumnTable({"label": [1, 0, 1], "query": ["q1", "q2", "q3"], "doc": ["d1", "d2", "d3"]})
    batches = list(DataLoader(table, batch_size=2))
    assert batches[0].texts == [["q1", "q2"], ["d1", "d2"]] and batches[0].labels.tolist() == [1, 0]
    assert batches[1].texts == [["q3"], ["d3"]] and batches[1].labels.dtype == np.int32


def test_labels_and_examples_of_every_kind_of_dataset():
    """What fit checks before training: each example's label in dataset order, and its first example."""
    columns = {"label": [2, 0, 1], "query": ["q1", "q2", "q3"]}
    for dataset in (datasets.Dataset.from_dict(columns), ColumnTable(columns)):
        loader = DataLoader(dataset, batch_size=2, shuffle=True)
        assert list(loader.labels()) == [2, 0, 1]
        assert (loader.example(1).texts, loader.example(1).label) == (["q2"], 0)
    unlabelled = DataLoader(datasets.Dataset.from_dict({"query": ["q1", "q2"]}), batch_size=1)
    assert list(unlabelled.labels()) == [None, None]
    examples = DataLoader([InputExample(texts=["a"], label=0.5), InputExample(texts=["b"], label=1)])
    assert list(examples.labels()) == [0.5, 1] and examples.example(1).texts == ["b"]


def repeated_anchor_dataset(triplets: list[dict[str, str]], num_anchors: int) -> datasets.Dataset:
    """60 real SNLI pairs that share `num_anchors` anchors, so that batches must defer duplicates."""
    anchors = [r["anchor"] for r in triplets[:num_anchors]]
    positives = [r["positive"] for r in triplets]
    pairs = [(anchors[i % num_anchors], positives[i]) for i in range(60)]
    return datasets.Dataset.from_dict({"anchor": [a for a, _ in pairs], "positive": [p for _, p in pairs]})


def sentence_transformers_plan(dataset, loader: NoDuplicatesDataLoader, epoch: int, monkeypatch) -> list:
    """sentence-transformers' NoDuplicatesBatchSampler batches, fed the loader's permutations."""
    orders = [loader._permutation(epoch)] + [loader._permutation(epoch, p) for p in (1, 2)]
    feed = iter(orders)
    monkeypatch.setattr(torch, "randperm", lambda n, **kwargs: torch.from_numpy(next(feed).astype(np.int32)))
    sampler = NoDuplicatesBatchSampler(dataset, batch_size=loader.batch_size, drop_last=loader.drop_last)
    return list(sampler)


# (10, 8, False): one pass gives 12 batches, the last ones small; (10, 8, True): one pass fills 6 of 7
# batches, a reshuffled pass adds the 7th.
@pytest.mark.parametrize(
    ("num_anchors", "batch_size", "drop_last"), [(10, 8, False), (10, 8, True), (20, 16, True)]
)
def test_no_duplicates_batches_equal_sentence_transformers(
    triplets, monkeypatch, num_anchors, batch_size, drop_last
):
    dataset = repeated_anchor_dataset(triplets, num_anchors)
    loader = NoDuplicatesDataLoader(dataset, batch_size=batch_size, drop_last=drop_last, seed=7)
    for epoch in range(2):
        plan = [batch.tolist() for batch in loader._epoch_plan(epoch)]
        assert plan == sentence_transformers_plan(dataset, loader, epoch, monkeypatch)
        assert len(plan) >= len(loader)
    batches = list(loader)
    for batch in batches:
        texts = [text for column in batch.texts for text in column]
        assert len(texts) == len(set(texts))
    if not drop_last:  # every example exactly once
        seen = Counter(pair for batch in batches for pair in zip(*batch.texts, strict=True))
        assert seen == Counter(zip(dataset["anchor"], dataset["positive"], strict=True))


def test_no_duplicates_resumes_and_refuses_unfillable_batches(triplets):
    examples = [InputExample(texts=[r["anchor"], r["positive"]]) for r in triplets]
    expected = all_batches(NoDuplicatesDataLoader(examples, batch_size=16, seed=2), 2)
    loader = NoDuplicatesDataLoader(examples, batch_size=16, seed=2)
    iterator = iter(loader)
    consumed = [next(iterator), next(iterator)]
    resumed = NoDuplicatesDataLoader(examples, batch_size=16)
    resumed.load_state_dict(loader.state_dict())
    assert_same_batches(consumed + all_batches(resumed, 2), expected)

    same_text = [InputExample(texts=["the same", f"other {i}"]) for i in range(4)]
    with pytest.raises(ValueError, match="cannot fill one batch of 2"):
        list(NoDuplicatesDataLoader(same_text, batch_size=2, drop_last=True, seed=0))


@pytest.mark.parametrize(("shuffle", "drop_last"), [(False, False), (True, True)])
def test_a_torch_data_loader_carries_its_settings_over(sts_examples, shuffle, drop_last):
    dataset = SentencesDataset(sts_examples, model=None)
    torch_loader = torch.utils.data.DataLoader(dataset, batch_size=16, shuffle=shuffle, drop_last=drop_last)
    loader = as_data_loader(torch_loader)
    assert (loader.dataset, loader.batch_size, loader.shuffle, loader.drop_last) == (
        dataset,
        16,
        shuffle,
        drop_last,
    )
    assert len(loader) == len(torch_loader)
    jaxst_loader = DataLoader(sts_examples, batch_size=16)
    assert as_data_loader(jaxst_loader) is jaxst_loader


@pytest.mark.parametrize(
    ("make_loader", "message"),
    [
        (lambda d: torch.utils.data.DataLoader(d, batch_size=4, collate_fn=list), "collate_fn 'list'"),
        (
            lambda d: torch.utils.data.DataLoader(
                d, batch_size=4, sampler=torch.utils.data.SubsetRandomSampler([0])
            ),
            "sampler SubsetRandomSampler cannot be honoured",
        ),
        (
            lambda d: torch.utils.data.DataLoader(
                d, batch_sampler=torch.utils.data.BatchSampler(range(len(d)), 4, drop_last=False)
            ),
            "custom batch_sampler",
        ),
        (
            lambda d: torch.utils.data.DataLoader(
                d, batch_size=4, sampler=torch.utils.data.RandomSampler(d, replacement=True)
            ),
            "with replacement",
        ),
    ],
)
def test_a_torch_data_loader_jaxst_cannot_honour_says_what_it_takes(sts_examples, make_loader, message):
    with pytest.raises(ValueError, match=message) as error:
        as_data_loader(make_loader(sts_examples))
    assert "jaxst takes a torch DataLoader made with dataset, batch_size, shuffle and drop_last only" in str(
        error.value
    )


def test_anything_else_is_refused_naming_what_fit_takes(sts_examples):
    with pytest.raises(
        TypeError, match="or a torch.utils.data.DataLoader over InputExamples, got builtins.list"
    ):
        as_data_loader(sts_examples)
