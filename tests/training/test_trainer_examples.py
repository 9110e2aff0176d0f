"""sentence-transformers' v3 training examples with jaxst imports, on short slices of the shared data.

sts/training_stsbenchmark.py (CosineSimilarityLoss) and matryoshka/matryoshka_nli.py (MatryoshkaLoss over
MultipleNegativesRankingLoss, no-duplicates batches, a SequentialEvaluator at each dimension) as written
there, with the data read from ../shared/data instead of the Hugging Face hub, the tiny model of
`tests.training.tiny_st` as model_name (so the Matryoshka dimensions are 32 and 16), smaller batches,
fp16=False (the scripts' own advice on hardware without it) and learning_rate=1e-3: a random encoder of
hidden size 32 learns little in a few dozen steps at the default 5e-5 meant for pretrained ones. Each must
raise the STS-B dev score.
"""

import datasets
import jax
import pytest

from jaxst import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
from jaxst.evaluation import EmbeddingSimilarityEvaluator, SequentialEvaluator
from jaxst.losses import CosineSimilarityLoss, MultipleNegativesRankingLoss
from jaxst.losses.matryoshka import MatryoshkaLoss
from jaxst.training import BatchSamplers
from tests.shared_data import read_tsv, stsb
from tests.training.tiny_st import make_tiny_st_model

LEARNING_RATE = 1e-3


@pytest.fixture(scope="module")
def model_name(tmp_path_factory):
    return str(make_tiny_st_model(tmp_path_factory.mktemp("tiny")))


def load_stsb(split, n):
    """The sentence-transformers/stsb dataset's columns (scores in 0..1) from the shared STS-B file."""
    rows = stsb(split)[:n]
    return datasets.Dataset.from_dict(
        {
            "sentence1": [r["sentence1"] for r in rows],
            "sentence2": [r["sentence2"] for r in rows],
            "score": [float(r["score"]) / 5 for r in rows],
        }
    )


def load_nli_triplets(split, n):
    """(anchor, positive, negative) as sentence-transformers/all-nli "triplet", from the shared SNLI file."""
    rows = read_tsv("pairs/snli_triplets.tsv.gz", split)[:n]
    return datasets.Dataset.from_dict({k: [r[k] for r in rows] for k in ("anchor", "positive", "negative")})


def test_training_stsbenchmark(model_name, tmp_path):
    train_batch_size = 16 // jax.local_device_count()  # per device: 16 a step
    num_epochs = 1
    output_dir = str(tmp_path / "training_stsbenchmark")
    model = SentenceTransformer(model_name)
    train_dataset = load_stsb("train", 192)
    eval_dataset = load_stsb("dev", 200)
    train_loss = CosineSimilarityLoss(model=model)
    dev_evaluator = EmbeddingSimilarityEvaluator(
        sentences1=eval_dataset["sentence1"],
        sentences2=eval_dataset["sentence2"],
        scores=eval_dataset["score"],
        main_similarity="cosine",
        name="sts-dev",
    )
    before = dev_evaluator(model)["sts-dev_spearman_cosine"]
    args = SentenceTransformerTrainingArguments(
        output_dir=output_dir,
        num_train_epochs=num_epochs,
        per_device_train_batch_size=train_batch_size,
        per_device_eval_batch_size=train_batch_size,
        warmup_steps=0.1,
        fp16=False,
        bf16=False,
        eval_strategy="steps",
        eval_steps=100,
        save_strategy="steps",
        save_steps=100,
        save_total_limit=2,
        logging_steps=100,
        run_name="sts",
        learning_rate=LEARNING_RATE,
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        loss=train_loss,
        evaluator=dev_evaluator,
    )
    trainer.train()
    after = dev_evaluator(model)["sts-dev_spearman_cosine"]
    assert after > before + 0.01
    model.save(f"{output_dir}/final")
    assert SentenceTransformer(f"{output_dir}/final").get_sentence_embedding_dimension() == 32


def test_matryoshka_nli(model_name, tmp_path):
    batch_size = 32 // jax.local_device_count()  # per device: 32 a step
    num_train_epochs = 1
    matryoshka_dims = [32, 16]
    output_dir = str(tmp_path / "matryoshka_nli")
    model = SentenceTransformer(model_name)
    train_dataset = load_nli_triplets("dev", 384)
    eval_dataset = load_nli_triplets("test", 64)
    inner_train_loss = MultipleNegativesRankingLoss(model)
    train_loss = MatryoshkaLoss(model, inner_train_loss, matryoshka_dims=matryoshka_dims)
    stsb_eval_dataset = load_stsb("dev", 200)
    evaluators = []
    for dim in matryoshka_dims:
        evaluators.append(
            EmbeddingSimilarityEvaluator(
                sentences1=stsb_eval_dataset["sentence1"],
                sentences2=stsb_eval_dataset["sentence2"],
                scores=stsb_eval_dataset["score"],
                main_similarity="cosine",
                name=f"sts-dev-{dim}",
                truncate_dim=dim,
            )
        )
    dev_evaluator = SequentialEvaluator(evaluators, main_score_function=lambda scores: scores[0])
    before = dev_evaluator(model)
    args = SentenceTransformerTrainingArguments(
        output_dir=output_dir,
        num_train_epochs=num_train_epochs,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size,
        warmup_steps=0.1,
        fp16=False,
        bf16=False,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        eval_strategy="steps",
        eval_steps=100,
        save_strategy="steps",
        save_steps=100,
        save_total_limit=2,
        logging_steps=100,
        run_name="matryoshka-nli",
        learning_rate=LEARNING_RATE,
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        loss=train_loss,
        evaluator=dev_evaluator,
    )
    trainer.train()
    after = dev_evaluator(model)
    for dim in matryoshka_dims:
        key = f"sts-dev-{dim}_spearman_cosine"
        assert after[key] > before[key], key
