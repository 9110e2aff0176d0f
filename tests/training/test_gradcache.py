"""GradCache: the cached losses give the plain losses' value and gradient, on one device, under pmap with
gathering across devices, with dropout (the re-embedding replays each chunk's masks), and through fit
(with GISTEmbedLoss' guide embeddings supplied by fit)."""

from __future__ import annotations

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxst.losses.cached import CachedGISTEmbedLoss, CachedMultipleNegativesRankingLoss
from jaxst.losses.gist import GISTEmbedLoss, gist_embed_loss
from jaxst.losses.matryoshka import MatryoshkaLoss
from jaxst.losses.ranking import MultipleNegativesRankingLoss
from jaxst.sentence_transformer import SentenceTransformer
from jaxst.training.batching import batch_arrays
from jaxst.training.data import DataLoader, ExampleBatch, InputExample
from jaxst.training.fit import fit
from jaxst.training.guide import GuideEmbedder
from jaxst.training.parallel import PmapParallel
from jaxst.training.step import batch_loss, init_train_state, make_train_step
from tests.shared_data import read_tsv
from tests.training.tiny_st import make_tiny_st_model

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """The trained model's folder and a guide's with the same tokenizer and other weights (the tokenizer
    training assigns tied ids differently run to run, so the model's tokenizer files are copied over)."""
    root = tmp_path_factory.mktemp("tiny")
    model = make_tiny_st_model(root / "model", seed=0, max_seq_length=16)
    guide = make_tiny_st_model(root / "guide", seed=1, max_seq_length=16)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(model / name, guide / name)
    return model, guide


@pytest.fixture(scope="module")
def model(folders):
    return SentenceTransformer(folders[0])


@pytest.fixture(scope="module")
def triplets():
    return [
        (r["anchor"], r["positive"], r["negative"]) for r in read_tsv("pairs/snli_triplets.tsv.gz", "dev")
    ]


def columns(rows):
    """Rows of k texts -> k columns."""
    return [list(column) for column in zip(*rows, strict=True)]


def device_batch(model, rows, guide=None):
    """One device's batch dict: [k, b, T] token arrays (+ the guide's embeddings)."""
    arrays = batch_arrays(model, ExampleBatch(columns(rows), None))
    if guide is not None:
        arrays["guide_embeddings"] = GuideEmbedder(guide, model)(arrays)
    return {name: jnp.asarray(value) for name, value in arrays.items()}


def value_and_grads(model, loss, batch, dropout_rng=None):
    params = {"model": model.params, "losses": ({},)}
    run = jax.jit(
        jax.value_and_grad(lambda p, rng: batch_loss(model.forward, loss, p, batch, dropout_rng=rng))
    )
    value, grads = run(params, dropout_rng)
    return float(value), grads["model"]


def assert_same_gradients(grads, expected):
    """Per tensor: max |difference| over max |expected gradient| (tensors whose gradient is float noise,
    the attention key biases, zero in exact arithmetic, must be noise on both sides)."""
    paths = jax.tree_util.tree_leaves_with_path(expected)
    for (path, theirs), ours in zip(paths, jax.tree.leaves(grads), strict=True):
        scale = float(jnp.max(jnp.abs(theirs)))
        error = float(jnp.max(jnp.abs(ours - theirs)))
        if scale < 1e-9:
            assert error < 1e-9, jax.tree_util.keystr(path)
        else:
            assert error / scale < TOLERANCE, f"{jax.tree_util.keystr(path)}: {error / scale:.2e}"


@pytest.fixture(scope="module")
def mnrl_reference(model, triplets):
    """Plain MNRL on 8 triplets (24 rows) on one device: (batch, value, gradients)."""
    batch = device_batch(model, triplets[:8])
    return (batch, *value_and_grads(model, MultipleNegativesRankingLoss(model), batch))


