"""Training sentence-transformers models of the newer families (Qwen3, Gemma 3, ModernBERT, T5): packed
batches (causal, sliding-window, relative-bias) against padded ones and against sentence-transformers,
and fit on packed batches."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sentence_transformers import SentenceTransformer as TorchSentenceTransformer

from jaxst.batch_layouts import as_batch
from jaxst.data import load_stsb
from jaxst.losses import MultipleNegativesRankingLoss
from jaxst.sentence_transformer import SentenceTransformer
from jaxst.training.batching import batch_arrays
from jaxst.training.data import DataLoader, ExampleBatch, InputExample
from jaxst.training.fit import fit
from jaxst.training.step import takes_packed_batches
from tests.shared_data import stsb_sentences
from tests.st.tiny_gemma3 import save_tiny_gemma3
from tests.st.tiny_modernbert import save_tiny_modernbert
from tests.st.tiny_qwen3 import save_tiny_qwen3
from tests.st.tiny_st import build_torch_model
from tests.st.tiny_t5 import save_tiny_t5

# family -> (tiny encoder folder writer, pooling): Qwen3 with last-token and mean pooling concatenated.
FAMILIES = {
    "qwen3": (save_tiny_qwen3, ("lasttoken", "mean")),
    "gemma3_text": (save_tiny_gemma3, "mean"),
    "modernbert": (save_tiny_modernbert, "mean"),
    "t5": (save_tiny_t5, "mean"),
}


@pytest.fixture(scope="module", params=list(FAMILIES))
def folder(request, tmp_path_factory):
    """A tiny sentence-transformers folder of each family: Transformer, Pooling, Normalize."""
    save_encoder, pooling_mode = FAMILIES[request.param]
    root = tmp_path_factory.mktemp(request.param)
    build_torch_model(save_encoder(root / "encoder"), root / "st", pooling_mode=pooling_mode, normalize=True)
    return root / "st"


@pytest.fixture(scope="module")
def columns():
    sentences = stsb_sentences("test", 24)
    return [sentences[:12], sentences[12:]]


def test_a_packed_batch_embeds_each_text_as_sentence_transformers_does(folder, columns):
    model = SentenceTransformer(folder)
    packed = as_batch(batch_arrays(model, ExampleBatch(columns, None), packed=True))
    assert packed.packed_input_ids.shape[0] < 24  # several texts share a row
    ours = np.asarray(model.forward(model.params, packed.texts())["sentence_embedding"])
    theirs = TorchSentenceTransformer(str(folder), device="cpu").encode(columns[0] + columns[1])
    np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0)


def test_packed_gradients_equal_padded_gradients(folder, columns):
    """A loss of the embeddings and of every hidden state: the embeddings agree within 1e-5, and the
    gradients within 1e-5 of the largest gradient (parameters whose true gradient is zero, such as the
    padding token's embedding, hold rounding noise in both)."""
    model = SentenceTransformer(folder)
    weights = jax.random.normal(jax.random.key(0), (24, model.get_sentence_embedding_dimension()))

    @jax.jit
    def embeddings_and_grad(params, texts):
        def loss(params):
            out = model.forward(params, texts, output_hidden_states=True)
            tokens = out["attention_mask"][..., None]
            hidden = sum(jnp.sum(state * tokens) for state in out["all_layer_embeddings"])
            return jnp.sum(out["sentence_embedding"] * weights) + 1e-3 * hidden, out["sentence_embedding"]

        return jax.grad(loss, has_aux=True)(params)

    batch = ExampleBatch(columns, None)
    padded, padded_embeddings = embeddings_and_grad(
        model.params, as_batch(batch_arrays(model, batch)).texts()
    )
    packed, packed_embeddings = embeddings_and_grad(
        model.params, as_batch(batch_arrays(model, batch, packed=True)).texts()
    )
    np.testing.assert_allclose(packed_embeddings, padded_embeddings, atol=1e-5, rtol=0)
    largest = max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(padded))
    gaps = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), packed, padded)
    assert max(jax.tree.leaves(gaps)) <= 1e-5 * largest


def test_fit_trains_on_packed_batches(folder):
    """A few steps of fit on packed rows: the loss stays finite and the parameters change."""
    model = SentenceTransformer(folder)
    loss = MultipleNegativesRankingLoss(model)
    assert takes_packed_batches(loss)
    before = [np.asarray(leaf) for leaf in jax.tree.leaves(model.params)]
    pairs = [InputExample(texts=[a, b]) for a, b, _ in load_stsb("train")[:24]]
    result = fit(
        model,
        [(DataLoader(pairs, batch_size=8, shuffle=True, seed=0), loss)],
        warmup_steps=1,
        optimizer_params={"lr": 1e-3},
        show_progress_bar=False,
    )
    assert result["global_step"] == 3 and np.isfinite(result["training_loss"])
    after = jax.tree.leaves(model.params)
    assert all(np.all(np.isfinite(np.asarray(leaf))) for leaf in after)
    assert (
        sum(not np.array_equal(a, np.asarray(b)) for a, b in zip(before, after, strict=True))
        > len(after) // 2
    )
