"""The pairs ContrastiveTensionLoss trains on: sentence-transformers' ContrastiveTensionDataLoader.

From plain sentences, batches of (a, b, label) pairs in which the first of every pos_neg_ratio pairs is a
sentence with itself (label 1) and the others two different sentences (label 0).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from jaxst.training.data import DataLoader, InputExample


def contrastive_tension_examples(
    sentences: Sequence[str], *, pos_neg_ratio: int = 8, seed: int | Sequence[int] = 0
) -> list[InputExample]:
    """One epoch of ContrastiveTensionLoss pairs, arranged as sentence-transformers'
    ContrastiveTensionDataLoader arranges them.

    The sentences are shuffled (`np.random.default_rng(seed)`), then taken in order: example i is
    (s, s) with label 1 when i % pos_neg_ratio == 0, else (s, s') with label 0, s' the next sentence.
    Consecutive batches of a multiple of pos_neg_ratio examples then hold one positive pair per
    pos_neg_ratio pairs, as sentence-transformers' do.

    Returns:
        as many examples as the sentences fill: each positive pair uses one sentence, each negative two.
    """
    if isinstance(pos_neg_ratio, bool) or not isinstance(pos_neg_ratio, int) or pos_neg_ratio < 1:
        raise ValueError(f"pos_neg_ratio must be a positive integer, got {pos_neg_ratio!r}.")
    order = np.random.default_rng(seed).permutation(len(sentences))
    remaining = iter([sentences[i] for i in order])
    examples = []
    for index in itertools.count():
        positive = index % pos_neg_ratio == 0
        pair = list(itertools.islice(remaining, 1 if positive else 2))
        if len(pair) < (1 if positive else 2):
            break
        texts = [pair[0], pair[0]] if positive else pair
        examples.append(InputExample(texts=texts, label=int(positive)))
    if not examples:
        raise ValueError("contrastive_tension_examples needs at least one sentence.")
    return examples


class ContrastiveTensionDataLoader(DataLoader):
    """sentence-transformers' ContrastiveTensionDataLoader, a jaxst DataLoader for `fit`.

    Every epoch pairs the sentences anew (`contrastive_tension_examples` with the seed [seed, epoch]) and
    yields only full batches of `batch_size` pairs, in order; as sentence-transformers', there are
    len(sentences) // (2 * batch_size - batch_size // pos_neg_ratio) batches per epoch. Its draw is a
    function of `seed` (None draws one), where sentence-transformers' uses Python's global `random`.

    Raises:
        ValueError: batch_size not divisible by pos_neg_ratio, or too few sentences for one batch.
    """

    def __init__(
        self, sentences: Sequence[str], batch_size: int, pos_neg_ratio: int = 8, *, seed: int | None = None
    ) -> None:
        if isinstance(batch_size, int) and isinstance(pos_neg_ratio, int) and batch_size % pos_neg_ratio:
            raise ValueError(
                f"ContrastiveTensionDataLoader was given pos_neg_ratio {pos_neg_ratio} and batch size "
                f"{batch_size}: the batch size must be divisible by pos_neg_ratio."
            )
        self.sentences = list(sentences)
        self.pos_neg_ratio = pos_neg_ratio
        examples = contrastive_tension_examples(self.sentences, pos_neg_ratio=pos_neg_ratio)
        super().__init__(examples, batch_size=batch_size, shuffle=False, drop_last=True, seed=seed)
        self._examples = self._pairs(0)

    def _pairs(self, epoch: int) -> list[InputExample]:
        return contrastive_tension_examples(
            self.sentences, pos_neg_ratio=self.pos_neg_ratio, seed=[self.seed, epoch]
        )

    def _epoch_plan(self, epoch: int) -> list[np.ndarray]:
        """The epoch's own pairs (made here), batched in order."""
        self._examples = self._pairs(epoch)
        return super()._epoch_plan(epoch)
