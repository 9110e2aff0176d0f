"""LoRA adapters against PyTorch peft on the same adapter weights: embeddings, gradients of the adapter,
the saved adapter folder loaded by peft, the round trip back into jaxst, and merging."""

import shutil

import jax
import jax.numpy as jnp
import numpy as np
import peft
import pytest
import torch
from flax import nnx
from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
from safetensors.numpy import load_file
from sentence_transformers import SentenceTransformer as TorchSentenceTransformer

from jaxst.lora import LoraConfig
from jaxst.lora.config import DEFAULT_TARGET_MODULES
from jaxst.lora.layers import adapted_layers, linear_layers, module_at
from jaxst.lora.trainable import join_trainable, split_trainable
from jaxst.sentence_transformer import SentenceTransformer
from tests.st.tiny_qwen3 import save_tiny_qwen3
from tests.st.tiny_st import TEXTS, build_torch_model, save_tiny_encoder

ATOL = 1e-5
# Non-zero A and B (init_lora_weights=False), so that the adapter changes the output; rsLoRA scaling and
# explicit targets on the decoder, PEFT's default targets on BERT.
CONFIGS = {
    "bert": LoraConfig(r=4, lora_alpha=16, init_lora_weights=False),
    "qwen3": LoraConfig(
        r=2,
        lora_alpha=4,
        use_rslora=True,
        target_modules=["q_proj", "o_proj", "down_proj"],
        init_lora_weights=False,
    ),
}
SAVE_ENCODER = {"bert": save_tiny_encoder, "qwen3": save_tiny_qwen3}


@pytest.fixture(scope="module", params=["bert", "qwen3"])
def adapted(request, tmp_path_factory):
    """(family, jaxst model with an adapter, the folder it saved, PyTorch model + peft from that folder)."""
    family = request.param
    root = tmp_path_factory.mktemp(family)
    build_torch_model(SAVE_ENCODER[family](root / "encoder"), root / "base")
    ours = SentenceTransformer(root / "base")
    ours.add_adapter(CONFIGS[family], seed=1)
    ours.save(root / "adapted")
    # peft 0.21 is older than transformers' own adapter loading wants, so the folder's base model loads
    # without its adapter files and peft attaches them to the wrapped transformers model.
    shutil.copytree(root / "adapted", root / "base_only", ignore=shutil.ignore_patterns("adapter_*"))
    theirs = TorchSentenceTransformer(str(root / "base_only"), device="cpu")
    peft.PeftModel.from_pretrained(theirs[0].auto_model, str(root / "adapted"))
    theirs.eval()
    return family, ours, root / "adapted", theirs


def test_the_saved_adapter_has_peft_key_names_and_config(adapted):
    family, ours, folder, theirs = adapted
    peft_config = peft.PeftConfig.from_pretrained(str(folder))
    assert peft_config.r == ours.lora_config.r and peft_config.lora_alpha == ours.lora_config.lora_alpha
    assert peft_config.use_rslora == (family == "qwen3")
    torch_keys = {
        f"base_model.model.{name.replace('.default', '')}"
        for name, _ in theirs[0].auto_model.named_parameters()
        if "lora_" in name
    }
    assert set(load_file(folder / "adapter_model.safetensors")) == torch_keys
    assert len(torch_keys) == 2 * 2 * len(CONFIGS[family].target_modules or DEFAULT_TARGET_MODULES[family])


def test_embeddings_equal_peft(adapted):
    _, ours, _, theirs = adapted
    np.testing.assert_allclose(ours.encode(TEXTS), theirs.encode(TEXTS), atol=ATOL, rtol=0)


