"""fit with every kind of loss on the newer families (Qwen3, Gemma 3, ModernBERT, T5), computing in bfloat16
(use_amp=True) with float32 parameters.

The step treats a loss by what it declares (`jaxst.losses.base.Loss`). What reaches the family's forward
pass differs in three ways: packed batches, padded batches cut into GradCache chunks, and the hidden
states; labels, parameters of the loss and wrappers only change the arithmetic after it. So each family
trains, in one fit, a GradCache loss and an AdaptiveLayerLoss around a loss of one of the other kinds,
two epochs over the same batch, so that each objective's second loss can be set against its first;
`test_every_loss_kind_trains_on_the_families` keeps the list of kinds complete.
"""

import inspect
import json
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer as TorchSentenceTransformer

from jaxst import losses
from jaxst.batch_layouts import as_batch
from jaxst.data import load_stsb
from jaxst.losses.base import Loss, WrapperLoss, loss_chain
from jaxst.losses.cached import GradCacheLoss
from jaxst.sentence_transformer import SentenceTransformer
from jaxst.training import fit as fit_module
from jaxst.training.batching import batch_arrays
from jaxst.training.data import DataLoader, ExampleBatch, InputExample
from jaxst.training.fit import fit
from jaxst.training.step import takes_packed_batches
from tests.models.test_bfloat16 import BOUND
from tests.st.tiny_st import build_torch_model
from tests.training.test_family_training import FAMILIES

BATCH = 8


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request):
    return request.param


@pytest.fixture(scope="module")
def folder(family, tmp_path_factory):
    """A tiny sentence-transformers folder of each family: Transformer, Pooling, Normalize."""
    save_encoder, pooling_mode = FAMILIES[family]
    root = tmp_path_factory.mktemp(family)
    build_torch_model(save_encoder(root / "encoder"), root / "st", pooling_mode=pooling_mode, normalize=True)
    return root / "st"


def objectives(model, family: str) -> list[tuple[set[str], list[InputExample], Loss]]:
    """(kinds, examples, loss) of `family`'s two objectives, on 8 STS-B pairs: GradCache on padded batches,
    and AdaptiveLayerLoss (the hidden states) on packed ones around a loss of the kinds the family's
    forward pass gets no differently, one per family (labels, parameters of the loss, a second wrapper)."""
    rows = load_stsb("train")[:BATCH]
    pairs = [InputExample(texts=[a, b]) for a, b, _ in rows]
    scored = [InputExample(texts=[a, b], label=score) for a, b, score in rows]
    classed = [InputExample(texts=[a, b], label=round(2 * score)) for a, b, score in rows]
    dim = model.get_sentence_embedding_dimension()
    inner = {
        "qwen3": ({"packed, unlabeled"}, pairs, losses.MultipleNegativesRankingLoss(model)),
        "gemma3_text": ({"packed, labeled"}, scored, losses.CoSENTLoss(model)),
        "modernbert": ({"loss parameters"}, classed, losses.SoftmaxLoss(model, dim, num_labels=3)),
        "t5": (
            {"wrapper", "packed, unlabeled"},
            pairs,
            losses.MatryoshkaLoss(model, losses.MultipleNegativesRankingLoss(model), [dim, 8]),
        ),
    }
    kinds, examples, loss = inner[family]
    return [
        ({"GradCache"}, pairs, losses.CachedMultipleNegativesRankingLoss(model, mini_batch_size=BATCH // 2)),
        (kinds | {"hidden states"}, examples, losses.AdaptiveLayerLoss(model, loss)),
    ]


def dot_operand_dtypes(jaxpr) -> list[tuple[str, ...]]:
    """The operand dtypes of every dot_general in `jaxpr` and the jaxprs nested in it (jit, remat, vjp)."""
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            found.append(tuple(str(var.aval.dtype) for var in eqn.invars))
        for value in eqn.params.values():
            for inner in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(inner, "jaxpr", inner)
                if hasattr(inner, "eqns"):
                    found += dot_operand_dtypes(inner)
    return found


@pytest.fixture(scope="module")
def amp_run(family, folder, tmp_path_factory):
    """Two epochs of fit with use_amp=True over the family's objectives, each one batch of 8 (so the second
    epoch sees each batch again). Returns the model, its parameters before fit, the forward pass fit's
    steps differentiate, the logged steps and the objectives."""
    model = SentenceTransformer(folder)
    initial = model.params
    runs = objectives(model, family)
    built = []
    make_train_step = fit_module.make_train_step

    def recording_make_train_step(forward, *args, **kwargs):
        built.append(forward)
        return make_train_step(forward, *args, **kwargs)

    output = tmp_path_factory.mktemp("fit")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fit_module, "make_train_step", recording_make_train_step)
        fit(
            model,
            [(DataLoader(examples, batch_size=BATCH), loss) for _, examples, loss in runs],
            epochs=2,
            warmup_steps=0,
            optimizer_params={"lr": 1e-3},
            output_path=str(output),
            use_amp=True,
            use_dropout=False,
            show_progress_bar=False,
        )
    logged = [json.loads(line) for line in (output / fit_module.METRICS_FILE).read_text().splitlines()]
    return model, initial, built, logged, runs


def test_every_objective_trains_in_bfloat16_and_its_loss_decreases(amp_run):
    """Each objective's loss on its batch is lower the second time, and the parameters stay float32."""
    model, initial, built, logged, runs = amp_run
    assert len(built) == len(runs)
    assert [takes_packed_batches(loss) for _, _, loss in runs] == [False, True]
    steps = [record for record in logged if "loss" in record]
    assert [record["objective"] for record in steps] == list(range(len(runs))) * 2
    first, second = steps[: len(runs)], steps[len(runs) :]
    for (kind, _, _), before, after in zip(runs, first, second, strict=True):
        assert np.isfinite(before["loss"]) and after["loss"] < before["loss"], kind
    leaves = jax.tree.leaves(model.params)
    assert all(leaf.dtype == jnp.float32 for leaf in leaves)
    changed = [not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(initial), leaves, strict=True)]
    assert sum(changed) > len(leaves) // 2


