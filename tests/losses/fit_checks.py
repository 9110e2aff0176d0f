"""A loss trained through `fit` for a few steps on the tiny model: the check that `fit` supports it."""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np

from jaxst.losses.base import Loss
from jaxst.sentence_transformer import SentenceTransformer
from jaxst.training.data import DataLoader, InputExample
from jaxst.training.fit import fit


def fit_steps(
    folder,
    make_loss: Callable[[SentenceTransformer], Loss],
    examples: list[InputExample] | DataLoader,
    *,
    steps: int = 2,
) -> tuple[SentenceTransformer, dict]:
    """A fresh model from `folder` trained by `fit` for `steps` steps of 8 examples (dropout on), or of
    the batches of `examples` when it is a DataLoader.

    Without weight decay a tensor changes only where its gradient is non-zero. Asserts that every step
    ran, that the mean loss is finite and that every encoder tensor changed. Returns the trained model and
    fit's result.
    """
    model = SentenceTransformer(folder)
    before = [np.asarray(leaf) for leaf in jax.tree.leaves(model.params["encoder"])]
    loader = examples if isinstance(examples, DataLoader) else DataLoader(examples, 8, shuffle=True, seed=0)
    result = fit(
        model,
        [(loader, make_loss(model))],
        steps_per_epoch=steps,
        warmup_steps=0,
        optimizer_params={"lr": 1e-3},
        weight_decay=0.0,
        show_progress_bar=False,
    )
    assert result["global_step"] == steps
    assert np.isfinite(result["training_loss"])
    after = [np.asarray(leaf) for leaf in jax.tree.leaves(model.params["encoder"])]
    unchanged = sum(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    assert unchanged == 0, f"{unchanged} of {len(before)} encoder tensors did not change"
    return model, result
