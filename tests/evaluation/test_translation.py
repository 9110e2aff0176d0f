"""TranslationEvaluator against sentence-transformers' on equal embeddings (MRPC pairs as parallel text)."""

import numpy as np
import pytest
from sentence_transformers.sentence_transformer.evaluation import TranslationEvaluator as STEvaluator

from jaxst.evaluation import TranslationEvaluator
from tests.evaluation.compare import assert_same_csv_files, assert_same_metrics
from tests.evaluation.fixed_model import FixedEmbeddingModel, hashed_vector
from tests.shared_data import read_tsv

DIM = 16


@pytest.fixture(scope="module")
def parallel_set():
    """150 MRPC test pairs (sentence1 "source", sentence2 "target") with distinct texts; a source lies near
    its target, close enough that most but not all nearest neighbours are right. The last target repeats
    the first, so matching either copy counts."""
    rows, seen = [], set()
    for row in read_tsv("pairs/mrpc.tsv.gz", "test"):
        if row["sentence1"] not in seen and row["sentence2"] not in seen:
            seen |= {row["sentence1"], row["sentence2"]}
            rows.append(row)
    rows = rows[:150]
    sources = [row["sentence1"] for row in rows]
    targets = [row["sentence2"] for row in rows[:-1]] + [rows[0]["sentence2"]]
    rng = np.random.default_rng(0)
    vectors = {text: hashed_vector(text, DIM) for text in targets}
    for source, target in zip(sources, targets, strict=True):
        vectors[source] = vectors[target] + 0.7 * rng.standard_normal(DIM)
    return sources, targets, vectors


@pytest.mark.parametrize("options", [{}, {"name": "mrpc", "batch_size": 7}, {"truncate_dim": 8}])
def test_same_metrics_and_csv_as_sentence_transformers(parallel_set, tmp_path, options):
    sources, targets, vectors = parallel_set
    model = FixedEmbeddingModel(vectors, dim=DIM)
    ours, theirs = TranslationEvaluator(sources, targets, **options), STEvaluator(sources, targets, **options)
    for steps in (3, -1):
        our_metrics = ours(model, output_path=str(tmp_path / "ours"), epoch=1, steps=steps)
        their_metrics = theirs(model, output_path=str(tmp_path / "theirs"), epoch=1, steps=steps)
        assert_same_metrics(our_metrics, their_metrics)
        assert ours.primary_metric == theirs.primary_metric
        assert 0.5 < our_metrics[ours.primary_metric] < 1.0
    assert_same_csv_files(str(tmp_path / "ours"), str(tmp_path / "theirs"))


def test_print_wrong_matches_names_the_same_sources(parallel_set, capsys):
    sources, targets, vectors = parallel_set
    model = FixedEmbeddingModel(vectors, dim=DIM)

    def wrong_match_lines(evaluator) -> list[str]:
        evaluator(model)
        return [line for line in capsys.readouterr().out.splitlines() if line.startswith("Incorrect")]

    ours = wrong_match_lines(TranslationEvaluator(sources, targets, print_wrong_matches=True))
    assert ours == wrong_match_lines(STEvaluator(sources, targets, print_wrong_matches=True))
    assert len(ours) > 5


def test_bad_arguments_are_errors(parallel_set):
    sources, targets, _ = parallel_set
    with pytest.raises(ValueError, match="same length, got 150 and 10"):
        TranslationEvaluator(sources, targets[:10])
    with pytest.raises(ValueError, match="empty"):
        TranslationEvaluator([], [])
