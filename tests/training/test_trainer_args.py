"""SentenceTransformerTrainingArguments against sentence-transformers' own; the arguments jaxst refuses."""

import numpy as np
import pytest
from sentence_transformers.sentence_transformer import training_args as st_training_args

from jaxst import SentenceTransformerTrainingArguments
from jaxst.training.training_args import NO_EFFECT_DEFAULTS, _Arguments


def implemented_names():
    return [name for name in _Arguments.__dataclass_fields__ if name != "extra"]


def test_defaults_equal_sentence_transformers():
    reference = st_training_args.SentenceTransformerTrainingArguments(output_dir="unused")
    ours = SentenceTransformerTrainingArguments(output_dir="unused")
    for name in implemented_names():
        expected = getattr(reference, name)
        assert getattr(ours, name) == getattr(expected, "value", expected), name


def test_arguments_without_effect_are_accepted_at_the_defaults_sentence_transformers_has():
    reference = st_training_args.SentenceTransformerTrainingArguments(output_dir="unused")
    defaults = {name: getattr(reference, name) for name in NO_EFFECT_DEFAULTS if name != "accelerator_config"}
    args = SentenceTransformerTrainingArguments(output_dir="unused", **defaults)
    assert args.to_dict()["push_to_hub"] is False


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"push_to_hub": True}, ValueError, r"\['push_to_hub'\] have no effect in jaxst.*push_to_hub=False"),
        ({"deepspeed": "ds.json", "fsdp": "full_shard"}, ValueError, r"\['deepspeed', 'fsdp'\]"),
        ({"learning_rate_mapping": {"Dense.*": 1e-3}}, ValueError, "learning_rate_mapping"),
        ({"gradient_accumulation_steps": 0}, ValueError, "gradient_accumulation_steps must be a positive"),
        ({"gradient_checkpointing": "everything"}, ValueError, "gradient_checkpointing must be True, False"),
        ({"no_such_argument": 1}, TypeError, r"unknown arguments \['no_such_argument'\]"),
        ({"eval_strategy": "sometimes"}, ValueError, "eval_strategy='sometimes' is not supported; .*steps"),
        ({"batch_sampler": "bucket"}, ValueError, "batch_sampler='bucket'.*no_duplicates"),
        ({"lr_scheduler_type": "polynomial"}, ValueError, "lr_scheduler_type='polynomial'"),
        ({"report_to": ["wandb"]}, ValueError, "report_to='wandb'"),
        ({"optim": "sgd"}, ValueError, "optim='sgd'"),
        ({"warmup_steps": 10, "warmup_ratio": 0.1}, ValueError, "warmup_steps or warmup_ratio"),
        ({"eval_steps": 2.5, "eval_strategy": "steps"}, ValueError, "eval_steps=2.5"),
        ({"load_best_model_at_end": True}, ValueError, "load_best_model_at_end needs an eval_strategy"),
        ({"save_total_limit": 0}, ValueError, "save_total_limit"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, message):
    with pytest.raises(error, match=message):
        SentenceTransformerTrainingArguments(output_dir="unused", **kwargs)


def test_strings_and_enums_normalise_as_sentence_transformers():
    from sentence_transformers.base.sampler import BatchSamplers, MultiDatasetBatchSamplers

    args = SentenceTransformerTrainingArguments(
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        multi_dataset_batch_sampler=MultiDatasetBatchSamplers.ROUND_ROBIN,
        prompts='{"anchor": "query: "}',
        warmup_ratio=0.1,
        eval_strategy="steps",
        logging_steps=20,
        report_to="none",
    )
    assert (args.batch_sampler, args.multi_dataset_batch_sampler) == ("no_duplicates", "round_robin")
    assert args.prompts == {"anchor": "query: "}
    assert (args.warmup_steps, args.warmup_ratio, args.eval_steps, args.report_to) == (0.1, None, 20, [])
    assert args.output_dir == "trainer_output" and args.scheduler == "warmuplinear"
    assert SentenceTransformerTrainingArguments(metric_for_best_model="eval_loss").greater_is_better is False
    best = SentenceTransformerTrainingArguments(load_best_model_at_end=True, eval_strategy="epoch")
    assert (best.metric_for_best_model, best.greater_is_better) == ("loss", False)


@pytest.mark.parametrize(
    ("group_sizes", "batch_size", "drop_last"),
    [((5, 5, 5), 4, False), ((9, 2, 4, 7), 6, False), ((9, 2, 4, 7), 6, True), ((30, 3), 4, False)],
)
def test_group_by_label_batches_as_sentence_transformers(group_sizes, batch_size, drop_last):
    """The batch count of sentence-transformers' GroupByLabelBatchSampler; every batch mixes labels, each
    present at least twice; each example at most once per epoch."""
    import datasets
    from sentence_transformers.base.sampler import GroupByLabelBatchSampler

    from jaxst.training.group_by_label import GroupByLabelDataLoader

    labels = [label for label, size in enumerate(group_sizes) for _ in range(size)]
    dataset = datasets.Dataset.from_dict({"text": [f"t{i}" for i in range(len(labels))], "label": labels})
    reference = GroupByLabelBatchSampler(dataset, batch_size, drop_last, valid_label_columns=["label"])
    loader = GroupByLabelDataLoader(dataset, batch_size=batch_size, drop_last=drop_last, seed=1)
    assert len(loader) == len(reference) == len(list(reference))
    seen = []
    for batch in loader:
        counts = np.unique(batch.labels, return_counts=True)[1]
        assert len(counts) >= 2 and counts.min() >= 2
        seen += [int(text[1:]) for text in batch.texts[0]]
    assert len(seen) == len(set(seen))


def test_group_by_label_needs_two_labels_of_two():
    import datasets

    from jaxst.training.group_by_label import GroupByLabelDataLoader

    dataset = datasets.Dataset.from_dict({"text": ["a", "b", "c"], "label": [0, 0, 1]})
    with pytest.raises(ValueError, match="at least 2 labels with 2 or more examples each; 1 label"):
        GroupByLabelDataLoader(dataset, batch_size=4)
    with pytest.raises(ValueError, match="even batch_size >= 4, got 5"):
        GroupByLabelDataLoader(dataset, batch_size=5)
