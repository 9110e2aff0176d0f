"""ParaphraseMiningEvaluator against sentence-transformers' on equal embeddings (MRPC test sentences)."""

from collections import defaultdict

import numpy as np
import pytest
from sentence_transformers.sentence_transformer.evaluation import ParaphraseMiningEvaluator as STEvaluator

from jaxst.evaluation import ParaphraseMiningEvaluator
from tests.evaluation.compare import assert_same_csv_files, assert_same_metrics
from tests.evaluation.fixed_model import FixedEmbeddingModel, hashed_vector, sign_vector
from tests.shared_data import read_tsv

DIM = 16


@pytest.fixture(scope="module")
def mining_set():
    """The sentences of 20 MRPC test pairs with distinct texts, keyed by MRPC id; the paraphrase pairs
    (label 1) are the gold duplicates. Second sentences lie near their first, paraphrases nearer.

    The mined pairs are ranked by score in both libraries; two pairs whose scores differ by float32
    rounding could swap places between them (and between CPUs), so the set is checked to have no two
    pair scores closer than 1e-6 (the noise seed is chosen for that), in 16 and in 8 dimensions. Exact
    ties are checked below, with exact vectors.
    """
    rows, seen = [], set()
    for row in read_tsv("pairs/mrpc.tsv.gz", "test"):
        if not {row["sentence1"], row["sentence2"], row["id1"], row["id2"]} & seen:
            seen |= {row["sentence1"], row["sentence2"], row["id1"], row["id2"]}
            rows.append(row)
    rows = rows[:20]
    sentences = {row[f"id{i}"]: row[f"sentence{i}"] for row in rows for i in (1, 2)}
    duplicates = [(row["id1"], row["id2"]) for row in rows if row["label"] == "1"]
    rng = np.random.default_rng(3)
    vectors = {}
    for row in rows:
        first = vectors[row["sentence1"]] = hashed_vector(row["sentence1"], DIM)
        noise = 0.5 if row["label"] == "1" else 1.0
        vectors[row["sentence2"]] = first + noise * rng.standard_normal(DIM)
    for dim in (DIM, 8):
        matrix = np.stack([vectors[text][:dim] for text in sentences.values()]).astype(np.float64)
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        scores = np.sort((matrix @ matrix.T)[np.triu_indices(len(matrix), 1)])
        assert np.min(np.diff(scores)) > 1e-6
    return sentences, duplicates, vectors


def run_both(model, tmp_path, *args, **options) -> dict:
    ours, theirs = ParaphraseMiningEvaluator(*args, **options), STEvaluator(*args, **options)
    for steps in (10, -1):
        our_metrics = ours(model, output_path=str(tmp_path / "ours"), epoch=0, steps=steps)
        their_metrics = theirs(model, output_path=str(tmp_path / "theirs"), epoch=0, steps=steps)
        assert_same_metrics(our_metrics, their_metrics)
        assert ours.primary_metric == theirs.primary_metric
    assert_same_csv_files(str(tmp_path / "ours"), str(tmp_path / "theirs"))
    return our_metrics


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"name": "mrpc", "top_k": 3, "max_pairs": 40, "query_chunk_size": 17, "corpus_chunk_size": 30},
        {"truncate_dim": 8, "batch_size": 5},
    ],
)
def test_same_metrics_and_csv_as_sentence_transformers(mining_set, tmp_path, options):
    sentences, duplicates, vectors = mining_set
    model = FixedEmbeddingModel(vectors, dim=DIM)
    metrics = run_both(model, tmp_path, sentences, duplicates, **options)
    prefix = f"{options['name']}_" if "name" in options else ""
    assert 0.2 < metrics[f"{prefix}average_precision"] < 1.0


def test_duplicates_dict_and_transitive_closure_as_sentence_transformers(mining_set, tmp_path):
    """Chains of gold pairs (one through an id outside the sentences) and a dict of duplicates, with an id
    paired with itself (a gold pair that mining cannot find)."""
    sentences, duplicates, vectors = mining_set
    ids = list(sentences)
    duplicates_dict = defaultdict(lambda: defaultdict(bool))
    for id1, id2 in [
        (ids[1], ids[2]),
        (ids[3], "unknown"),
        ("unknown", ids[4]),
        (ids[2], ids[7]),
        (ids[5], ids[5]),
    ]:
        duplicates_dict[id1][id2] = duplicates_dict[id2][id1] = True
    model = FixedEmbeddingModel(vectors, dim=DIM)
    for closure in (False, True):
        run_both(
            model,
            tmp_path / str(closure),
            sentences,
            duplicates,
            duplicates_dict,
            add_transitive_closure=closure,
        )
    closed = ParaphraseMiningEvaluator(sentences, duplicates, duplicates_dict, add_transitive_closure=True)
    assert frozenset((ids[3], ids[4])) in closed.duplicates
    assert frozenset((ids[1], ids[7])) in closed.duplicates


def test_tied_scores_are_one_cut_as_sentence_transformers(tmp_path):
    """+-1 vectors in 16 dimensions make every cosine an exact multiple of 1/8, so many pairs tie exactly
    in both libraries; F1 and AP are taken only between groups of equal scores."""
    texts = [f"text {i}" for i in range(24)]
    vectors = {text: sign_vector(text, DIM) for text in texts}
    for i in range(0, 24, 2):  # every odd text is its even neighbour with 1 + i % 3 signs flipped
        flipped = vectors[texts[i]].copy()
        flipped[: 1 + i % 3] *= -1
        vectors[texts[i + 1]] = flipped
    sentences = {f"s{i}": text for i, text in enumerate(texts)}
    duplicates = [(f"s{i}", f"s{i + 1}") for i in range(0, 24, 4)] + [("s2", "s5")]
    metrics = run_both(FixedEmbeddingModel(vectors, dim=DIM), tmp_path, sentences, duplicates)
    assert 0.0 < metrics["f1"] < 1.0


def test_no_gold_pairs_give_zeros_as_sentence_transformers(mining_set, tmp_path):
    sentences, _, vectors = mining_set
    metrics = run_both(FixedEmbeddingModel(vectors, dim=DIM), tmp_path, sentences, [("a", "b")])
    assert set(metrics.values()) == {0.0}


def test_too_few_sentences_are_an_error():
    with pytest.raises(ValueError, match="at least 2 sentences"):
        ParaphraseMiningEvaluator({"a": "one sentence"})
