"""The two layouts of a training batch, padded and packed: typed pytrees that know their device-split axes.

A training batch holds k text columns of B examples (text (j, i) is column j of example i), the labels of
the examples and, for a loss with a guide model, the guide's embeddings of every text. Its texts are laid
out in one of two ways:

- `PaddedBatch`: every text padded to T tokens, a bucket length (`jaxst.buckets`) that holds the longest.
- `PackedBatch`: the texts laid end to end in rows of P tokens (`jaxst.packing`), each token attending only
  to its own text; `token_index` gathers every text's tokens back into the padded layout, so that pooling
  and the losses see the same arrays as for a padded batch (P in place of T).

The arrays, int32 but for labels and guide embeddings, and the axis each one splits along over D devices
(device d gets examples d * b ... (d + 1) * b - 1, b = B / D, with all k texts of each, and its R rows):

    array                  shape           split axis  holds
    PaddedBatch
    input_ids              [k, B, T]       1           token ids, the tokenizer's padding id past a text
    attention_mask         [k, B, T]       1           1 for a text's tokens, 0 for padding
    token_type_ids         [k, B, T]       1           segment ids (None for models without them)
    PackedBatch
    packed_input_ids       [D * R, P]      0           token ids, the padding id past the texts of a row;
                                                       device d's texts fill rows d * R ... (d + 1) * R - 1
    packed_segment_ids     [D * R, P]      0           a number > 0 for each text of a row (its start + 1),
                                                       0 for padding
    packed_position_ids    [D * R, P]      0           each token's index within its text (0 for padding)
    packed_token_type_ids  [D * R, P]      0           segment ids (None for models without them)
    token_index            [k, B, P]       1           text (j, i)'s tokens as indices into its device's
                                                       rows flattened (R * P), 0 past the text's end
    attention_mask         [k, B, P]       1           1 for text (j, i)'s tokens
    both
    labels                 [B] or [B, ...] 0           float32 or int32 (None for losses without labels)
    guide_embeddings       [k, B, D_g]     1           float32, the guide's embeddings (None without one)

Each device's slice has the same layout with b examples and R rows. `texts()` flattens the text axes
(k, B), column after column, into the N = k * B texts that `SentenceTransformer.forward` embeds.

Outside the compiled step a batch also travels as named arrays, a dict from these field names to host
arrays, as `jaxst.packing.pack` and `jaxst.training.batching` return it; `as_batch` reads named arrays as
the layout they spell. (`SentenceTransformer.tokenize` returns N padded texts so, [N, T].)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Self

import jax
import jax.numpy as jnp
from flax import struct

# forward(model_params, texts, *, dropout_rng=None, output_hidden_states=False) -> {"sentence_embedding":
# [N, D], ...}: texts are padded token arrays {name: [N, T]} or a PackedBatch of N texts (`texts()`).
Forward = Callable[..., dict[str, jax.Array]]


def split_along(axis: int, **kwargs: Any) -> Any:
    """A dataclass field of an array that splits over devices along `axis`."""
    return struct.field(metadata={"split_axis": axis}, **kwargs)


class SplitAxes:
    """The `split_axes` of a layout, read from its fields' metadata."""

    def split_axes(self) -> Self:
        """The same pytree with each array replaced by the axis it splits along (see the module docstring)."""
        axes = {
            field.name: None if getattr(self, field.name) is None else field.metadata["split_axis"]
            for field in dataclasses.fields(self)
        }
        return self.replace(**axes)


@struct.dataclass
class PaddedBatch(SplitAxes):
    """k columns of B texts, each padded to T tokens (arrays and axes in the module docstring)."""

    input_ids: jax.Array = split_along(1)
    attention_mask: jax.Array = split_along(1)
    token_type_ids: jax.Array | None = split_along(1, default=None)
    labels: jax.Array | None = split_along(0, default=None)
    guide_embeddings: jax.Array | None = split_along(1, default=None)

    def texts(self) -> dict[str, jax.Array]:
        """The k * B texts as `SentenceTransformer.forward` takes them: token arrays [N, T], column after
        column."""
        tokens = {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "token_type_ids": self.token_type_ids,
        }
        return {name: x.reshape(-1, x.shape[-1]) for name, x in tokens.items() if x is not None}


@struct.dataclass
class PackedBatch(SplitAxes):
    """k columns of B texts laid end to end in rows of P tokens (arrays and axes in the module docstring)."""

    packed_input_ids: jax.Array = split_along(0)
    packed_segment_ids: jax.Array = split_along(0)
    packed_position_ids: jax.Array = split_along(0)
    token_index: jax.Array = split_along(1)
    attention_mask: jax.Array = split_along(1)
    packed_token_type_ids: jax.Array | None = split_along(0, default=None)
    labels: jax.Array | None = split_along(0, default=None)
    guide_embeddings: jax.Array | None = split_along(1, default=None)

    def texts(self) -> PackedBatch:
        """The rows and the k * B texts they hold, as `SentenceTransformer.forward` takes them:
        token_index and attention_mask [N, P], column after column (no labels or guide embeddings)."""
        return self.replace(
            token_index=self.token_index.reshape(-1, self.token_index.shape[-1]),
            attention_mask=self.attention_mask.reshape(-1, self.attention_mask.shape[-1]),
            labels=None,
            guide_embeddings=None,
        )

    def unpack(self, rows: jax.Array) -> jax.Array:
        """An output of the rows [R, P, H] -> that of each text [N, P, H] (token_index [N, P], see `texts`),
        zero past a text's end, as a padded batch of the same texts lays it out."""
        tokens = jnp.take(rows.reshape(-1, rows.shape[-1]), self.token_index, axis=0)
        return jnp.where(self.attention_mask[..., None] != 0, tokens, jnp.zeros((), tokens.dtype))


TrainingBatch = PaddedBatch | PackedBatch


def as_packed(texts: Mapping[str, Any] | PackedBatch) -> PackedBatch | None:
    """`texts` as a PackedBatch: itself, or named arrays that hold packed rows ("packed_input_ids");
    None for padded token arrays."""
    if isinstance(texts, PackedBatch):
        return texts
    return PackedBatch(**texts) if "packed_input_ids" in texts else None


def as_batch(batch: Mapping[str, Any] | TrainingBatch) -> TrainingBatch:
    """`batch` as its layout: a layout as it is, named arrays as the PackedBatch or PaddedBatch they spell.

    Raises:
        TypeError: for a name that is no field of the layout (or a missing array it needs).
    """
    if isinstance(batch, PaddedBatch):
        return batch
    packed = as_packed(batch)
    return PaddedBatch(**batch) if packed is None else packed
