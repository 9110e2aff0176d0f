"""encode's input handling and compile count, and the training interface (tokenize / forward / params)."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxst.sentence_transformer import SentenceTransformer
from tests.shared_data import stsb_sentences
from tests.st.tiny_st import MAX_TOKENS, TEXTS, build_torch_model, save_tiny_encoder

ATOL = 1e-5


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("encode")
    theirs = build_torch_model(save_tiny_encoder(folder / "encoder"), folder / "model", normalize=True)
    return SentenceTransformer(folder / "model"), theirs


def test_compile_count_on_mixed_lengths(models):
    ours, theirs = models
    texts = stsb_sentences("train", 2000)
    assert ours.bucket_lengths == (4, 8, 12, 16, 24, 32, MAX_TOKENS)
    lengths = np.diff(ours.transformer.tokenize(texts).offsets)
    buckets_used = {next(b for b in ours.bucket_lengths if b >= n) for n in lengths}
    assert len(buckets_used) > 3

    before = ours.compile_count
    embeddings = ours.encode(texts, batch_size=32)
    assert ours.compile_count - before <= len(buckets_used)
    ours.encode(texts[::-1], batch_size=32)
    assert ours.compile_count - before <= len(buckets_used)  # the same programs again
    np.testing.assert_allclose(embeddings, theirs.encode(texts, batch_size=32), atol=ATOL, rtol=0)


def test_a_call_compiles_all_its_programs_before_its_first_batch_runs(models, monkeypatch):
    """encode compiles ahead, so compiler scratch is handed back before the output fills up."""
    ours, _ = models
    step = ours._inference_step
    compiled_at_each_run = []

    class RecordingStep:
        lower = step.lower

        def __call__(self, *args, **kwargs):
            compiled_at_each_run.append(ours.compile_count)
            return step(*args, **kwargs)

    monkeypatch.setattr(ours, "_inference_step", RecordingStep())
    texts = stsb_sentences("dev", 300)
    before = ours.compile_count
    ours.encode(texts, batch_size=16)  # batch shapes no earlier test used
    assert ours.compile_count - before > 1
    assert compiled_at_each_run == [ours.compile_count] * len(compiled_at_each_run)


def test_input_forms_and_edge_cases(models):
    ours, theirs = models
    dimension = ours.get_sentence_embedding_dimension()
    assert ours.encode([]).shape == (0, dimension)
    assert ours.encode([]).dtype == np.float32
    single = ours.encode("A man is playing a guitar.")
    assert single.shape == (dimension,)
    np.testing.assert_allclose(single, theirs.encode("A man is playing a guitar."), atol=ATOL, rtol=0)
    np.testing.assert_allclose(ours.encode(""), theirs.encode(""), atol=ATOL, rtol=0)
    long_text = "the longest sentence " * 200
    np.testing.assert_allclose(ours.encode([long_text]), theirs.encode([long_text]), atol=ATOL, rtol=0)
    assert ours.encode(np.array(TEXTS[:3])).shape == (3, dimension)
    as_jax = ours.encode(TEXTS[:3], convert_to_tensor=True)
    assert isinstance(as_jax, jax.Array) and as_jax.shape == (3, dimension)
    rows = ours.encode(TEXTS[:3], convert_to_numpy=False)
    assert len(rows) == 3 and rows[0].shape == (dimension,)


def test_bad_input(models):
    ours, _ = models
    with pytest.raises(TypeError, match=r"sentences\[2\] is a int"):
        ours.encode(["a", "b", 3])
    with pytest.raises(TypeError, match=r"sentences\[0\] is a NoneType"):
        ours.encode([None])
    for batch_size in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="batch_size must be a positive integer"):
            ours.encode(["a"], batch_size=batch_size)
    with pytest.raises(ValueError, match="precision must be one of"):
        ours.encode(["a"], precision="int4")
    with pytest.raises(ValueError, match="output_value must be one of"):
        ours.encode(["a"], output_value="cls_embedding")
    with pytest.raises(ValueError, match=r"Prompt name 'qeury' not found .*\['query', 'document'\]"):
        ours.encode(["a"], prompt_name="qeury")
    with pytest.raises(ValueError, match="exceeds the model's 50 positions"):
        ours.max_seq_length = 51
    with pytest.raises(ValueError, match="similarity_fn_name must be one of"):
        ours.similarity_fn_name = "jaccard"


def test_max_seq_length_is_settable(models):
    ours, theirs = models
    ours.max_seq_length = theirs.max_seq_length = 10
    try:
        assert ours.bucket_lengths == (4, 8, 10)
        np.testing.assert_allclose(ours.encode(TEXTS), theirs.encode(TEXTS), atol=ATOL, rtol=0)
    finally:
        ours.max_seq_length = theirs.max_seq_length = MAX_TOKENS


def test_tokenize_and_forward_agree_with_encode(models):
    ours, _ = models
    features = ours.tokenize(TEXTS[:5])
    assert set(features) == {"input_ids", "attention_mask", "token_type_ids"}
    assert features["input_ids"].dtype == np.int32
    assert features["input_ids"].shape[1] in ours.bucket_lengths
    out = jax.jit(ours.forward)(ours.params, features)
    np.testing.assert_allclose(out["sentence_embedding"], ours.encode(TEXTS[:5]), atol=ATOL, rtol=0)
    assert out["token_embeddings"].shape == (*features["input_ids"].shape, 32)

    with_hidden = jax.jit(partial(ours.forward, output_hidden_states=True))(ours.params, features)
    assert len(with_hidden["all_layer_embeddings"]) == 3
    np.testing.assert_array_equal(with_hidden["all_layer_embeddings"][-1], out["token_embeddings"])

    def loss(params, rng):
        embeddings = ours.forward(params, features, dropout_rng=rng)["sentence_embedding"]
        return jnp.sum(embeddings[0] * embeddings[1])

    value_and_grad = jax.jit(jax.value_and_grad(loss))
    value, grads = value_and_grad(ours.params, jax.random.key(0))
    assert jax.tree.structure(grads) == jax.tree.structure(ours.params)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    assert float(value_and_grad(ours.params, jax.random.key(0))[0]) == float(
        value
    )  # dropout: same key, same mask
    assert float(value_and_grad(ours.params, jax.random.key(1))[0]) != float(value)


@pytest.mark.multi_device
def test_forward_under_pmap(models):
    ours, _ = models
    devices = jax.local_device_count()
    features = ours.tokenize(TEXTS[: 2 * devices])
    sharded = {key: value.reshape(devices, 2, -1) for key, value in features.items()}
    out = jax.pmap(lambda p, f: ours.forward(p, f)["sentence_embedding"], in_axes=(None, 0))(
        ours.params, sharded
    )
    np.testing.assert_allclose(
        np.asarray(out).reshape(2 * devices, -1), ours.encode(TEXTS[: 2 * devices]), atol=ATOL, rtol=0
    )


def test_set_params_checks_the_tree(models):
    ours, _ = models
    with pytest.raises(ValueError, match="parameter tree differs"):
        ours.set_params({"encoder": ours.params["encoder"]})
    bad = jax.tree_util.tree_map_with_path(
        lambda path, p: jnp.zeros((3, 32)) if "word" in jax.tree_util.keystr(path) else p, ours.params
    )
    with pytest.raises(ValueError, match=r"\['embeddings'\]\['word'\]\['embedding'\].*expected float32"):
        ours.set_params(bad)


@pytest.mark.parametrize(
    "sentences",
    [
        {"a text": 1},
        {"a text", "another"},
        3,
        2.5,
        None,
        b"bytes",
        (text for text in ["a", "b"]),
        np.array([["a", "b"]]),
        np.array("a"),
    ],
    ids=["dict", "set", "int", "float", "None", "bytes", "generator", "2-D array", "0-D array"],
)
def test_encode_refuses_what_is_not_texts(models, sentences):
    ours, _ = models
    kind = (
        type(sentences).__name__ if not isinstance(sentences, np.ndarray) else f"a {sentences.ndim}-D NumPy"
    )
    with pytest.raises(
        TypeError, match=rf"sentences must be a str, or a list, tuple or 1-D NumPy array .*got {kind}"
    ):
        ours.encode(sentences)


def test_encode_takes_a_text_or_a_list_tuple_or_array_of_texts(models):
    ours, _ = models
    expected = ours.encode(TEXTS[:3])
    for sentences in (tuple(TEXTS[:3]), np.array(TEXTS[:3]), np.array(TEXTS[:3], dtype=object)):
        np.testing.assert_array_equal(ours.encode(sentences), expected)
    np.testing.assert_allclose(ours.encode(TEXTS[1]), expected[1], atol=ATOL, rtol=0)
