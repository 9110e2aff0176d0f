"""`scan_layers`: the encoder's layers under `jax.lax.scan` give the loop's outputs, hidden states, dropout
and gradients, for every family, and the traced program holds one layer body however deep the encoder."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxst.lora.config import LoraConfig
from jaxst.lora.layers import attach
from jaxst.models.registry import ENCODER_CLASSES
from jaxst.models.scan import LayerRun, layer_kind, plan_runs
from jaxst.modules.hf_transformer import Transformer
from jaxst.sentence_transformer import SentenceTransformer
from tests.models.tiny_models import padded_batch, tiny_config
from tests.st.tiny_st import save_tiny_encoder

LOCAL, GLOBAL = "sliding_attention", "full_attention"
# Patterned families deep enough that a block repeats: ModernBERT's first layer (no attention norm) runs
# alone and the other four scan as two blocks of (local, global); Gemma 3 scans two (local, global).
LAYER_TYPES = {"modernbert": [GLOBAL, LOCAL] * 2 + [GLOBAL], "gemma3_text": [LOCAL, GLOBAL] * 2}
FAMILIES = ("bert", "distilbert", "roberta", "mpnet", "modernbert", "qwen3", "gemma3_text", "t5")
# Bitwise for the BERT-style families in eval mode; elsewhere not: XLA optimises the loop's layers as one
# straight program and the scanned body on its own, and a few results round differently from the first
# layer on (float32 ulps), then grow through the tiny perturbed layers (Gemma 3: 1.4e-5 on values near 2).
TOLERANCE = dict(rtol=1e-5, atol=1e-5)


def deep_encoder(model_type: str, num_layers: int = 2, seed: int = 0) -> nnx.Module:
    """A tiny encoder (`tiny_config`) of `num_layers` layers (LAYER_TYPES' count for patterned families),
    every parameter moved by N(0, 0.2^2) noise, so that layers, norms and biases all differ."""
    config = tiny_config(model_type)
    layer_types = LAYER_TYPES.get(model_type)
    num_layers = len(layer_types) if layer_types else num_layers
    layer_count_name = {"distilbert": "n_layers", "t5": "num_layers"}.get(model_type, "num_hidden_layers")
    setattr(config, layer_count_name, num_layers)
    if layer_types:
        config.layer_types = layer_types
    encoder_class = ENCODER_CLASSES[model_type]
    encoder = encoder_class(encoder_class.spec_from_config(config), rngs=nnx.Rngs(seed))
    graphdef, state = nnx.split(encoder)
    noise = np.random.default_rng(seed)
    return nnx.merge(
        graphdef, jax.tree.map(lambda leaf: leaf + 0.2 * noise.standard_normal(leaf.shape, np.float32), state)
    )


def packed_rows() -> dict[str, np.ndarray]:
    """Two rows of 16 tokens holding texts of 5 and 7 tokens (then padding) and of 10 and 6 tokens:
    attention_mask numbers each row's texts 1, 2 (0: padding), position_ids count within each text."""
    lengths = [[5, 7], [10, 6]]
    mask, positions = np.zeros((2, 16), np.int32), np.zeros((2, 16), np.int32)
    for row, texts in enumerate(lengths):
        start = 0
        for number, length in enumerate(texts, start=1):
            mask[row, start : start + length] = number
            positions[row, start : start + length] = np.arange(length)
            start += length
    ids = np.random.default_rng(1).integers(3, 100, (2, 16)).astype(np.int32) * (mask > 0)
    return {"input_ids": ids, "attention_mask": mask, "position_ids": positions}


def both_ways(encoder: nnx.Module, function) -> tuple:
    """jit(function)(graphdef, state) with the encoder's layers in a loop, then under a scan."""
    results = []
    for scan in (False, True):
        encoder.use_scan_layers(scan)
        graphdef, state = nnx.split(encoder)
        results.append(jax.jit(lambda state, graphdef=graphdef: function(graphdef, state))(state))
    encoder.use_scan_layers(False)
    return tuple(results)


def assert_trees_close(actual, expected) -> None:
    for (path, got), want in zip(
        jax.tree_util.tree_leaves_with_path(actual), jax.tree.leaves(expected), strict=True
    ):
        np.testing.assert_allclose(got, want, **TOLERANCE, err_msg=jax.tree_util.keystr(path))


def embedding_loss(
    graphdef: nnx.GraphDef, state: nnx.State, batch: dict[str, np.ndarray], dropout_rng
) -> jax.Array:
    """mean(sin(last hidden state)) of a padded batch, a scalar whose gradient reaches every layer."""
    encoder = nnx.merge(graphdef, state)
    return jnp.mean(jnp.sin(encoder(batch["input_ids"], batch["attention_mask"], dropout_rng=dropout_rng)))


@pytest.mark.parametrize("model_type", FAMILIES)
def test_scanned_layers_give_the_loops_hidden_states_padded_and_packed(model_type):
    """Every hidden state of a padded batch (left padding included) and of packed rows."""
    encoder = deep_encoder(model_type)
    padded = {key: padded_batch(0)[key] for key in ("input_ids", "attention_mask")}
    packed = packed_rows()

    def hidden_states(graphdef, state):
        model = nnx.merge(graphdef, state)
        return model(**padded, output_hidden_states=True), model(**packed, output_hidden_states=True)

    loop, scan = both_ways(encoder, hidden_states)
    assert len(scan[0][1]) == len(encoder.layers) + 1
    assert_trees_close(scan, loop)


@pytest.mark.parametrize(
    ("model_type", "remat_policy"),
    [("bert", None), ("bert", "dots_with_no_batch_dims_saveable"), ("gemma3_text", None)],
)
def test_scanned_layers_give_the_loops_gradients_with_dropout(model_type, remat_policy):
    """value_and_grad w.r.t. every parameter in train mode: each layer draws the loop's dropout bits and
    its gradient flows back through the stack to its own parameters (Gemma 3: through a block of local
    and global layers); under a remat policy, which wraps each layer's call inside the scanned body, the
    gradients stay the plain loop's."""
    encoder = deep_encoder(model_type)
    batch = padded_batch(0)
    grad = jax.value_and_grad(embedding_loss, argnums=1)
    loop = jax.jit(lambda state: grad(nnx.graphdef(encoder), state, batch, jax.random.key(3)))(
        nnx.state(encoder)
    )
    encoder.remat_policy = remat_policy
    encoder.use_scan_layers(True)
    graphdef, state = nnx.split(encoder)
    scan = jax.jit(lambda state: grad(graphdef, state, batch, jax.random.key(3)))(state)
    assert_trees_close(scan, loop)


def test_lora_on_some_layers_scans_the_layers_alike_and_gives_the_loops_gradients():
    """An adapter on layer 0 alone makes it unlike the others: it runs alone and layers 1 and 2 scan; the
    adapter's factors and the base get the loop's gradients."""
    encoder = deep_encoder("bert", num_layers=3)
    config = LoraConfig(r=4, target_modules=r"encoder\.layer\.0\..*", init_lora_weights=False)
    attach(encoder, config, jax.random.key(5))
    kinds = [layer_kind(*nnx.split(layer)) for layer in encoder.layers]
    assert plan_runs(kinds) == [LayerRun(0, 1, 1), LayerRun(1, 1, 2)]
    batch = padded_batch(0)
    grad = jax.value_and_grad(embedding_loss, argnums=1)
    loop, scan = both_ways(encoder, lambda graphdef, state: grad(graphdef, state, batch, None))
    assert_trees_close(scan, loop)


def count_primitives(jaxpr: jax.extend.core.Jaxpr, name: str) -> int:
    """How many equations of primitive `name` `jaxpr` and the jaxprs nested in it hold."""
    found = 0
    for equation in jaxpr.eqns:
        found += equation.primitive.name == name
        for inner in jax.extend.core.jaxprs_in_params(equation.params):
            found += count_primitives(inner, name)
    return found


def forward_jaxpr(encoder: nnx.Module, batch: dict[str, np.ndarray]) -> jax.extend.core.Jaxpr:
    """The jaxpr of the encoder's eval forward pass, traced anew (make_jaxpr caches by function, and the
    module is the same object whatever its settings)."""
    return jax.make_jaxpr(lambda ids, mask: encoder(ids, mask))(
        batch["input_ids"], batch["attention_mask"]
    ).jaxpr


def test_the_traced_forward_holds_one_layer_body_however_deep():
    """The program of 2 and of 6 layers holds the same matmuls under a scan (one body); the loop's grow
    with depth."""
    batch = padded_batch(0)
    matmuls = {}
    for num_layers in (2, 6):
        encoder = deep_encoder("bert", num_layers=num_layers)
        for scan in (False, True):
            encoder.use_scan_layers(scan)
            matmuls[num_layers, scan] = count_primitives(forward_jaxpr(encoder, batch), "dot_general")
    assert matmuls[2, True] == matmuls[6, True] == matmuls[2, False] // 2
    assert matmuls[6, False] == 3 * matmuls[2, False]


def test_plan_runs_scans_the_longest_repeating_blocks():
    assert plan_runs(list("abbabbabb")) == [LayerRun(0, 3, 3)]
    assert plan_runs(list("gllgllg")) == [LayerRun(0, 3, 2), LayerRun(6, 1, 1)]
    assert plan_runs(list("fgllgllg")) == [LayerRun(0, 1, 1), LayerRun(1, 3, 2), LayerRun(7, 1, 1)]
    assert plan_runs(list("abbb")) == [LayerRun(0, 1, 1), LayerRun(1, 1, 3)]
    assert plan_runs(list("ab")) == [LayerRun(0, 1, 1), LayerRun(1, 1, 1)]


def test_scan_layers_is_a_model_kwarg_and_a_bad_value_is_named(tmp_path):
    folder = save_tiny_encoder(tmp_path / "bert")
    model = SentenceTransformer(str(folder), model_kwargs={"scan_layers": True})
    assert model[0].encoder.scan_layers is True
    assert nnx.graphdef(model[0].encoder) != nnx.graphdef(Transformer(folder).encoder)
    with pytest.raises(ValueError, match="scan_layers must be True or False, got 'yes'"):
        Transformer(folder, model_kwargs={"scan_layers": "yes"})
