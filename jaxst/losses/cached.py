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

import inspect
from typing import Any

from jaxst.losses.gist import GISTEmbedLoss
from jaxst.losses.ranking import MultipleNegativesRankingLoss


class GradCacheLoss:
    """Mixin before a plain in-batch loss class: its constructor takes the GradCache options and passes
    every other argument on to the plain loss, so `inspect.signature` of the cached class lists the plain
    loss's parameters, then these options, all with sentence-transformers' defaults.

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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Gives the cached class (`GradCacheLoss`, then the plain loss class) its combined signature."""
        super().__init_subclass__(**kwargs)
        plain = inspect.signature(cls.__bases__[-1]).parameters.values()
        cache = inspect.signature(GradCacheLoss.__init__).parameters.values()
        keyword_only = [p for p in cache if p.kind is inspect.Parameter.KEYWORD_ONLY]
        cls.__signature__ = inspect.Signature([*plain, *keyword_only])

    def get_config_dict(self) -> dict[str, Any]:
        """As sentence-transformers: the plain loss's configuration, then the mini-batch options."""
        return {
            **super().get_config_dict(),
            "mini_batch_size": self.mini_batch_size,
            "mini_batch_num_tokens": None,
        }


class CachedMultipleNegativesRankingLoss(GradCacheLoss, MultipleNegativesRankingLoss):
    """MultipleNegativesRankingLoss with GradCache; see the module docstring and `GradCacheLoss`."""


class CachedGISTEmbedLoss(GradCacheLoss, GISTEmbedLoss):
    """GISTEmbedLoss with GradCache; see the module docstring and `GradCacheLoss`.

    The guide's embeddings come with the batch, as for GISTEmbedLoss (the guide runs without gradient, so
    it needs no cache).
    """
