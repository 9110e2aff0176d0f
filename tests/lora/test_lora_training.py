"""Training with a LoRA adapter: only the adapter trains, the optimizer state exists for it alone, and the
frozen base encoder comes out of fit bit for bit unchanged."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxst.data import load_stsb
from jaxst.lora import LoraConfig
from jaxst.lora.layers import LoraParam
from jaxst.lora.trainable import join_trainable, split_trainable
from jaxst.losses import CosineSimilarityLoss
from jaxst.sentence_transformer import SentenceTransformer
from jaxst.training.data import DataLoader, InputExample
from jaxst.training.parallel import PmapParallel
from jaxst.training.step import init_train_state, make_train_step


@pytest.fixture(scope="module")
def adapted(tiny_folder):
    model = SentenceTransformer(tiny_folder)
    model.add_adapter(LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value", "output.dense"]))
    return model


def leaves_by_path(tree):
    return {
        jax.tree_util.keystr(path): np.asarray(leaf)
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
    }


def test_split_and_join_give_back_the_model_parameters(adapted):
    trained, frozen = split_trainable(adapted.params)
    adapter_paths = leaves_by_path(trained["encoder"])
    assert adapter_paths and all("['lora_" in p for p in adapter_paths)
    assert not any("lora" in p for p in leaves_by_path(frozen))
    joined = join_trainable(trained, frozen)
    assert jax.tree.structure(joined) == jax.tree.structure(adapted.params)
    plain = {"encoder": frozen["encoder"], "modules": {}}
    assert split_trainable(plain) == (plain, None)  # without an adapter everything trains


def test_the_optimizer_state_holds_only_adapter_leaves(adapted):
    trained, frozen = split_trainable(adapted.params)
    state = init_train_state({"model": trained, "losses": ({},)}, optax.adamw(1e-3), 0, frozen=frozen)
    adapter_shapes = sorted(x.shape for x in jax.tree.leaves(nnx.state(trained["encoder"], LoraParam)))
    moments = state.opt_state[0]
    assert sorted(x.shape for x in jax.tree.leaves(moments.mu)) == adapter_shapes
    assert sorted(x.shape for x in jax.tree.leaves(moments.nu)) == adapter_shapes


def test_fit_changes_only_the_adapter(adapted):
    before = leaves_by_path(adapted.params)
    examples = [InputExample(texts=[a, b], label=s / 5.0) for a, b, s in load_stsb("train")[:32]]
    loader = DataLoader(examples, batch_size=16, shuffle=True, seed=3)
    adapted.fit(
        [(loader, CosineSimilarityLoss(adapted))],
        epochs=1,
        warmup_steps=0,
        optimizer_params={"lr": 1e-2},
        show_progress_bar=False,
    )
    after = leaves_by_path(adapted.params)
    assert after.keys() == before.keys()
    changed = {path for path in before if not np.array_equal(before[path], after[path])}
    adapter = {path for path in before if "['lora_" in path}
    assert changed == adapter  # the frozen base (and every other parameter) is bitwise unchanged
    assert all(after[path].dtype == before[path].dtype for path in before)


def test_fit_trains_an_adapter_with_lora_dropout_and_changes_only_it(tiny_folder):
    model = SentenceTransformer(tiny_folder)
    model.add_adapter(LoraConfig(r=4, lora_alpha=8, lora_dropout=0.1, target_modules=["query", "value"]))
    before = leaves_by_path(model.params)
    examples = [InputExample(texts=[a, b], label=s / 5.0) for a, b, s in load_stsb("train")[:16]]
    model.fit(
        [(DataLoader(examples, batch_size=16), CosineSimilarityLoss(model))],
        warmup_steps=0,
        optimizer_params={"lr": 1e-2},
        show_progress_bar=False,
    )
    after = leaves_by_path(model.params)
    changed = {path for path in before if not np.array_equal(before[path], after[path])}
    assert changed == {path for path in before if "['lora_" in path}


def test_a_bfloat16_base_stays_frozen_in_bfloat16_while_the_adapter_trains(adapted):
    """The frozen base may be kept in bfloat16: a step reads it, leaves it untouched and trains the
    float32 adapter."""
    trained, frozen = split_trainable(adapted.params)
    frozen = jax.tree.map(lambda x: x.astype(jnp.bfloat16), frozen)
    tx = optax.adamw(1e-2)
    parallel = PmapParallel(jax.local_devices()[:1])
    step = parallel.compile(
        make_train_step(adapted.forward, CosineSimilarityLoss(adapted), tx, use_dropout=False)
    )
    state = parallel.put_state(init_train_state({"model": trained, "losses": ({},)}, tx, 0, frozen=frozen))
    pairs = load_stsb("train")[:8]
    tokens = adapted.tokenize([a for a, _, _ in pairs] + [b for _, b, _ in pairs])
    batch = {name: x.reshape(2, len(pairs), -1) for name, x in tokens.items()}
    batch["labels"] = np.array([s / 5.0 for _, _, s in pairs], np.float32)
    state, metrics = step(state, parallel.put_batch(batch))
    after = parallel.get_state(state)
    assert np.isfinite(parallel.get_metrics(metrics)["loss"])
    assert {x.dtype for x in jax.tree.leaves(after.frozen)} == {np.dtype(jnp.bfloat16)}
    for old, new in zip(jax.tree.leaves(frozen), jax.tree.leaves(after.frozen), strict=True):
        np.testing.assert_array_equal(np.asarray(new), np.asarray(old))
    assert any(
        not np.array_equal(np.asarray(old), np.asarray(new))
        for old, new in zip(jax.tree.leaves(trained), jax.tree.leaves(after.params["model"]), strict=True)
    )
