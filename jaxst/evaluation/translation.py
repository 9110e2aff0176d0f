"""Translation matching: is each sentence's nearest neighbour in the other language its translation?"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from jaxst.evaluation.base import EmbeddingEvaluator
from jaxst.evaluation.pairwise import check_same_length
from jaxst.similarity import cos_sim

logger = logging.getLogger(__name__)


class TranslationEvaluator(EmbeddingEvaluator):
    """Accuracy of cosine nearest-neighbour matching between parallel sentences, in both directions.

    With S = cos_sim(embed(source), embed(target)) [N, N], source i counts as matched when the target at
    `argmax_j S[i, j]` (the first of equal maxima) has the same text as target i (so duplicated targets
    are interchangeable); target j likewise with `argmax_i S[i, j]`. Metrics: `src2trg_accuracy`,
    `trg2src_accuracy` and their mean `mean_accuracy`, the primary metric.

    Args:
        source_sentences: sentences in one language.
        target_sentences: their translations, aligned with source_sentences.
        show_progress_bar: passed to encode (None: on at INFO logging).
        batch_size: encoding batch size.
        name: prefix of the metric keys and part of `translation_evaluation[_{name}]_results.csv`.
        print_wrong_matches: print every source whose best match is wrong, with its five best targets.
        write_csv: append both accuracies to the CSV file under output_path.
        truncate_dim: keep the first `truncate_dim` embedding dimensions.
    """

    log_title = "Evaluating translation matching Accuracy of the model"
    csv_kind = "translation_evaluation"

    def __init__(
        self,
        source_sentences: Sequence[str],
        target_sentences: Sequence[str],
        show_progress_bar: bool | None = False,
        batch_size: int = 16,
        name: str = "",
        print_wrong_matches: bool = False,
        write_csv: bool = True,
        truncate_dim: int | None = None,
    ) -> None:
        check_same_length(source_sentences=source_sentences, target_sentences=target_sentences)
        if len(source_sentences) == 0:
            raise ValueError("source_sentences and target_sentences are empty: there is nothing to match.")
        super().__init__(name, batch_size, show_progress_bar, write_csv, truncate_dim)
        self.source_sentences = source_sentences
        self.target_sentences = target_sentences
        self.print_wrong_matches = print_wrong_matches
        self.primary_metric = "mean_accuracy"

    def csv_columns(self) -> list[str]:
        return ["src2trg", "trg2src"]

    def compute(self, model, output_path: str | None) -> tuple[dict[str, float], list]:
        source = self.embed_inputs(model, self.source_sentences)
        target = self.embed_inputs(model, self.target_sentences)
        similarity = np.asarray(cos_sim(source, target))
        best_targets, best_sources = similarity.argmax(axis=1), similarity.argmax(axis=0)
        src2trg = self._matched(self.target_sentences, best_targets)
        trg2src = self._matched(self.source_sentences, best_sources)
        if self.print_wrong_matches:
            self._print_wrong_matches(similarity, src2trg)
        src2trg_accuracy, trg2src_accuracy = float(src2trg.mean()), float(trg2src.mean())
        logger.info(f"Accuracy src2trg: {src2trg_accuracy * 100:.2f}")
        logger.info(f"Accuracy trg2src: {trg2src_accuracy * 100:.2f}")
        metrics = {
            "src2trg_accuracy": src2trg_accuracy,
            "trg2src_accuracy": trg2src_accuracy,
            "mean_accuracy": (src2trg_accuracy + trg2src_accuracy) / 2,
        }
        return metrics, [src2trg_accuracy, trg2src_accuracy]

    @staticmethod
    def _matched(sentences: Sequence[str], best: np.ndarray) -> np.ndarray:
        """[N] bool: whether sentences[best[i]] is the same text as sentences[i]."""
        return np.array([sentences[j] == sentences[i] for i, j in enumerate(best.tolist())])

    def _print_wrong_matches(self, similarity: np.ndarray, src2trg: np.ndarray) -> None:
        for i in np.flatnonzero(~src2trg).tolist():
            best = int(similarity[i].argmax())
            print(f"\nIncorrect  : Source {i} is most similar to target {best} instead of target {i}")
            print("Source     :", self.source_sentences[i])
            print("Pred Target:", self.target_sentences[best], f"(Score: {similarity[i, best]:.4f})")
            print("True Target:", self.target_sentences[i], f"(Score: {similarity[i, i]:.4f})")
            for j in np.argsort(-similarity[i], kind="stable")[:5].tolist():
                print("\t", j, f"(Score: {similarity[i, j]:.4f})", self.target_sentences[j])
