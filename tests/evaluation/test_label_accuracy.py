"""LabelAccuracyEvaluator against sentence-transformers' on the tiny model with equal classifier weights."""

import jax
import numpy as np
import pytest
import sentence_transformers
import torch
from sentence_transformers.sentence_transformer import losses as st_losses
from sentence_transformers.sentence_transformer.evaluation import LabelAccuracyEvaluator as STEvaluator

import jaxst
from jaxst.evaluation import LabelAccuracyEvaluator
from jaxst.losses import SoftmaxLoss
from jaxst.losses.classification import init_softmax_classifier, softmax_logits
from jaxst.training.data import DataLoader, InputExample
from tests.evaluation.compare import assert_same_csv_files, assert_same_metrics
from tests.shared_data import read_tsv

DIM, NUM_LABELS = 32, 3
BATCH_SIZE = 16  # one batch size throughout, so that jaxst compiles each bucket length once
CLASSES = {"entailment": 0, "neutral": 1, "contradiction": 2}


@pytest.fixture(scope="module")
def models(tiny_folder):
    folder = str(tiny_folder)
    return jaxst.SentenceTransformer(folder), sentence_transformers.SentenceTransformer(folder, device="cpu")


@pytest.fixture(scope="module")
def examples():
    rows = read_tsv("pairs/snli_dev_test.tsv.gz", "dev")[:40]
    return [InputExample(texts=[r["premise"], r["hypothesis"]], label=CLASSES[r["label"]]) for r in rows]


def softmax_losses(models, concatenation: dict, seed: int):
    """jaxst's and sentence-transformers' SoftmaxLoss with the same classifier (torch's weight is the
    transposed kernel), scaled up so that the tiny model's embeddings give distinct class scores."""
    our_model, their_model = models
    classifier = init_softmax_classifier(jax.random.key(seed), DIM, NUM_LABELS, **concatenation)
    classifier = jax.tree.map(lambda w: 50 * w, classifier)
    ours = SoftmaxLoss(our_model, embedding_dimension=DIM, num_labels=NUM_LABELS, **concatenation)
    ours.params = classifier
    theirs = st_losses.SoftmaxLoss(
        their_model, embedding_dimension=DIM, num_labels=NUM_LABELS, **concatenation
    )
    with torch.no_grad():
        theirs.classifier.weight.copy_(torch.tensor(np.asarray(classifier["kernel"]).T))
        theirs.classifier.bias.copy_(torch.tensor(np.asarray(classifier["bias"])))
    return ours, theirs


def assert_no_close_logits(model, examples, loss) -> None:
    """The two largest logits of every pair differ by more than the frameworks' rounding could move them,
    so that both pick the same class on any CPU."""
    embeddings = [model.encode([e.texts[i] for e in examples], batch_size=BATCH_SIZE) for i in (0, 1)]
    logits = np.sort(np.asarray(softmax_logits(loss.params, *embeddings, **loss.concatenation)), axis=1)
    assert np.min(logits[:, -1] - logits[:, -2]) > 1e-3


@pytest.mark.parametrize(
    ("concatenation", "name", "seed"),
    [
        ({}, "", 0),
        ({"concatenation_sent_rep": False, "concatenation_sent_multiplication": True}, "snli-dev", 1),
    ],
)
def test_same_accuracy_and_csv_as_sentence_transformers(
    models, examples, tmp_path, concatenation, name, seed
):
    ours, theirs = softmax_losses(models, concatenation, seed)
    assert_no_close_logits(models[0], examples, ours)
    our_evaluator = LabelAccuracyEvaluator(DataLoader(examples, batch_size=BATCH_SIZE), name, ours)
    their_evaluator = STEvaluator(torch.utils.data.DataLoader(examples, batch_size=BATCH_SIZE), name, theirs)
    for epoch, steps in [(0, 10), (1, -1)]:
        our_metrics = our_evaluator(models[0], output_path=str(tmp_path / "ours"), epoch=epoch, steps=steps)
        their_metrics = their_evaluator(
            models[1], output_path=str(tmp_path / "theirs"), epoch=epoch, steps=steps
        )
        assert_same_metrics(our_metrics, their_metrics)
        assert our_evaluator.primary_metric == their_evaluator.primary_metric
    assert_same_csv_files(str(tmp_path / "ours"), str(tmp_path / "theirs"))
    assert 0.0 < our_metrics[our_evaluator.primary_metric] < 1.0
    # A torch DataLoader over the same examples gives the same accuracy.
    torch_loader = torch.utils.data.DataLoader(examples, batch_size=BATCH_SIZE, shuffle=True)
    assert LabelAccuracyEvaluator(torch_loader, name, ours)(models[0]) == our_metrics


def test_bad_arguments_are_errors(models, examples):
    ours, _ = softmax_losses(models, {}, 0)
    loader = DataLoader(examples, batch_size=BATCH_SIZE)
    with pytest.raises(ValueError, match="softmax_model must be a jaxst SoftmaxLoss.*got NoneType"):
        LabelAccuracyEvaluator(loader)
    with pytest.raises(ValueError, match="dataloader must be a DataLoader.*got list"):
        LabelAccuracyEvaluator(examples, softmax_model=ours)
    untrained = SoftmaxLoss(models[0], embedding_dimension=DIM, num_labels=NUM_LABELS)
    with pytest.raises(ValueError, match="softmax_model has no classifier"):
        LabelAccuracyEvaluator(loader, softmax_model=untrained)(models[0])
    triplets = DataLoader([InputExample(texts=["a", "b", "c"], label=0)])
    with pytest.raises(ValueError, match="two texts and one class label each, got 3 texts"):
        LabelAccuracyEvaluator(triplets, softmax_model=ours)(models[0])


def test_fit_hands_the_trained_classifier_to_the_evaluator(examples, tiny_folder):
    """fit puts the classifier it trains on the SoftmaxLoss (`params`), where the evaluator reads it: the
    evaluation at the epoch's end scores the final model and classifier, as one run after fit does."""
    model = jaxst.SentenceTransformer(str(tiny_folder))
    loss = SoftmaxLoss(model, embedding_dimension=DIM, num_labels=NUM_LABELS)
    loader = DataLoader(examples, batch_size=BATCH_SIZE)
    evaluator = LabelAccuracyEvaluator(DataLoader(examples, batch_size=BATCH_SIZE), softmax_model=loss)
    result = model.fit(
        [(loader, loss)], evaluator=evaluator, epochs=1, warmup_steps=0, show_progress_bar=False
    )
    assert loss.params is not None
    assert result["best_score"] == evaluator(model)[evaluator.primary_metric]
