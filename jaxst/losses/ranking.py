"""In-batch negatives ranking: MultipleNegativesRankingLoss (InfoNCE) and its symmetric form.

Data-parallel training: under `jax.pmap` / `shard_map` with a named axis, `gather_across_devices=True`
all_gathers the documents (and the queries where a direction needs them) from every device, and each
device scores its own anchors against the global candidates, with the right global label offsets
(`jax.lax.axis_index`). The value on each device is the mean over that device's anchors, so the mean of
the per-device values (`jax.lax.pmean`) is the loss of one device on the concatenated global batch.
The gradient of the per-device value w.r.t. that device's embeddings is, through the transpose of
all_gather (a sum over devices), `n_devices` times the gradient of that global loss; averaging the
parameter gradients over devices (`pmean`, as a data-parallel step does) therefore gives exactly the
gradient of the global-batch loss, as sentence-transformers' DDP path does. Without gathering, each
device scores only its own batch, and the same step optimises the mean of the per-device losses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import jax
import jax.numpy as jnp

from jaxst.losses.base import Loss
from jaxst.losses.checks import check_batch_size, check_rank, check_trailing_dim, resolve_similarity

Direction = Literal["query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc"]
PartitionMode = Literal["joint", "per_direction"]
HardnessMode = Literal["in_batch_negatives", "hard_negatives", "all_negatives"]
Similarity = Callable[[jax.Array, jax.Array], jax.Array]

DIRECTIONS = ("query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc")
HARDNESS_MODES = ("in_batch_negatives", "hard_negatives", "all_negatives")
LOSS_NAME = "multiple_negatives_ranking_loss"


def check_ranking_options(
    *,
    scale: float,
    similarity_fct: str | Similarity,
    directions: Sequence[str],
    partition_mode: str,
    hardness_mode: str | None,
    hardness_strength: float,
    gather_across_devices: bool,
    axis_name: Any,
) -> Similarity:
    """Raises ValueError on the options sentence-transformers refuses, and on gathering with no axis name.

    Returns the similarity function ([N, D], [M, D] -> [N, M]) that `similarity_fct` names or is.
    """
    if not scale > 0:
        raise ValueError(f"{LOSS_NAME}: scale must be positive, got {scale}.")
    unknown = [d for d in directions if d not in DIRECTIONS]
    if not directions or unknown:
        raise ValueError(
            f"{LOSS_NAME}: directions must be a non-empty subset of {DIRECTIONS}, got {directions}."
        )
    if "query_to_doc" not in directions:
        raise ValueError(
            f"{LOSS_NAME}: 'query_to_doc' must be among the directions (it holds the positive pair)."
        )
    if partition_mode not in ("joint", "per_direction"):
        raise ValueError(
            f"{LOSS_NAME}: partition_mode must be 'joint' or 'per_direction', got {partition_mode!r}."
        )
    if partition_mode == "per_direction" and {"query_to_query", "doc_to_doc"} & set(directions):
        raise ValueError(
            f"{LOSS_NAME}: partition_mode='per_direction' needs the positive pair among every direction's "
            "candidates; 'query_to_query' and 'doc_to_doc' never contain it. Use partition_mode='joint'."
        )
    if hardness_mode is not None and hardness_mode not in HARDNESS_MODES:
        raise ValueError(
            f"{LOSS_NAME}: hardness_mode must be None or one of {HARDNESS_MODES}, got {hardness_mode!r}."
        )
    if hardness_strength < 0:
        raise ValueError(f"{LOSS_NAME}: hardness_strength must be non-negative, got {hardness_strength}.")
    if gather_across_devices and axis_name is None:
        raise ValueError(f"{LOSS_NAME}: gather_across_devices=True needs the axis_name of the device axis.")
    return resolve_similarity(LOSS_NAME, similarity_fct, pairwise=False)


def _hardness_penalty(
    query_to_doc: jax.Array,
    same_row: jax.Array,
    batch_total: int,
    hardness_mode: str,
    hardness_strength: float,
) -> jax.Array:
    """hardness_strength * similarity (no gradient) on the penalised negatives, 0 elsewhere. [B, C]."""
    is_hard_negative_column = jnp.arange(query_to_doc.shape[1]) >= batch_total
    if hardness_mode == "hard_negatives":  # the anchor's own hard negatives
        penalised = same_row & is_hard_negative_column
    elif hardness_mode == "in_batch_negatives":  # every other row's positive and hard negatives
        penalised = ~same_row
    else:  # all_negatives: everything but the anchor's own positive
        penalised = ~(same_row & ~is_hard_negative_column)
    return jnp.where(penalised, hardness_strength * jax.lax.stop_gradient(query_to_doc), 0.0)


def multiple_negatives_ranking_loss(
    anchors: jax.Array,
    positives: jax.Array,
    negatives: jax.Array | None = None,
    *,
    scale: float = 20.0,
    similarity_fct: str | Similarity = "cosine",
    directions: Sequence[Direction] = ("query_to_doc",),
    partition_mode: PartitionMode = "joint",
    hardness_mode: HardnessMode | None = None,
    hardness_strength: float = 0.0,
    gather_across_devices: bool = False,
    axis_name: Any = None,
) -> jax.Array:
    """In-batch softmax cross-entropy: each anchor must pick its own positive among all the batch's documents.

    Candidates are the N positives followed by each column of hard negatives (N = B, or the global batch
    with gathering): C = N * (1 + K) documents. With s(., .) the similarity and i the anchor's global row,

        loss = mean_i( log Z_i - scale * s(a_i, p_i) )

    where, per direction (logits scaled by `scale`; penalties see below):
      query_to_doc:   s(a_i, d_c) for every candidate d_c;
      query_to_query: s(a_i, a_j) for every anchor j != i;
      doc_to_query:   s(p_i, a_j) for every anchor j (j = i included);
      doc_to_doc:     s(p_i, d_c) for every candidate not from row i.
    partition_mode "joint": log Z_i = logsumexp over the concatenated directions; "per_direction": the mean
    over directions of each direction's logsumexp. directions=("query_to_doc", "doc_to_query") with
    "per_direction" is the symmetric loss; all four directions, joint, is GTE's improved contrastive loss.

    hardness_mode adds hardness_strength * s(a_i, d_c) (no gradient) to the query_to_doc logits of:
    "hard_negatives": the anchor's own hard negatives; "in_batch_negatives": the other rows' documents;
    "all_negatives": every candidate but the anchor's positive.

    Args:
        anchors: [B, D] queries.
        positives: [B, D] the positive document of each anchor.
        negatives: [B, K, D] hard negatives, K >= 0 per anchor, or None.
        scale: inverse temperature (> 0).
        similarity_fct: "cosine", "dot", "euclidean", "manhattan" (`jaxst.similarity`) or a function
            [N, D], [M, D] -> [N, M].
        directions: which similarity blocks enter the partition function; must include "query_to_doc".
        partition_mode: "joint" or "per_direction" (the latter not with query_to_query / doc_to_doc).
        hardness_mode: None or one of HARDNESS_MODES; hardness_strength: its weight (>= 0).
        gather_across_devices: all_gather candidates (and anchors, where a direction uses them) over
            `axis_name`; see the module docstring for how values and gradients then scale.
        axis_name: the pmap / shard_map axis to gather over.

    Returns:
        Scalar float32, the mean over this device's anchors. Equal to sentence-transformers' value; with
        gathering, to its value on rank `axis_index`. Not implemented here: the cached (GradCache) variant
        (CachedMultipleNegativesRankingLoss), and the log warning for a hardness_mode with strength 0.
    """
    similarity = check_ranking_options(
        scale=scale,
        similarity_fct=similarity_fct,
        directions=directions,
        partition_mode=partition_mode,
        hardness_mode=hardness_mode,
        hardness_strength=hardness_strength,
        gather_across_devices=gather_across_devices,
        axis_name=axis_name,
    )
    arrays = {"anchors": anchors, "positives": positives}
    check_rank(LOSS_NAME, arrays, 2)
    if negatives is not None:
        check_rank(LOSS_NAME, {"negatives": negatives}, 3)
        arrays["negatives"] = negatives
    batch = check_batch_size(LOSS_NAME, arrays)
    check_trailing_dim(LOSS_NAME, arrays)

    anchors, positives = anchors.astype(jnp.float32), positives.astype(jnp.float32)
    documents = positives[:, None, :]
    if negatives is not None:
        documents = jnp.concatenate([documents, negatives.astype(jnp.float32)], axis=1)  # [B, 1 + K, D]
    queries = anchors
    own_rows = jnp.arange(batch)
    if gather_across_devices:
        documents = jax.lax.all_gather(documents, axis_name, tiled=True)
        if {"query_to_query", "doc_to_query"} & set(directions):
            queries = jax.lax.all_gather(anchors, axis_name, tiled=True)
        own_rows = own_rows + jax.lax.axis_index(axis_name) * batch
    batch_total = documents.shape[0]
    candidates = jnp.swapaxes(documents, 0, 1).reshape(-1, documents.shape[-1])  # positives, then negatives
    same_row = (jnp.arange(candidates.shape[0]) % batch_total)[None, :] == own_rows[:, None]  # [B, C]

    query_to_doc = similarity(anchors, candidates)
    logits = {"query_to_doc": scale * query_to_doc}
    if hardness_mode is not None and hardness_strength > 0:
        penalty = _hardness_penalty(query_to_doc, same_row, batch_total, hardness_mode, hardness_strength)
        logits["query_to_doc"] = logits["query_to_doc"] + penalty
    if "query_to_query" in directions:
        is_self = jnp.arange(queries.shape[0])[None, :] == own_rows[:, None]
        logits["query_to_query"] = jnp.where(is_self, -jnp.inf, scale * similarity(anchors, queries))
    if "doc_to_query" in directions:
        logits["doc_to_query"] = scale * similarity(queries, positives).T
    if "doc_to_doc" in directions:
        logits["doc_to_doc"] = jnp.where(same_row, -jnp.inf, scale * similarity(candidates, positives).T)

    positive_logits = jnp.take_along_axis(logits["query_to_doc"], own_rows[:, None], axis=1)[:, 0]
    if partition_mode == "joint":
        log_partition = jax.nn.logsumexp(jnp.concatenate(list(logits.values()), axis=1), axis=1)
    else:
        log_partition = jnp.mean(jnp.stack([jax.nn.logsumexp(v, axis=1) for v in logits.values()]), axis=0)
    return jnp.mean(log_partition - positive_logits)


def multiple_negatives_symmetric_ranking_loss(
    anchors: jax.Array,
    positives: jax.Array,
    negatives: jax.Array | None = None,
    *,
    scale: float = 20.0,
    similarity_fct: str | Similarity = "cosine",
    gather_across_devices: bool = False,
    axis_name: Any = None,
) -> jax.Array:
    """Symmetric InfoNCE: mean of anchor -> documents and positive -> anchors cross-entropies.

    `multiple_negatives_ranking_loss` with directions ("query_to_doc", "doc_to_query") and
    partition_mode "per_direction", as the deprecated MultipleNegativesSymmetricRankingLoss of ST:
        loss = mean_i( (lse_c(scale s(a_i, d_c)) + lse_j(scale s(p_i, a_j))) / 2 - scale s(a_i, p_i) )
    with lse = logsumexp over the candidates d_c (positives and hard negatives) and the anchors a_j.
    Shapes as `multiple_negatives_ranking_loss`.
    """
    return multiple_negatives_ranking_loss(
        anchors,
        positives,
        negatives,
        scale=scale,
        similarity_fct=similarity_fct,
        directions=("query_to_doc", "doc_to_query"),
        partition_mode="per_direction",
        gather_across_devices=gather_across_devices,
        axis_name=axis_name,
    )


def _split_columns(embeddings: Sequence[jax.Array]) -> tuple[jax.Array, jax.Array, jax.Array | None]:
    """(anchor, positive, negative_1, ...) columns -> anchors, positives [B, D], negatives [B, K, D]."""
    anchors, positives, *negative_columns = embeddings
    negatives = jnp.stack(negative_columns, axis=1) if negative_columns else None
    return anchors, positives, negatives


class MultipleNegativesRankingLoss(Loss):
    """MultipleNegativesRankingLoss of sentence-transformers, bound to a model; see the pure function.

    Columns: (anchor, positive, negative_1, ..., negative_K); labels are ignored. `axis_name` (default
    "data", the axis of jaxst's data-parallel step) is used only with gather_across_devices=True.
    """

    min_texts = 2
    max_texts = None
    needs_labels = False

    def __init__(
        self,
        model: Any,
        scale: float = 20.0,
        similarity_fct: str | Similarity = "cosine",
        gather_across_devices: bool = False,
        directions: Sequence[Direction] = ("query_to_doc",),
        partition_mode: PartitionMode = "joint",
        hardness_mode: HardnessMode | None = None,
        hardness_strength: float = 0.0,
        *,
        axis_name: Any = "data",
    ):
        super().__init__(
            model,
            scale=scale,
            similarity_fct=similarity_fct,
            gather_across_devices=gather_across_devices,
            directions=tuple(directions),
            partition_mode=partition_mode,
            hardness_mode=hardness_mode,
            hardness_strength=hardness_strength,
            axis_name=axis_name,
        )
        check_ranking_options(**self.hyperparameters)

    def compute(
        self, embeddings: Sequence[jax.Array], labels: jax.Array | None, params: Any = None
    ) -> jax.Array:
        return multiple_negatives_ranking_loss(*_split_columns(embeddings), **self.hyperparameters)


class MultipleNegativesSymmetricRankingLoss(MultipleNegativesRankingLoss):
    """MultipleNegativesSymmetricRankingLoss; see `multiple_negatives_symmetric_ranking_loss`."""

    def __init__(
        self,
        model: Any,
        scale: float = 20.0,
        similarity_fct: str | Similarity = "cosine",
        gather_across_devices: bool = False,
        *,
        axis_name: Any = "data",
    ):
        super().__init__(
            model,
            scale=scale,
            similarity_fct=similarity_fct,
            gather_across_devices=gather_across_devices,
            directions=("query_to_doc", "doc_to_query"),
            partition_mode="per_direction",
            axis_name=axis_name,
        )
