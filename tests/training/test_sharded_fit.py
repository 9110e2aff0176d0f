"""fit on a Mesh (FSDP, tensor parallel, data parallel) trains what one device trains, with sharded state.

Each mesh of the 8 fake CPU devices runs a few fit steps of a tiny BERT or Qwen3 with one loss and is
compared with the same fit on one device. Differences come only from the order of float32 sums in the
sharded matmuls and reductions: after two AdamW steps of lr 1e-3 (each moving a parameter by up to
about 1e-3) the parameters agree to 1e-5. Dropout is off: its masks depend on how a batch is laid out.
"""

import datasets
import jax
import numpy as np
import pytest
from jax.sharding import Mesh

import jaxst.training.fit as fit_module
from jaxst import LoraConfig
from jaxst.losses import (
    CachedMultipleNegativesRankingLoss,
    CosineSimilarityLoss,
    MultipleNegativesRankingLoss,
)
from jaxst.sentence_transformer import SentenceTransformer
from jaxst.training.callbacks import TrainerCallback
from jaxst.training.data import DataLoader, InputExample
from jaxst.training.fit import fit
from jaxst.training.parallel import PmapParallel
from jaxst.training.sharding import ShardedParallel, encoder_path
from jaxst.training.step import init_train_state
from jaxst.training.trainer import SentenceTransformerTrainer
from jaxst.training.training_args import SentenceTransformerTrainingArguments
from tests.shared_data import stsb_sentences
from tests.st.tiny_qwen3 import save_tiny_qwen3
from tests.st.tiny_st import build_torch_model
from tests.training.tiny_st import make_tiny_st_model

pytestmark = pytest.mark.multi_device

BATCH_SIZE = 16
LOSSES = {
    "mnrl": lambda model: MultipleNegativesRankingLoss(model),
    "cosine": lambda model: CosineSimilarityLoss(model),
    "cached_mnrl": lambda model: CachedMultipleNegativesRankingLoss(model, mini_batch_size=6),
}
# (mesh shape, axis names, model, loss, LoRA adapter): every mesh once, both models, every loss kind (MNRL
# and CosineSimilarityLoss train on packed batches, CachedMNRL on padded ones), and a LoRA adapter (its
# factors sharded over "fsdp" by the fallback rule, the frozen base by the family's rules).
RUNS = [
    ((8,), ("data",), "bert", "cached_mnrl", False),
    ((8,), ("fsdp",), "qwen3", "mnrl", False),
    ((2, 4), ("data", "fsdp"), "bert", "cosine", False),
    ((2, 2, 2), ("data", "fsdp", "model"), "qwen3", "mnrl", False),
    ((2, 4), ("model", "fsdp"), "bert", "mnrl", False),
    ((2, 4), ("model", "fsdp"), "bert", "mnrl", True),
]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("sharded")
    build_torch_model(save_tiny_qwen3(root / "qwen3_encoder"), root / "qwen3", pooling_mode="mean")
    return {"bert": make_tiny_st_model(root / "bert"), "qwen3": root / "qwen3"}


@pytest.fixture(scope="module")
def examples():
    sentences = stsb_sentences("train", 2 * 2 * BATCH_SIZE)
    return [
        InputExample(texts=[sentences[2 * i], sentences[2 * i + 1]], label=(i % 5) / 4)
        for i in range(2 * BATCH_SIZE)
    ]


def train(folder, loss_name, examples, mesh=None, adapter=False, **kwargs):
    """The model's parameters after fit: one epoch of two batches unless `kwargs` say otherwise; with
    `adapter`, of a model with a LoRA adapter on the attention's query and value."""
    model = SentenceTransformer(str(folder))
    if adapter:
        model.add_adapter(LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"]))
    options = dict(warmup_steps=0, optimizer_params={"lr": 1e-3}, use_dropout=False, show_progress_bar=False)
    fit(
        model,
        [(DataLoader(examples, batch_size=BATCH_SIZE, shuffle=False), LOSSES[loss_name](model))],
        mesh=mesh,
        **(options | kwargs),
    )
    return jax.device_get(model.params)


_one_device_results = {}


def one_device_params(folder, loss_name, examples, adapter, monkeypatch):
    """The same fit on one device (the pmap driver on the first device), computed once per run kind."""
    key = (str(folder), loss_name, adapter)
    if key not in _one_device_results:
        with monkeypatch.context() as patch:
            patch.setattr(
                fit_module, "make_parallel", lambda *args, **kwargs: PmapParallel(jax.devices()[:1])
            )
            _one_device_results[key] = train(folder, loss_name, examples, adapter=adapter)
    return _one_device_results[key]


@pytest.mark.parametrize(("shape", "axes", "model_name", "loss_name", "adapter"), RUNS)
def test_fit_on_a_mesh_equals_one_device(
    folders, examples, monkeypatch, shape, axes, model_name, loss_name, adapter
):
    mesh = Mesh(np.array(jax.devices()).reshape(shape), axes)
    sharded = train(folders[model_name], loss_name, examples, mesh, adapter=adapter)
    reference = one_device_params(folders[model_name], loss_name, examples, adapter, monkeypatch)
    moved = jax.tree.map(lambda a, b: np.max(np.abs(np.asarray(a) - np.asarray(b))), sharded, reference)
    assert max(jax.tree.leaves(moved)) > 0  # the state the run returns is its own, not the reference's
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5, rtol=0), sharded, reference)


