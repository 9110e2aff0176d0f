"""MSEEvaluator and SequentialEvaluator against sentence-transformers' on equal embeddings."""

import numpy as np
import pytest
from sentence_transformers.sentence_transformer.evaluation import MSEEvaluator as STMSEEvaluator
from sentence_transformers.sentence_transformer.evaluation import SequentialEvaluator as STSequentialEvaluator
from sentence_transformers.sentence_transformer.evaluation import TripletEvaluator as STTripletEvaluator

from jaxst.evaluation import MSEEvaluator, SequentialEvaluator, TripletEvaluator
from tests.evaluation.compare import assert_same_csv_files, assert_same_metrics
from tests.evaluation.fixed_model import FixedEmbeddingModel
from tests.shared_data import stsb_sentences


@pytest.fixture(scope="module")
def sentences():
    return stsb_sentences("dev", 100)


def student_of(teacher: FixedEmbeddingModel, sentences, noise: float, dim: int = 16) -> FixedEmbeddingModel:
    rng = np.random.default_rng(0)
    return FixedEmbeddingModel(
        {s: teacher.vector(s) + noise * rng.standard_normal(dim) for s in sentences}, dim=dim
    )


@pytest.mark.parametrize("options", [{}, {"name": "distill"}, {"name": "cut", "truncate_dim": 5}])
def test_mse_same_metrics_and_csv(sentences, tmp_path, options):
    teacher = FixedEmbeddingModel()
    student = student_of(teacher, sentences, noise=0.1)
    ours = MSEEvaluator(sentences, sentences, teacher_model=teacher, **options)
    theirs = STMSEEvaluator(sentences, sentences, teacher_model=teacher, **options)
    for steps in (10, 20):
        our_metrics = ours(student, output_path=str(tmp_path / "ours"), epoch=0, steps=steps)
        their_metrics = theirs(student, output_path=str(tmp_path / "theirs"), epoch=0, steps=steps)
        assert_same_metrics(our_metrics, their_metrics)
        assert ours.primary_metric == theirs.primary_metric
        np.testing.assert_allclose(our_metrics[ours.primary_metric], -100 * 0.1**2, rtol=0.2)
    assert_same_csv_files(str(tmp_path / "ours"), str(tmp_path / "theirs"))


def test_mse_of_different_dimensions_is_an_error_naming_both_shapes(sentences):
    evaluator = MSEEvaluator(sentences, sentences, teacher_model=FixedEmbeddingModel(dim=16))
    with pytest.raises(ValueError, match=r"shape \(100, 8\) but the teacher's have shape \(100, 16\)"):
        evaluator(FixedEmbeddingModel(dim=8))


def test_mse_bad_arguments_are_errors(sentences):
    with pytest.raises(ValueError, match="needs a teacher_model"):
        MSEEvaluator(sentences, sentences)
    with pytest.raises(ValueError, match=r"source_sentences \(100\) and target_sentences \(99\)"):
        MSEEvaluator(sentences, sentences[:-1], teacher_model=FixedEmbeddingModel())


def test_sequential_same_metrics_and_primary_metric(sentences, tmp_path):
    teacher = FixedEmbeddingModel()
    student = student_of(teacher, sentences, noise=0.5)
    triplet_args = (sentences[0:30], sentences[30:60], sentences[60:90])
    ours = SequentialEvaluator(
        [
            MSEEvaluator(sentences, sentences, teacher_model=teacher, name="mse"),
            TripletEvaluator(*triplet_args),
        ],
        main_score_function=lambda scores: sum(scores) / len(scores),
    )
    theirs = STSequentialEvaluator(
        [
            STMSEEvaluator(sentences, sentences, teacher_model=teacher, name="mse"),
            STTripletEvaluator(*triplet_args),
        ],
        main_score_function=lambda scores: sum(scores) / len(scores),
    )
    our_metrics = ours(student, output_path=str(tmp_path / "ours"))
    assert_same_metrics(our_metrics, theirs(student, output_path=str(tmp_path / "theirs")))
    assert ours.primary_metric == "sequential_score"
    assert_same_csv_files(str(tmp_path / "ours"), str(tmp_path / "theirs"))
    assert (
        SequentialEvaluator([TripletEvaluator(*triplet_args)])(student)["sequential_score"]
        == (our_metrics["cosine_accuracy"])
    )
