"""The shared part of a call (log line, CSV file and header, name prefix, primary metric) against
sentence-transformers' evaluators, and an evaluator built on EmbeddingEvaluator alone."""

import csv
import logging

import numpy as np
import pytest
from sentence_transformers.sentence_transformer import evaluation as st_evaluation

from jaxst import evaluation
from jaxst.evaluation.base import EmbeddingEvaluator
from tests.evaluation.fixed_model import FixedEmbeddingModel
from tests.shared_data import stsb_sentences


@pytest.fixture(scope="module")
def sentences():
    return stsb_sentences("dev", 60)


def evaluator_arguments(kind: str, sentences: list[str]) -> tuple[tuple, dict]:
    """Positional and keyword arguments of evaluator `kind`, the same for both libraries."""
    if kind == "BinaryClassificationEvaluator":
        return (sentences[:30], sentences[30:], [i % 2 for i in range(30)]), {}
    if kind == "EmbeddingSimilarityEvaluator":
        return (sentences[:30], sentences[30:], [float(i % 5) for i in range(30)]), {"precision": "int8"}
    if kind == "TripletEvaluator":
        return (sentences[:20], sentences[20:40], sentences[40:]), {}
    if kind == "MSEEvaluator":
        return (sentences, sentences), {"teacher_model": FixedEmbeddingModel(dim=16)}
    if kind == "TranslationEvaluator":
        return (sentences[:30], sentences[30:]), {}
    if kind == "ParaphraseMiningEvaluator":
        return ({f"s{i}": sentence for i, sentence in enumerate(sentences)}, [("s0", "s1"), ("s2", "s9")]), {}
    if kind == "RerankingEvaluator":
        samples = [
            {"query": sentences[i], "positive": sentences[i + 1], "negative": sentences[i + 2 : i + 5]}
            for i in range(0, 50, 5)
        ]
        return (samples,), {}
    queries = {f"q{i}": sentences[i] for i in range(20)}
    corpus = {f"d{i}": sentences[20 + i] for i in range(40)}
    return (queries, corpus, {f"q{i}": {f"d{i}", f"d{2 * i}"} for i in range(20)}), {}


KINDS = [
    "BinaryClassificationEvaluator",
    "EmbeddingSimilarityEvaluator",
    "TripletEvaluator",
    "MSEEvaluator",
    "InformationRetrievalEvaluator",
    "TranslationEvaluator",
    "ParaphraseMiningEvaluator",
    "RerankingEvaluator",
]


def first_info_message(records: list[logging.LogRecord], library: str) -> str:
    return next(r.getMessage() for r in records if r.name.startswith(library) and r.levelno == logging.INFO)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("options", [{}, {"name": "dev", "truncate_dim": 8}])
def test_log_line_csv_file_and_header_equal_sentence_transformers(kind, options, sentences, tmp_path, caplog):
    args, kwargs = evaluator_arguments(kind, sentences)
    ours = getattr(evaluation, kind)(*args, **kwargs, **options)
    theirs = getattr(st_evaluation, kind)(*args, **kwargs, **options)
    model = FixedEmbeddingModel(dim=16)
    for epoch, steps in [(-1, -1), (2, -1), (2, 30)]:
        caplog.clear()
        with caplog.at_level(logging.INFO):
            ours(model, output_path=str(tmp_path / "ours"), epoch=epoch, steps=steps)
            theirs(model, output_path=str(tmp_path / "theirs"), epoch=epoch, steps=steps)
        assert first_info_message(caplog.records, "jaxst.") == first_info_message(
            caplog.records, "sentence_transformers."
        )
    assert ours.csv_file == theirs.csv_file
    assert ours.csv_headers == theirs.csv_headers
    assert ours.primary_metric == theirs.primary_metric


class MeanNormEvaluator(EmbeddingEvaluator):
    """The mean embedding norm of some texts: a whole evaluator is its scores and its CSV columns."""

    log_title = "Mean norm of the model"
    csv_kind = "mean_norm"

    def __init__(self, texts: list[str], name: str = "") -> None:
        super().__init__(name, 32, False, True, None)
        self.texts = texts
        self.primary_metric = "mean_norm"

    def csv_columns(self) -> list[str]:
        return ["mean_norm", "max_norm"]

    def compute(self, model, output_path):
        norms = np.linalg.norm(self.embed_inputs(model, self.texts), axis=1)
        return {"mean_norm": norms.mean(), "max_norm": norms.max()}, [norms.mean(), norms.max()]


def test_an_evaluator_gets_the_log_line_csv_file_name_prefix_and_primary_metric(sentences, tmp_path, caplog):
    norms = np.linalg.norm(FixedEmbeddingModel(dim=16).encode(sentences), axis=1)
    evaluator = MeanNormEvaluator(sentences, name="dev")
    for steps in (10, 20):
        with caplog.at_level(logging.INFO, logger=__name__):
            metrics = evaluator(FixedEmbeddingModel(dim=16), output_path=str(tmp_path), epoch=1, steps=steps)
        assert metrics == {"dev_mean_norm": float(norms.mean()), "dev_max_norm": float(norms.max())}
        assert all(type(value) is float for value in metrics.values())
        assert evaluator.primary_metric == "dev_mean_norm"
    assert "Mean norm of the model on the dev dataset in epoch 1 after 20 steps:" in caplog.messages
    with open(tmp_path / "mean_norm_dev_results.csv", newline="") as f:
        text = f.read()
    assert text.count("\r\n") == 3
    rows = list(csv.reader(text.splitlines()))
    assert rows[0] == ["epoch", "steps", "mean_norm", "max_norm"]
    assert [row[:2] for row in rows[1:]] == [["1", "10"], ["1", "20"]]
    np.testing.assert_allclose(np.array(rows[1:], dtype=float)[:, 2:], [[norms.mean(), norms.max()]] * 2)


def test_an_evaluator_without_its_scores_is_refused_at_construction():
    class NoScores(EmbeddingEvaluator):
        log_title = "Nothing"
        csv_kind = "nothing"

        def csv_columns(self) -> list[str]:
            return []

    with pytest.raises(TypeError, match="abstract method.*compute"):
        NoScores("", 32, False, True, None)