def test_cached_mnrl_equals_mnrl_with_hard_negatives_and_a_padded_last_chunk(model, mnrl_reference):
    """24 rows in chunks of 5: four full chunks and one padded with a copy of row 0."""
    batch, value, grads = mnrl_reference
    cached_value, cached_grads = value_and_grads(
        model, CachedMultipleNegativesRankingLoss(model, mini_batch_size=5), batch
    )
    assert cached_value == pytest.approx(value, rel=TOLERANCE)
    assert_same_gradients(cached_grads, grads)


def test_wrappers_of_a_cached_loss_train_through_gradcache(model):
    """The step looks through wrappers (`.loss`, e.g. MatryoshkaLoss) for a GradCache loss."""
    cached = CachedMultipleNegativesRankingLoss(model, mini_batch_size=3)
    assert cached.mini_batch_size == 3
    assert MatryoshkaLoss(model, cached, matryoshka_dims=[32, 8]).mini_batch_size == 3
    plain = MultipleNegativesRankingLoss(model)
    assert MatryoshkaLoss(model, plain, matryoshka_dims=[32, 8]).mini_batch_size is None


def test_cached_gist_equals_gist(model, folders, triplets):
    guide = SentenceTransformer(folders[1])
    batch = device_batch(model, [row[:2] for row in triplets[:9]], guide)
    options = {"temperature": 0.05, "margin": 0.05}
    value, grads = value_and_grads(model, GISTEmbedLoss(model, guide, **options), batch)
    cached_value, cached_grads = value_and_grads(
        model, CachedGISTEmbedLoss(model, guide, mini_batch_size=5, **options), batch
    )
    assert cached_value == pytest.approx(value, rel=TOLERANCE)
    assert_same_gradients(cached_grads, grads)


