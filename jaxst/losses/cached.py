"""CachedMultipleNegativesRankingLoss, CachedMultipleNegativesSymmetricRankingLoss, CachedGISTEmbedLoss:
their plain losses, trained with GradCache.

The loss value is that of the plain loss (MultipleNegativesRankingLoss, MultipleNegativesSymmetricRankingLoss,
GISTEmbedLoss) on the whole batch; what differs is how the train step gets its gradient. A loss with a
`mini_batch_size` makes `jaxst.training.step` embed the batch through `jaxst.training.gradcache.cached_embed`:
chunks of `mini_batch_size` rows without activations kept, the loss gradient w.r.t. the embeddings, then
chunk-by-chunk re-embedding with the same dropout keys to pull that gradient back to the parameters. So a
batch far larger than a plain step fits in memory trains with the gradient of the plain loss at that batch.

Differences from sentence-transformers: `mini_batch_num_tokens` (chunks packed to a token budget, of
varying row counts) is refused, as jaxst's compiled step has static shapes; `show_progress_bar` is
accepted and has no effect (the mini-batches run inside one compiled step). CachedGISTEmbedLoss takes
(anchor, positive[, negative]) as GISTEmbedLoss does, not several negative columns.
"""

from __future__ import annotations

from typing import Any

from jaxst.losses.gist import GISTEmbedLoss, MarginStrategy
from jaxst.losses.ranking import (
    Direction,
    HardnessMode,
    MultipleNegativesRankingLoss,
    MultipleNegativesSymmetricRankingLoss,
    PartitionMode,
    Similarity,
)


class GradCacheLoss:
    """Mixin before a plain in-batch loss class: takes the GradCache options and passes every other
    argument on to the plain loss. Each cached class writes sentence-transformers' constructor, whose
    positional order interleaves the plain loss's parameters and these options.

    Args:
        mini_batch_size: rows embedded at a time in the train step, a positive int.
        mini_batch_num_tokens: must be None (see the module docstring).
        show_progress_bar: accepted for sentence-transformers code; no effect.
        args, options: the plain loss's arguments.
    """

    def __init__(
        self,
        *args: Any,
        mini_batch_size: int = 32,
        mini_batch_num_tokens: int | None = None,
        show_progress_bar: bool = False,
        **options: Any,
    ):
        del show_progress_bar
        owner = type(self).__name__
        if isinstance(mini_batch_size, bool) or not isinstance(mini_batch_size, int) or mini_batch_size < 1:
            raise ValueError(f"{owner}: mini_batch_size must be a positive integer, got {mini_batch_size!r}.")
        if mini_batch_num_tokens is not None:
            raise ValueError(
                f"{owner}: mini_batch_num_tokens={mini_batch_num_tokens!r} is not supported: jaxst's train "
                "step has static shapes, so mini-batches have a fixed row count. Use mini_batch_size."
            )
        self.mini_batch_size = mini_batch_size
        super().__init__(*args, **options)

    def get_config_dict(self) -> dict[str, Any]:
        """As sentence-transformers: the plain loss's configuration, then the mini-batch options."""
        return {
            **super().get_config_dict(),
            "mini_batch_size": self.mini_batch_size,
            "mini_batch_num_tokens": None,
        }


class CachedMultipleNegativesRankingLoss(GradCacheLoss, MultipleNegativesRankingLoss):
    """MultipleNegativesRankingLoss with GradCache; see the module docstring and `GradCacheLoss`."""

    def __init__(
        self,
        model: Any,
        scale: float = 20.0,
        similarity_fct: str | Similarity = "cosine",
        mini_batch_size: int = 32,
        mini_batch_num_tokens: int | None = None,
        gather_across_devices: bool = False,
        directions: tuple[Direction, ...] = ("query_to_doc",),
        partition_mode: PartitionMode = "joint",
        show_progress_bar: bool = False,
        hardness_mode: HardnessMode | None = None,
        hardness_strength: float = 0.0,
        *,
        axis_name: Any = "data",
    ):
        super().__init__(
            model,
            scale=scale,
            similarity_fct=similarity_fct,
            mini_batch_size=mini_batch_size,
            mini_batch_num_tokens=mini_batch_num_tokens,
            gather_across_devices=gather_across_devices,
            directions=directions,
            partition_mode=partition_mode,
            show_progress_bar=show_progress_bar,
            hardness_mode=hardness_mode,
            hardness_strength=hardness_strength,
            axis_name=axis_name,
        )


class CachedMultipleNegativesSymmetricRankingLoss(GradCacheLoss, MultipleNegativesSymmetricRankingLoss):
    """MultipleNegativesSymmetricRankingLoss with GradCache; see the module docstring and `GradCacheLoss`.

    As sentence-transformers, where this class is deprecated in favour of CachedMultipleNegativesRankingLoss
    with directions=("query_to_doc", "doc_to_query") and partition_mode="per_direction", which is the
    same loss.
    """

    def __init__(
        self,
        model: Any,
        scale: float = 20.0,
        similarity_fct: str | Similarity = "cosine",
        mini_batch_size: int = 32,
        mini_batch_num_tokens: int | None = None,
        gather_across_devices: bool = False,
        show_progress_bar: bool = False,
        *,
        axis_name: Any = "data",
    ):
        super().__init__(
            model,
            scale=scale,
            similarity_fct=similarity_fct,
            mini_batch_size=mini_batch_size,
            mini_batch_num_tokens=mini_batch_num_tokens,
            gather_across_devices=gather_across_devices,
            show_progress_bar=show_progress_bar,
            axis_name=axis_name,
        )


class CachedGISTEmbedLoss(GradCacheLoss, GISTEmbedLoss):
    """GISTEmbedLoss with GradCache; see the module docstring and `GradCacheLoss`.

    The guide's embeddings come with the batch, as for GISTEmbedLoss (the guide runs without gradient, so
    it needs no cache).
    """

    def __init__(
        self,
        model: Any,
        guide: Any,
        temperature: float = 0.01,
        mini_batch_size: int = 32,
        mini_batch_num_tokens: int | None = None,
        show_progress_bar: bool = False,
        margin_strategy: MarginStrategy = "absolute",
        margin: float = 0.0,
        contrast_anchors: bool = True,
        contrast_positives: bool = True,
        gather_across_devices: bool = False,
        *,
        axis_name: Any = "data",
    ):
        super().__init__(
            model,
            guide,
            temperature=temperature,
            mini_batch_size=mini_batch_size,
            mini_batch_num_tokens=mini_batch_num_tokens,
            show_progress_bar=show_progress_bar,
            margin_strategy=margin_strategy,
            margin=margin,
            contrast_anchors=contrast_anchors,
            contrast_positives=contrast_positives,
            gather_across_devices=gather_across_devices,
            axis_name=axis_name,
        )
