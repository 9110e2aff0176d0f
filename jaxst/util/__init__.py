"""Similarity functions, semantic search and mining utilities, named as in `sentence_transformers.util`."""

from jaxst.quantization import quantize_embeddings
from jaxst.similarity import (
    cos_sim,
    dot_score,
    euclidean_sim,
    manhattan_sim,
    normalize,
    pairwise_cos_sim,
    pairwise_dot_score,
    pairwise_euclidean_sim,
    pairwise_manhattan_sim,
)
from jaxst.util.hard_negatives import mine_hard_negatives
from jaxst.util.mining import community_detection, paraphrase_mining, paraphrase_mining_embeddings
from jaxst.util.search import semantic_search
from jaxst.util.similarity_names import normalize_embeddings, pytorch_cos_sim

__all__ = [
    "community_detection",
    "cos_sim",
    "dot_score",
    "euclidean_sim",
    "manhattan_sim",
    "mine_hard_negatives",
    "normalize",
    "normalize_embeddings",
    "pairwise_cos_sim",
    "pairwise_dot_score",
    "pairwise_euclidean_sim",
    "pairwise_manhattan_sim",
    "paraphrase_mining",
    "paraphrase_mining_embeddings",
    "pytorch_cos_sim",
    "quantize_embeddings",
    "semantic_search",
]
