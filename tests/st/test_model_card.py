"""save writes a model card (README.md) as sentence-transformers does: after a fit it names the modules, the
losses, the dataset sizes, the hyperparameters and the last evaluation's metrics; an untrained loaded model
saves its own README again; PyTorch sentence-transformers loads the folder with the card."""

import re

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer as TorchSentenceTransformer
from sentence_transformers.sentence_transformer.evaluation import (
    EmbeddingSimilarityEvaluator as TorchEmbeddingSimilarityEvaluator,
)

from jaxst.data import load_stsb
from jaxst.evaluation import EmbeddingSimilarityEvaluator
from jaxst.losses import CosineSimilarityLoss
from jaxst.sentence_transformer import SentenceTransformer
from jaxst.training.data import DataLoader, InputExample
from jaxst.training.fit import fit

TRAIN_SIZE = 32


@pytest.fixture(scope="module")
def dev_pairs():
    return load_stsb("dev")[:16]


@pytest.fixture(scope="module")
def trained(tiny_folder, dev_pairs, tmp_path_factory):
    """The tiny model after one epoch of 2 steps with an evaluator, and the folder fit saved it to."""
    model = SentenceTransformer(tiny_folder)
    examples = [InputExample(texts=[a, b], label=s) for a, b, s in load_stsb("train")[:TRAIN_SIZE]]
    evaluator = EmbeddingSimilarityEvaluator(*zip(*dev_pairs, strict=True), write_csv=False)
    output = tmp_path_factory.mktemp("fitted") / "model"
    fit(
        model,
        [(DataLoader(examples, batch_size=16, shuffle=True, seed=3), CosineSimilarityLoss(model))],
        evaluator=evaluator,
        warmup_steps=1,
        optimizer_params={"lr": 1e-3},
        output_path=str(output),
        show_progress_bar=False,
    )
    return model, output


def test_the_card_after_fit_tells_the_modules_losses_data_hyperparameters_and_metrics(trained, dev_pairs):
    model, output = trained
    card = (output / "README.md").read_text()

    assert f"```\n{model!r}\n```" in card
    assert "Transformer(" in card and "Pooling(" in card
    assert "* Loss: `CosineSimilarityLoss`" in card
    assert f"* Size: {TRAIN_SIZE} training samples" in card
    assert "- `learning_rate`: 0.001" in card and "- `per_device_train_batch_size`: 16" in card
    assert "- jaxst: " in card and "- JAX: " in card and "- Flax: " in card
    assert f"finetuned from {model.model_card_data.base_model}" in card

    # PyTorch sentence-transformers loads the folder with the card, and its own evaluator on it gives the
    # metric the card states (fit saved the model of that evaluation).
    torch_model = TorchSentenceTransformer(str(output), device="cpu")
    torch_metrics = TorchEmbeddingSimilarityEvaluator(*zip(*dev_pairs, strict=True))(torch_model)
    stated = re.search(r"^\| spearman_cosine \| (\S+) \|$", card, re.MULTILINE)
    assert stated is not None, card
    np.testing.assert_allclose(float(stated.group(1)), torch_metrics["spearman_cosine"], atol=5e-5)
    texts = [pair[0] for pair in dev_pairs[:4]]
    np.testing.assert_allclose(
        SentenceTransformer(output).encode(texts), torch_model.encode(texts), rtol=1e-5, atol=1e-5
    )


def test_a_save_replaces_a_readme_as_sentence_transformers_does_unless_asked_not_to(trained, tmp_path):
    model, _ = trained
    output = tmp_path / "model"
    output.mkdir()
    (output / "README.md").write_text("# my model")

    model.save(output, create_model_card=False)
    assert (output / "README.md").read_text() == "# my model"

    model.save(output)
    assert "* Loss: `CosineSimilarityLoss`" in (output / "README.md").read_text()


def test_an_untrained_loaded_model_saves_its_own_readme_again(tiny_folder, tmp_path):
    SentenceTransformer(tiny_folder).save(tmp_path / "copy")
    assert (tmp_path / "copy" / "README.md").read_bytes() == (tiny_folder / "README.md").read_bytes()
