"""jaxst.SimilarityFunction matches sentence-transformers' SimilarityFunction (members, values, functions) and
goes wherever jaxst takes a similarity name."""

import numpy as np
import pytest
import torch
from sentence_transformers import SimilarityFunction as TorchSimilarityFunction

import jaxst
from jaxst.evaluation import EmbeddingSimilarityEvaluator, TripletEvaluator
from jaxst.losses import CoSENTLoss
from jaxst.losses.checks import resolve_similarity
from jaxst.sentence_transformer import SentenceTransformer
from jaxst.similarity import SimilarityFunction, pairwise_cos_sim
from tests.st.tiny_st import build_torch_model, save_tiny_encoder

MULTI_VECTOR_ONLY = {"MAXSIM", "MEAN_MAXSIM"}  # sentence-transformers' late-interaction functions


def test_members_and_values_are_sentence_transformers():
    assert jaxst.SimilarityFunction is SimilarityFunction
    torch_members = {n: m.value for n, m in TorchSimilarityFunction.__members__.items()}
    assert {n: m.value for n, m in SimilarityFunction.__members__.items()} == {
        n: v for n, v in torch_members.items() if n not in MULTI_VECTOR_ONLY
    }
    assert SimilarityFunction.DOT is SimilarityFunction.DOT_PRODUCT
    multi_vector_values = {TorchSimilarityFunction[n].value for n in MULTI_VECTOR_ONLY}
    assert SimilarityFunction.possible_values() == [
        v for v in TorchSimilarityFunction.possible_values() if v not in multi_vector_values
    ]
    assert SimilarityFunction(TorchSimilarityFunction.DOT) is SimilarityFunction.DOT
    with pytest.raises(ValueError, match="'maxsim'"):
        SimilarityFunction("maxsim")


@pytest.mark.parametrize("member", list(SimilarityFunction))
def test_functions_equal_sentence_transformers(member):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 8)).astype(np.float32), rng.normal(size=(3, 8)).astype(np.float32)
    expected = TorchSimilarityFunction.to_similarity_fn(member.value)(torch.tensor(a), torch.tensor(b))
    np.testing.assert_allclose(SimilarityFunction.to_similarity_fn(member)(a, b), expected.numpy(), atol=1e-5)
    pairwise = TorchSimilarityFunction.to_similarity_pairwise_fn(member.value)(
        torch.tensor(a), torch.tensor(b)
    )
    np.testing.assert_allclose(
        SimilarityFunction.to_similarity_pairwise_fn(member)(a, b), pairwise.numpy(), atol=1e-5
    )


def test_members_go_where_similarity_names_do(tmp_path):
    build_torch_model(save_tiny_encoder(tmp_path / "encoder"), tmp_path / "model")
    model = SentenceTransformer(tmp_path / "model", similarity_fn_name=SimilarityFunction.DOT_PRODUCT)
    assert model.similarity_fn_name == "dot" and type(model.similarity_fn_name) is str
    model.similarity_fn_name = SimilarityFunction.MANHATTAN
    assert model.similarity_fn_name == "manhattan"

    evaluator = EmbeddingSimilarityEvaluator(
        ["a"], ["b"], [0.5], main_similarity=SimilarityFunction.EUCLIDEAN
    )
    assert evaluator.main_similarity == "euclidean" and evaluator.similarity_fn_names == ["euclidean"]
    triplets = TripletEvaluator(["a"], ["b"], ["c"], main_similarity_function=SimilarityFunction.DOT)
    assert triplets.main_similarity == "dot"
    CoSENTLoss(model, similarity_fct=SimilarityFunction.COSINE)
    assert resolve_similarity("CoSENTLoss", SimilarityFunction.COSINE, pairwise=True) is pairwise_cos_sim