def test_the_step_multiplies_in_bfloat16_within_the_bfloat16_bound(amp_run, folder):
    """The forward pass of fit's steps runs every matmul in bfloat16 (seen in its jaxpr), and its
    embeddings differ from the float32 ones by at most BOUND times the gap sentence-transformers shows
    between its float32 and bfloat16 runs of the same folder (tests/models/test_bfloat16.py)."""
    model, initial, built, _, runs = amp_run
    texts = [text for example in runs[0][1] for text in example.texts]
    batch = as_batch(batch_arrays(model, ExampleBatch([texts], None))).texts()
    forward = built[0]
    jaxpr = jax.make_jaxpr(lambda params: forward(params, batch)["sentence_embedding"])(initial)
    dtypes = dot_operand_dtypes(jaxpr.jaxpr)
    # Each of the 2 layers: the Q, K, V and O projections, the two attention products, 2 or 3 MLP matmuls.
    assert len(dtypes) >= 2 * 8 and set(dtypes) == {("bfloat16", "bfloat16")}

    ours = jax.jit(forward)(initial, batch)["sentence_embedding"]
    torch_model = TorchSentenceTransformer(str(folder), device="cpu")
    reference = torch_model.encode(texts, convert_to_numpy=True)
    theirs = torch_model.to(torch.bfloat16).encode(texts, convert_to_tensor=True).float().numpy()
    our_gap = np.max(np.abs(np.asarray(ours, np.float32) - reference))
    their_gap = np.max(np.abs(theirs - reference))
    assert our_gap <= BOUND * their_gap, f"{our_gap} vs {their_gap}"


# What a loss can declare to the step (`Loss`'s attributes); a new one needs a kind here and a run above.
CONTRACT = {
    "min_texts",
    "max_texts",
    "needs_labels",
    "needs_rng",
    "needs_hidden_states",
    "mini_batch_size",
    "guide",
    "uses_model_copy",
    "separable",
}
# Kinds whose only difference from the kinds run above lies outside the trained encoder's forward pass, so
# the family cannot change them, with the reason.
NOT_RUN_ON_THE_FAMILIES = {
    "guide model": "the guide embeds the padded batch outside the step; the trained model sees a padded "
    "batch, as GradCache's",
    "model copy": "the step runs the same forward pass over the copy's parameters, on the same batch",
}


def contract_kind(loss_class: type[Loss]) -> str:
    """The kind of the objectives above that `loss_class` trains as, read from its declarations."""
    if issubclass(loss_class, WrapperLoss):
        return "hidden states" if loss_class.needs_hidden_states is True else "wrapper"
    if "guide" in inspect.signature(loss_class).parameters:
        return "guide model"
    if issubclass(loss_class, GradCacheLoss):
        return "GradCache"
    if loss_class.uses_model_copy:
        return "model copy"
    if loss_class.init_params is not Loss.init_params:
        return "loss parameters"
    return "packed, labeled" if loss_class.needs_labels else "packed, unlabeled"


def test_every_loss_kind_trains_on_the_families():
    """Every loss class of jaxst.losses is of a kind fit runs above on a family, or of a kind listed
    with the reason the family cannot matter; the objectives above are of the kinds they name."""
    declared = {
        name for name, value in vars(Loss).items() if not name.startswith("_") and not callable(value)
    }
    assert declared == CONTRACT
    embedder = SimpleNamespace(get_sentence_embedding_dimension=lambda: 32)
    run = set()
    for family in FAMILIES:
        for kinds, _, loss in objectives(embedder, family):
            assert kinds == {contract_kind(type(link)) for link in loss_chain(loss)}
            run |= kinds
    classes = [getattr(losses, name) for name in losses.__all__]
    loss_classes = [c for c in classes if isinstance(c, type) and issubclass(c, Loss) and c is not Loss]
    for loss_class in loss_classes:
        kind = contract_kind(loss_class)
        assert kind in run or kind in NOT_RUN_ON_THE_FAMILIES, f"{loss_class.__name__}: {kind}"
