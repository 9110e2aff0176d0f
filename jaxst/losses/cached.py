"""CachedMultipleNegativesRankingLoss and CachedGISTEmbedLoss: their plain losses, trained with GradCache.

The loss value is that of MultipleNegativesRankingLoss / GISTEmbedLoss on the whole batch; what differs is
how the train step gets its gradient. A loss with a `mini_batch_size` makes `jaxst.training.step` embed
the batch through `jaxst.training.gradcache.cached_embed`: chunks of `mini_batch_size` rows without
activations kept, the loss gradient w.r.t. the embeddings, then chunk-by-chunk re-embedding with the same
dropout keys to pull that gradient back to the parameters. So a batch far larger than a plain step fits
in memory trains with the gradient of the plain loss at that batch.

Differences from sentence-transformers: `mini_batch_num_tokens` (chunks packed to a token budget, of
varying row counts) is refused, as jaxst's compiled step has static shapes; `show_progress_bar` is
accepted and has no effect (the mini-batches run inside one compiled step). CachedGISTEmbedLoss takes
(anchor, positive[, negative]) as GISTEmbedLoss does, not several negative columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jaxst.losses.gist import GISTEmbedLoss, MarginStrategy
from jaxst.losses.ranking import (
    Direction,
    HardnessMode,
    MultipleNegativesRankingLoss,
    PartitionMode,
    Similarity,
)


def _check_cache_options(owner: str, mini_batch_size: Any, mini_batch_num_tokens: Any) -> int:
    """The mini-batch size as a positive int; a ValueError naming `owner` and the option otherwise."""
    if isinstance(mini_batch_size, bool) or not isinstance(mini_batch_size, int) or mini_batch_size < 1:
        raise ValueError(f"{owner}: mini_batch_size must be a positive integer, got {mini_batch_size!r}.")
    if mini_batch_num_tokens is not None:
        raise ValueError(
            f"{owner}: mini_batch_num_tokens={mini_batch_num_tokens!r} is not supported: jaxst's train step "
            "has static shapes, so mini-batches have a fixed row count. Use mini_batch_size."
        )
    return mini_batch_size


class CachedMultipleNegativesRankingLoss(MultipleNegativesRankingLoss):
    """MultipleNegativesRankingLoss with GradCache; see the module docstring and the parent class.

    Args:
        mini_batch_size: rows embedded at a time in the train step (default 32, as sentence-transformers).
        mini_batch_num_tokens: must be None (see the module docstring).
        show_progress_bar: accepted for sentence-transformers code; no effect.
        The other arguments are MultipleNegativesRankingLoss'.
    """

    def __init__(
        self,
        model: Any,
        *,
        scale: float = 20.0,
        similarity_fct: str | Similarity = "cosine",
        mini_batch_size: int = 32,
        mini_batch_num_tokens: int | None = None,
        gather_across_devices: bool = False,
        directions: Sequence[Direction] = ("query_to_doc",),
        partition_mode: PartitionMode = "joint",
        show_progress_bar: bool = False,
        hardness_mode: HardnessMode | None = None,
        hardness_strength: float = 0.0,
        axis_name: Any = "data",
    ):
        del show_progress_bar
        self.mini_batch_size = _check_cache_options(
            type(self).__name__, mini_batch_size, mini_batch_num_tokens
        )
        super().__init__(
            model,
            scale=scale,
            similarity_fct=similarity_fct,
            gather_across_devices=gather_across_devices,
            directions=directions,
            partition_mode=partition_mode,
            hardness_mode=hardness_mode,
            hardness_strength=hardness_strength,
            axis_name=axis_name,
        )

    def get_config_dict(self) -> dict[str, Any]:
        """As sentence-transformers: the MNRL hyperparameters and the mini-batch options."""
        return {
            **self.hyperparameters,
            "mini_batch_size": self.mini_batch_size,
            "mini_batch_num_tokens": None,
        }


class CachedGISTEmbedLoss(GISTEmbedLoss):
    """GISTEmbedLoss with GradCache; see the module docstring and the parent class.

    The guide's embeddings come with the batch, as for GISTEmbedLoss (the guide runs without gradient, so
    it needs no cache).

    Args:
        mini_batch_size: rows embedded at a time in the train step (default 32, as sentence-transformers).
        mini_batch_num_tokens: must be None (see the module docstring).
        show_progress_bar: accepted for sentence-transformers code; no effect.
        The other arguments are GISTEmbedLoss'.
    """

    def __init__(
        self,
        model: Any,
        guide: Any,
        *,
        temperature: float = 0.01,
        mini_batch_size: int = 32,
        mini_batch_num_tokens: int | None = None,
        show_progress_bar: bool = False,
        margin_strategy: MarginStrategy = "absolute",
        margin: float = 0.0,
        contrast_anchors: bool = True,
        contrast_positives: bool = True,
        gather_across_devices: bool = False,
        axis_name: Any = "data",
    ):
        del show_progress_bar
        self.mini_batch_size = _check_cache_options(
            type(self).__name__, mini_batch_size, mini_batch_num_tokens
        )
        super().__init__(
            model,
            guide,
            temperature=temperature,
            margin_strategy=margin_strategy,
            margin=margin,
            contrast_anchors=contrast_anchors,
            contrast_positives=contrast_positives,
            gather_across_devices=gather_across_devices,
            axis_name=axis_name,
        )

    def get_config_dict(self) -> dict[str, Any]:
        """As sentence-transformers: the guide, the GIST hyperparameters and the mini-batch options."""
        return {
            **super().get_config_dict(),
            "mini_batch_size": self.mini_batch_size,
            "mini_batch_num_tokens": None,
        }
