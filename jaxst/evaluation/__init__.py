"""Evaluators with sentence-transformers' arguments, metric keys, primary metrics and CSV files."""

from jaxst.evaluation.base import BaseEvaluator, SentenceEvaluator
from jaxst.evaluation.binary_classification import BinaryClassificationEvaluator
from jaxst.evaluation.embedding_similarity import EmbeddingSimilarityEvaluator
from jaxst.evaluation.information_retrieval import InformationRetrievalEvaluator
from jaxst.evaluation.label_accuracy import LabelAccuracyEvaluator
from jaxst.evaluation.mse import MSEEvaluator
from jaxst.evaluation.nano_beir import NanoBEIREvaluator
from jaxst.evaluation.paraphrase_mining import ParaphraseMiningEvaluator
from jaxst.evaluation.reranking import RerankingEvaluator
from jaxst.evaluation.sequential import SequentialEvaluator
from jaxst.evaluation.translation import TranslationEvaluator
from jaxst.evaluation.triplet import TripletEvaluator

__all__ = [
    "BaseEvaluator",
    "BinaryClassificationEvaluator",
    "EmbeddingSimilarityEvaluator",
    "InformationRetrievalEvaluator",
    "LabelAccuracyEvaluator",
    "MSEEvaluator",
    "NanoBEIREvaluator",
    "ParaphraseMiningEvaluator",
    "RerankingEvaluator",
    "SentenceEvaluator",
    "SequentialEvaluator",
    "TranslationEvaluator",
    "TripletEvaluator",
]