def test_with_dropout_the_second_pass_replays_each_chunks_masks(model, triplets):
    """Cached gradient = autodiff through the same chunked forward, chunk c with fold_in(key, c)."""
    rows, chunk = 2 * 3, 4  # 3 pairs: chunks of rows 0-3, and 4-5 padded with rows 0-1
    batch = device_batch(model, [row[:2] for row in triplets[:3]])
    key = jax.random.key(3)
    mnrl = MultipleNegativesRankingLoss(model)

    def chunked_forward(params, features, *, dropout_rng):
        padded = {name: jnp.concatenate([x, x[:2]]) for name, x in features.items()}
        outputs = [
            model.forward(
                params,
                {name: x[start : start + chunk] for name, x in padded.items()},
                dropout_rng=jax.random.fold_in(dropout_rng, start // chunk),
            )["sentence_embedding"]
            for start in range(0, rows + 2, chunk)
        ]
        return {"sentence_embedding": jnp.concatenate(outputs)[:rows]}

    params = {"model": model.params, "losses": ({},)}
    reference = jax.jit(
        jax.value_and_grad(lambda p, rng: batch_loss(chunked_forward, mnrl, p, batch, dropout_rng=rng))
    )
    expected_value, expected_grads = reference(params, key)
    cached = CachedMultipleNegativesRankingLoss(model, mini_batch_size=chunk)
    value, grads = value_and_grads(model, cached, batch, dropout_rng=key)
    assert value == pytest.approx(float(expected_value), rel=TOLERANCE)
    assert_same_gradients(grads, expected_grads["model"])
    assert abs(value - float(reference(params, jax.random.key(4))[0])) > 1e-3  # dropout is on


def keep_gradient() -> optax.GradientTransformation:
    """An optimizer whose state is the last (pmean-ed) gradient and whose update is zero."""
    return optax.GradientTransformation(
        init=lambda params: jax.tree.map(jnp.zeros_like, params),
        update=lambda grads, state, params=None: (jax.tree.map(jnp.zeros_like, grads), grads),
    )


@pytest.mark.multi_device
def test_pmap_with_gathering_gives_the_gradient_of_plain_mnrl_on_the_global_batch(model, mnrl_reference):
    """8 devices x 1 triplet (3 rows, chunks of 2: one padded), negatives gathered across devices: the
    step's averaged gradient and loss are plain MNRL's on the global batch of 8 on one device."""
    batch, value, grads = mnrl_reference
    parallel = PmapParallel(jax.local_devices())
    loss = CachedMultipleNegativesRankingLoss(model, mini_batch_size=2, gather_across_devices=True)
    step = parallel.compile(make_train_step(model.forward, loss, keep_gradient(), use_dropout=False))
    params = {"model": model.params, "losses": ({},)}
    state = parallel.put_state(init_train_state(params, keep_gradient(), seed=0))
    state, metrics = step(state, parallel.put_batch({name: np.asarray(x) for name, x in batch.items()}))
    assert parallel.get_metrics(metrics)["loss"] == pytest.approx(value, rel=TOLERANCE)
    assert_same_gradients(parallel.get_state(state).opt_state["model"], grads)


def test_gist_trains_through_fit_with_the_guide_embeddings_fit_supplies(folders, triplets, tmp_path):
    """One batch of 11 pairs (one device: 11 is prime), three epochs, dropout off: the first logged loss
    is GIST's on the batch embedded by encode with the model and the guide, and the loss goes down."""
    examples = [InputExample(texts=list(row[:2])) for row in triplets[:11]]
    model, guide = SentenceTransformer(folders[0]), SentenceTransformer(folders[1])
    columns = [[e.texts[j] for e in examples] for j in range(2)]
    expected = gist_embed_loss(
        [model.encode(c) for c in columns], [guide.encode(c) for c in columns], temperature=0.05
    )
    fit(
        model,
        [(DataLoader(examples, batch_size=11), GISTEmbedLoss(model, guide, temperature=0.05))],
        epochs=3,
        warmup_steps=0,
        optimizer_params={"lr": 1e-3},
        use_dropout=False,
        show_progress_bar=False,
        checkpoint_path=str(tmp_path),
        checkpoint_save_steps=1000,
    )
    losses = [json.loads(line)["loss"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 3
    assert losses[0] == pytest.approx(float(expected), rel=TOLERANCE)
    assert losses[2] < losses[1] < losses[0]


def test_guide_embeddings_follow_sentence_transformers_tokenization(model, folders, triplets):
    """Same tokenizer and max length: the guide embeds the model's token arrays; a shorter guide max
    length: the guide re-tokenizes the decoded texts. Both equal guide.encode on short texts."""
    guide = SentenceTransformer(folders[1])
    short = 14  # tokens, [CLS] and [SEP] included
    rows = [row for row in triplets if max(model.tokenize(list(row))["attention_mask"].sum(1)) <= short][:4]
    arrays = batch_arrays(model, ExampleBatch(columns(rows), None))
    expected = guide.encode([t for column in columns(rows) for t in column]).reshape(3, len(rows), -1)
    same = GuideEmbedder(guide, model)
    assert same.same_tokens
    np.testing.assert_allclose(same(arrays), expected, atol=1e-6)
    guide.max_seq_length = short
    retokenized = GuideEmbedder(guide, model)
    assert not retokenized.same_tokens
    np.testing.assert_allclose(retokenized(arrays), expected, atol=1e-6)


def test_bad_options_are_named(model):
    with pytest.raises(
        ValueError, match="CachedMultipleNegativesRankingLoss: mini_batch_size must be a positive"
    ):
        CachedMultipleNegativesRankingLoss(model, mini_batch_size=0)
    with pytest.raises(ValueError, match="CachedGISTEmbedLoss: mini_batch_num_tokens=512 is not supported"):
        CachedGISTEmbedLoss(model, model, mini_batch_num_tokens=512)
    config = CachedMultipleNegativesRankingLoss(model, mini_batch_size=64).get_config_dict()
    assert (config["mini_batch_size"], config["scale"], config["mini_batch_num_tokens"]) == (64, 20.0, None)
    assert CachedGISTEmbedLoss(model, model).get_config_dict()["mini_batch_size"] == 32
