"""The loss of evaluation datasets during training (the Trainer's `eval_loss`), by the training step's own
`batch_loss`, without dropout."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from jaxst.training.batching import batch_arrays
from jaxst.training.data import DataLoader
from jaxst.training.guide import GuideEmbedder
from jaxst.training.step import AXIS_NAME, batch_loss, takes_packed_batches


class EvaluationLoss:
    """Mean losses of evaluation datasets under given parameters.

    Each dataset is read in order in batches of `batch_size` (the last one shorter), on one device; a
    batch's loss is `jaxst.training.step.batch_loss` with no dropout (the device axis is a vmap of size
    one, so losses that gather across devices run too). The loss of a dataset is the mean of its batch
    losses weighted by batch size, as transformers' Trainer.

    Args:
        model: the SentenceTransformer trained.
        forward: its forward pass (`jaxst.training.precision.forward_in_dtype`).
        datasets: [(metric name, DataLoader (unshuffled), loss, objective index of the loss's parameters)].
    """

    def __init__(self, model: Any, forward: Any, datasets: list[tuple[str, DataLoader, Any, int]]) -> None:
        self.model, self.datasets = model, datasets
        self.steps = [self.compile(forward, loss, index) for _, _, loss, index in datasets]
        self.guides = [
            None if loss.guide is None else GuideEmbedder(loss.guide, model) for _, _, loss, _ in datasets
        ]

    @staticmethod
    def compile(forward: Any, loss: Any, index: int) -> Any:
        key = jax.random.PRNGKey(0)

        def step(params: Any, batch: Any) -> jax.Array:
            def one_device(device_batch: Any) -> jax.Array:
                return batch_loss(forward, loss, params, device_batch, objective_index=index, loss_rng=key)

            return jax.vmap(one_device, axis_name=AXIS_NAME)(batch)[0]

        return jax.jit(step)

    def __call__(self, params: Any) -> dict[str, float]:
        """{metric name: mean loss} under `params` ({"model": ..., "losses": ...}, as the train state's)."""
        metrics = {}
        for (name, loader, loss, _), step, guide in zip(self.datasets, self.steps, self.guides, strict=True):
            losses, sizes = [], []
            for batch in loader:
                arrays = batch_arrays(self.model, batch, packed=takes_packed_batches(loss))
                if guide is not None:
                    arrays["guide_embeddings"] = guide(arrays)
                losses.append(step(params, jax.tree.map(lambda x: x[None], arrays)))
                sizes.append(len(batch.texts[0]))
            metrics[name] = float(np.average(np.asarray(jax.device_get(losses)), weights=sizes))
        return metrics
