"""GISTEmbedLoss: in-batch negatives filtered by a guide model (Solatorio, 2024).

Like MultipleNegativesRankingLoss with temperature, but a frozen guide model scores the same texts, and
any in-batch candidate that the guide finds more similar to the anchor than the anchor's own positive
(less a margin) is a likely false negative: it is dropped (its logit set to -inf).

The guide's embeddings are an input here. sentence-transformers embeds each text column with the guide
under `torch.no_grad()`; jaxst's fit loop does the same (see `GISTEmbedLoss`). Similarities are
`torch.nn.CosineSimilarity` (eps 1e-8, clamp outside autograd), as sentence-transformers uses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import jax
import jax.numpy as jnp
import optax

from jaxst.losses.base import Loss
from jaxst.losses.checks import check_batch_size, check_rank, check_trailing_dim
from jaxst.losses.pair_distances import COSINE_EPS
from jaxst.similarity import safe_norm

MarginStrategy = Literal["absolute", "relative"]
LOSS_NAME = "gist_embed_loss"


def _torch_cosine_matrix(a: jax.Array, b: jax.Array) -> jax.Array:
    """`nn.CosineSimilarity(dim=-1)(a[:, None], b[None])`: [N, D], [M, D] -> [N, M].

    Each row is divided by max(||row||, 1e-8), the clamp outside autograd as in torch.
    """

    def unit(x: jax.Array) -> jax.Array:
        norm = safe_norm(x, axis=-1, keepdims=True)
        return x / (norm + jax.lax.stop_gradient(jnp.maximum(norm, COSINE_EPS) - norm))

    return unit(a.astype(jnp.float32)) @ unit(b.astype(jnp.float32)).T


def _check_options(margin_strategy: str, num_columns: int | None = None) -> None:
    if margin_strategy not in ("absolute", "relative"):
        raise ValueError(f"margin_strategy must be 'absolute' or 'relative', got {margin_strategy!r}.")
    if num_columns is not None and num_columns not in (2, 3):
        raise ValueError(
            f"{LOSS_NAME}: expected 2 or 3 columns (anchor, positive[, negative]), got {num_columns}."
        )


def gist_embed_loss(
    embeddings: Sequence[jax.Array],
    guide_embeddings: Sequence[jax.Array],
    *,
    temperature: float = 0.01,
    margin_strategy: MarginStrategy = "absolute",
    margin: float = 0.0,
    contrast_anchors: bool = True,
    contrast_positives: bool = True,
    gather_across_devices: bool = False,
    axis_name: Any = None,
) -> jax.Array:
    """Guided in-batch softmax cross-entropy.

    Args:
        embeddings: the model's (anchor, positive) or (anchor, positive, negative) columns, each [B, D].
        guide_embeddings: the guide's embeddings of the same columns, each [B, D_guide] (no gradient flows
            into them).
        temperature: logits are similarities / temperature.
        margin_strategy, margin: with g the guide's similarities and g+_i = g(anchor_i, positive_i), a
            candidate c is dropped from row i when g(i, c) > g+_i - margin ("absolute") or
            g(i, c) > g+_i - |g+_i| * margin ("relative"). The anchor's own positive is never dropped.
        contrast_anchors: add the anchor-anchor block s(a_i, a_j) (the diagonal too, unless dropped).
        contrast_positives: add the positive-positive block s(p_i, p_j).
        gather_across_devices: all_gather positives and negatives (and the guide's) over `axis_name`, so each
            device scores its anchors against the global batch (labels offset by axis_index * B), as
            sentence-transformers' `all_gather_with_grad`; the per-device value is that rank's loss.
        axis_name: the pmap / shard_map axis to gather over.
    Returns:
        with s the cosine similarity of the model's embeddings, and blocks [s(a, p) | s(a, a) | s(p, p) |
        s(a, n)] (the optional ones as selected), each entry dropped by the guide set to -inf,
        loss = mean_i CE(blocks_i / temperature, target = the column of p_i), a float32 scalar.
    """
    _check_options(margin_strategy, len(embeddings))
    if gather_across_devices and axis_name is None:
        raise ValueError(
            f"{LOSS_NAME}: gather_across_devices=True needs the axis_name of the pmap / shard_map axis."
        )
    if len(guide_embeddings) != len(embeddings):
        raise ValueError(
            f"{LOSS_NAME}: {len(embeddings)} model columns but {len(guide_embeddings)} guide columns; "
            "the guide must embed the same columns."
        )
    names = ("anchors", "positives", "negatives")
    arrays = dict(zip(names, embeddings, strict=False))
    guide_arrays = {f"guide_{name}": e for name, e in zip(names, guide_embeddings, strict=False)}
    check_rank(LOSS_NAME, {**arrays, **guide_arrays}, 2)
    batch_size = check_batch_size(LOSS_NAME, {**arrays, **guide_arrays})
    check_trailing_dim(LOSS_NAME, arrays)
    check_trailing_dim(LOSS_NAME, guide_arrays)

    anchor, positive, *negative = (e.astype(jnp.float32) for e in embeddings)
    anchor_guide, positive_guide, *negative_guide = (
        jax.lax.stop_gradient(e.astype(jnp.float32)) for e in guide_embeddings
    )
    local_positive, local_positive_guide = positive, positive_guide
    own_columns = jnp.arange(batch_size)
    if gather_across_devices:
        gather = lambda x: jax.lax.all_gather(x, axis_name, tiled=True)
        positive, positive_guide = gather(positive), gather(positive_guide)
        negative, negative_guide = [gather(x) for x in negative], [gather(x) for x in negative_guide]
        own_columns = own_columns + jax.lax.axis_index(axis_name) * batch_size

    guided_anchor_positive = _torch_cosine_matrix(anchor_guide, positive_guide)
    guided_positive = jnp.take_along_axis(guided_anchor_positive, own_columns[:, None], axis=1)
    if margin_strategy == "absolute":
        threshold = guided_positive - margin
    else:
        threshold = guided_positive - jnp.abs(guided_positive) * margin

    def drop_false_negatives(guided: jax.Array, similarities: jax.Array, keep: jax.Array | None = None):
        dropped = guided > threshold
        if keep is not None:
            dropped = dropped & ~keep
        return jnp.where(dropped, -jnp.inf, similarities)

    is_own_positive = jnp.arange(positive.shape[0])[None, :] == own_columns[:, None]
    blocks = [
        drop_false_negatives(
            guided_anchor_positive, _torch_cosine_matrix(anchor, positive), keep=is_own_positive
        )
    ]
    if contrast_anchors:
        guided = _torch_cosine_matrix(anchor_guide, anchor_guide)
        blocks.append(drop_false_negatives(guided, _torch_cosine_matrix(anchor, anchor)))
    if contrast_positives:
        guided = _torch_cosine_matrix(local_positive_guide, positive_guide)
        blocks.append(drop_false_negatives(guided, _torch_cosine_matrix(local_positive, positive)))
    for column, column_guide in zip(negative, negative_guide, strict=True):
        guided = _torch_cosine_matrix(anchor_guide, column_guide)
        blocks.append(drop_false_negatives(guided, _torch_cosine_matrix(anchor, column)))
    logits = jnp.concatenate(blocks, axis=1) / temperature
    return optax.softmax_cross_entropy_with_integer_labels(logits, own_columns).mean()


class GISTEmbedLoss(Loss):
    """sentence-transformers' GISTEmbedLoss on (anchor, positive[, negative]) columns; see `gist_embed_loss`.

    The guide is a second model, frozen. The fit loop embeds every text column with the guide too (no
    gradient, e.g. under `jax.lax.stop_gradient`, guide parameters never updated) and calls
    `compute(embeddings, labels, params, guide_embeddings=[one [B, D_guide] array per column])`.
    Where the guide's tokenizer differs from the model's, the guide tokenizes the texts itself.
    `axis_name` (default "data", jaxst's data-parallel axis) is used only with gather_across_devices=True.
    """

    min_texts = 2
    max_texts = 3

    def __init__(
        self,
        model: Any,
        guide: Any,
        temperature: float = 0.01,
        margin_strategy: MarginStrategy = "absolute",
        margin: float = 0.0,
        contrast_anchors: bool = True,
        contrast_positives: bool = True,
        gather_across_devices: bool = False,
        *,
        axis_name: Any = "data",
    ):
        _check_options(margin_strategy)
        super().__init__(
            model,
            temperature=temperature,
            margin_strategy=margin_strategy,
            margin=margin,
            contrast_anchors=contrast_anchors,
            contrast_positives=contrast_positives,
            gather_across_devices=gather_across_devices,
            axis_name=axis_name,
        )
        self.guide = guide

    def compute(
        self,
        embeddings: Sequence[jax.Array],
        labels: jax.Array | None,
        params: Any = None,
        *,
        guide_embeddings: Sequence[jax.Array],
    ) -> jax.Array:
        del labels, params
        return gist_embed_loss(embeddings, guide_embeddings, **self.hyperparameters)

    def get_config_dict(self) -> dict[str, Any]:
        """As sentence-transformers: the guide and the hyperparameters."""
        return {"guide": self.guide, **self.hyperparameters}