def test_adapter_gradients_equal_torch(adapted):
    """d/d(A, B) of mean(embeddings * w), a loss-sized objective, for every adapted layer, against torch."""
    _, ours, _, theirs = adapted
    texts = TEXTS[:6]
    weights = np.random.default_rng(0).normal(size=ours.get_sentence_embedding_dimension()).astype(np.float32)
    trained, frozen = split_trainable(ours.params)

    def objective(adapter):
        output = ours.forward(join_trainable(adapter, frozen), ours.tokenize(texts))
        return jnp.mean(output["sentence_embedding"] * weights)

    grads = jax.jit(jax.grad(objective))(trained)
    adapter = {n: p for n, p in theirs[0].auto_model.named_parameters() if "lora_" in n}
    for parameter in adapter.values():  # peft loads an adapter for inference, without gradients
        parameter.requires_grad_(True)
    features = theirs.tokenize(texts)
    (theirs(features)["sentence_embedding"] * torch.from_numpy(weights)).mean().backward()
    torch_grads = {
        name.replace(".default", ""): parameter.grad.numpy() for name, parameter in adapter.items()
    }
    # The gradients in place of the parameters: each adapted layer then holds its (dA, dB) by its name.
    gradient_encoder = nnx.merge(ours.graphdef, join_trainable(grads, frozen)["encoder"])
    ours_grads = {}
    for name, layer in adapted_layers(gradient_encoder):
        ours_grads[f"{name}.lora_A.weight"] = np.asarray(layer.lora_a[...]).T
        ours_grads[f"{name}.lora_B.weight"] = np.asarray(layer.lora_b[...]).T
    assert set(ours_grads) == set(torch_grads)
    for name, expected in torch_grads.items():
        np.testing.assert_allclose(ours_grads[name], expected, atol=ATOL, rtol=0, err_msg=name)


def test_the_saved_folder_loads_back_with_its_adapter(adapted):
    _, ours, folder, _ = adapted
    reloaded = SentenceTransformer(folder)
    assert reloaded.lora_config == ours.lora_config and reloaded.active_adapters() == ["default"]
    np.testing.assert_array_equal(reloaded.encode(TEXTS[:8]), ours.encode(TEXTS[:8]))


def test_merging_folds_the_adapter_into_the_weights(adapted, tmp_path):
    """Merged, the model has plain layers whose weights equal peft's W + delta weight, and computes the
    adapted embeddings; saved, it is a plain folder without adapter files."""
    _, ours, folder, theirs = adapted
    merged = SentenceTransformer(folder)
    merged.merge_adapter()
    assert merged.active_adapters() == [] and not any(
        "lora" in str(path) for path, _ in jax.tree_util.tree_leaves_with_path(merged.params)
    )
    encoder = nnx.merge(merged.graphdef, merged.params["encoder"])
    layers = linear_layers(encoder)
    adapted_names = set()
    for name, module in theirs[0].auto_model.named_modules():
        if isinstance(module, peft.tuners.lora.Linear):
            expected = (module.base_layer.weight + module.get_delta_weight("default")).detach().numpy()
            kernel = module_at(encoder, layers[name]).kernel[...]
            np.testing.assert_allclose(np.asarray(kernel).T, expected, atol=ATOL, rtol=0, err_msg=name)
            adapted_names.add(name)
    assert adapted_names == {
        name for name, _ in adapted_layers(nnx.merge(ours.graphdef, ours.params["encoder"]))
    }
    np.testing.assert_allclose(merged.encode(TEXTS[:8]), ours.encode(TEXTS[:8]), atol=ATOL, rtol=0)
    merged.save(tmp_path / "merged")
    assert not (tmp_path / "merged" / "adapter_config.json").exists()


def test_default_target_modules_are_peft_s():
    for model_type, targets in DEFAULT_TARGET_MODULES.items():
        assert list(targets) == TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING[model_type]


def test_an_adapter_peft_wrote_loads_into_jaxst(tmp_path):
    """peft's own adapter folder, written beside the base model, gives jaxst peft's embeddings; its factors
    for BERT's pooler ("dense" matches pooler.dense), a layer jaxst does not compute, are left out."""
    build_torch_model(save_tiny_encoder(tmp_path / "encoder"), tmp_path / "model")
    theirs = TorchSentenceTransformer(str(tmp_path / "model"), device="cpu")
    config = peft.LoraConfig(r=2, lora_alpha=6, target_modules=["key", "dense"], init_lora_weights=False)
    peft.get_peft_model(theirs[0].auto_model, config).save_pretrained(str(tmp_path / "model"))
    theirs.eval()
    ours = SentenceTransformer(tmp_path / "model")
    assert set(ours.lora_config.target_modules) == {"key", "dense"}  # peft saves a set, in any order
    np.testing.assert_allclose(ours.encode(TEXTS[:8]), theirs.encode(TEXTS[:8]), atol=ATOL, rtol=0)
