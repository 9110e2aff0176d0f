"""Matryoshka2dLoss (2D Matryoshka Sentence Embeddings, Li et al.): AdaptiveLayerLoss around MatryoshkaLoss.

Training every layer's pooled output (AdaptiveLayerLoss) at several leading dimensions (MatryoshkaLoss) lets
users cut both the encoder's depth and the embedding's width at inference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jaxst.losses.adaptive_layer import AdaptiveLayerLoss, LayerWeighting
from jaxst.losses.base import Loss
from jaxst.losses.matryoshka import MatryoshkaLoss


class Matryoshka2dLoss(AdaptiveLayerLoss):
    """sentence-transformers' Matryoshka2dLoss: `AdaptiveLayerLoss(model, MatryoshkaLoss(model, loss, ...))`.

    The loss is, for the last layer and each evaluated prior layer (see `adaptive_layer_loss`), the
    `matryoshka_loss` of `loss` over `matryoshka_dims`, plus AdaptiveLayerLoss' KL term on the full
    dimension. Unlike MatryoshkaLoss alone, n_dims_per_step defaults to 1, as in sentence-transformers: each
    loss call (each layer) draws one dimension, from its own key (`AdaptiveLayerLoss`).

    Attributes:
        loss: the MatryoshkaLoss around the given `loss`.
    """

    def __init__(
        self,
        model: Any,
        loss: Loss,
        matryoshka_dims: Sequence[int],
        matryoshka_weights: Sequence[float] | None = None,
        n_layers_per_step: int = 1,
        n_dims_per_step: int = 1,
        last_layer_weight: float = 1.0,
        prior_layers_weight: float = 1.0,
        kl_div_weight: float = 1.0,
        kl_temperature: float = 0.3,
        layer_weighting: LayerWeighting = "uniform",
    ):
        matryoshka = MatryoshkaLoss(
            model,
            loss,
            matryoshka_dims,
            matryoshka_weights=matryoshka_weights,
            n_dims_per_step=n_dims_per_step,
        )
        super().__init__(
            model,
            matryoshka,
            n_layers_per_step=n_layers_per_step,
            last_layer_weight=last_layer_weight,
            prior_layers_weight=prior_layers_weight,
            kl_div_weight=kl_div_weight,
            kl_temperature=kl_temperature,
            layer_weighting=layer_weighting,
        )

    def get_config_dict(self) -> dict[str, Any]:
        """As sentence-transformers: AdaptiveLayerLoss' options, then MatryoshkaLoss' (whose "loss" names the
        innermost loss)."""
        return {**super().get_config_dict(), **self.loss.get_config_dict()}