def test_a_sharded_run_resumes_bit_identically(folders, examples, tmp_path):
    """Two epochs on a (data=2, fsdp=4) mesh with dropout, checkpointed at step 2; resuming there ends with
    the same bits."""
    mesh = Mesh(np.array(jax.devices()).reshape(2, 4), ("data", "fsdp"))
    options = dict(epochs=2, use_dropout=True, checkpoint_save_steps=2)
    full = train(folders["bert"], "cosine", examples, mesh, checkpoint_path=str(tmp_path / "run"), **options)
    resumed = train(
        folders["bert"],
        "cosine",
        examples,
        mesh,
        resume_from_checkpoint=str(tmp_path / "run" / "2"),
        **options,
    )
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), full, resumed)


def shard_fraction(array: jax.Array) -> float:
    return array.addressable_shards[0].data.size / array.size


@pytest.mark.parametrize(("shape", "axes"), [((8,), ("fsdp",)), ((2, 2, 2), ("data", "fsdp", "model"))])
def test_parameters_and_adam_moments_are_sharded(folders, shape, axes):
    """Every matrix (parameters and both Adam moments) holds 1/fsdp of itself per device, and the layers'
    projections 1/(fsdp * model); vectors are replicated."""
    mesh = Mesh(np.array(jax.devices()).reshape(shape), axes)
    model = SentenceTransformer(str(folders["qwen3"]))
    params = {"model": model.params, "losses": ({},)}
    tx = fit_module.make_optimizer(
        params,
        lr=1e-3,
        weight_decay=0.01,
        max_grad_norm=1.0,
        optimizer_params={},
        scheduler="constantlr",
        warmup_steps=0,
        total_steps=1,
    )
    parallel = ShardedParallel(mesh, model.partition_rules)
    state = parallel.put_state(init_train_state(params, tx, seed=0))
    fsdp, tensor = mesh.shape["fsdp"], mesh.shape.get("model", 1)
    leaves = jax.tree_util.tree_leaves_with_path((state.params, state.opt_state))
    matrices = [(path, x) for path, x in leaves if x.ndim >= 2]
    # the parameters' matrices, then the two moments of each
    assert len(matrices) == 3 * sum(np.ndim(x) >= 2 for x in jax.tree.leaves(params))
    for path, x in matrices:
        within = encoder_path(path) or ""
        projection = within.startswith("layers/")
        expected = 1 / (fsdp * tensor) if projection else 1 / fsdp
        assert shard_fraction(x) <= expected, (jax.tree_util.keystr(path), x.sharding)
    vectors = [x for _, x in leaves if x.ndim < 2]
    assert vectors and all(shard_fraction(x) == 1 for x in vectors)


def test_a_mesh_with_unknown_axis_names_or_with_data_parallel_is_refused(folders, examples):
    model = SentenceTransformer(str(folders["bert"]))
    objectives = [(DataLoader(examples, batch_size=BATCH_SIZE), MultipleNegativesRankingLoss(model))]
    devices = np.array(jax.devices())
    with pytest.raises(ValueError, match=r"Unknown mesh axis names \['batch'\]"):
        fit(model, objectives, mesh=Mesh(devices, ("batch",)), show_progress_bar=False)
    with pytest.raises(ValueError, match="data_parallel='pmap' and mesh exclude each other"):
        fit(model, objectives, mesh=Mesh(devices, ("data",)), data_parallel="pmap", show_progress_bar=False)
    with pytest.raises(ValueError, match="batch size 12 is not divisible by the number of devices \\(8\\)"):
        fit(
            model,
            [(DataLoader(examples, batch_size=12), MultipleNegativesRankingLoss(model))],
            mesh=Mesh(devices, ("fsdp",)),
            show_progress_bar=False,
        )


def test_the_trainer_trains_on_a_mesh(folders, examples, tmp_path):
    """SentenceTransformerTrainer(..., mesh=...) runs the sharded engine and trains the model."""
    model = SentenceTransformer(str(folders["bert"]))
    before = jax.device_get(model.params)
    drivers = []

    class RecordDriver(TrainerCallback):
        def on_train_begin(self, run):
            drivers.append(run.parallel)

    dataset = datasets.Dataset.from_dict(
        {"anchor": [e.texts[0] for e in examples], "positive": [e.texts[1] for e in examples]}
    )
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=BATCH_SIZE // 8,  # over the 8 local devices: batches of BATCH_SIZE
        num_train_epochs=1,
        report_to="none",
        save_strategy="no",
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        loss=MultipleNegativesRankingLoss(model),
        callbacks=[RecordDriver()],
        mesh=Mesh(np.array(jax.devices()).reshape(2, 4), ("data", "fsdp")),
    )
    assert trainer.train().global_step == 2
    assert isinstance(drivers[0], ShardedParallel) and drivers[0].num_devices == 8
    moved = jax.tree.map(lambda a, b: np.max(np.abs(np.asarray(a) - np.asarray(b))), model.params, before)
    assert max(jax.tree.leaves(moved)) > 0
