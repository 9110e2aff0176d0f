"""Mean squared error between a teacher's and a student's embeddings (knowledge distillation)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from jaxst.evaluation.base import EmbeddingEvaluator

logger = logging.getLogger(__name__)


class MSEEvaluator(EmbeddingEvaluator):
    """`negative_mse = -100 * mean((teacher.encode(source) - student.encode(target)) ** 2)`.

    The teacher embeds `source_sentences` once, at construction; each call embeds `target_sentences`
    with the evaluated model. primary_metric: "negative_mse" (higher is better).

    Args:
        source_sentences: sentences for the teacher.
        target_sentences: sentences for the student, aligned with source_sentences.
        teacher_model: model with `encode`.
        show_progress_bar: passed to encode (None: on at INFO logging).
        batch_size: encoding batch size.
        name: prefix of the metric key and part of `mse_evaluation_{name}_results.csv`.
        write_csv: append the MSE (x100) to the CSV file under output_path.
        truncate_dim: keep the first `truncate_dim` embedding dimensions (teacher and student).

    Raises:
        ValueError: no teacher_model, source and target lengths differ, or the student's embeddings
            do not have the teacher's shape.
    """

    log_title = "MSE evaluation (lower = better)"
    csv_kind = "mse_evaluation"

    def __init__(
        self,
        source_sentences: Sequence[str],
        target_sentences: Sequence[str],
        teacher_model=None,
        show_progress_bar: bool | None = False,
        batch_size: int = 32,
        name: str = "",
        write_csv: bool = True,
        truncate_dim: int | None = None,
    ) -> None:
        if teacher_model is None:
            raise ValueError("MSEEvaluator needs a teacher_model to embed the source sentences.")
        if len(source_sentences) != len(target_sentences):
            raise ValueError(
                f"source_sentences ({len(source_sentences)}) and target_sentences ({len(target_sentences)}) "
                "must have the same length."
            )
        super().__init__(name, batch_size, show_progress_bar, write_csv, truncate_dim)
        self.target_sentences = target_sentences
        self.primary_metric = "negative_mse"
        self.source_embeddings = self.embed_inputs(teacher_model, source_sentences)

    @property
    def csv_file(self) -> str:
        """`mse_evaluation_{name}_results.csv`: with two underscores when name is empty, as in
        sentence-transformers."""
        return f"{self.csv_kind}_{self.name}_results.csv"

    def csv_columns(self) -> list[str]:
        return ["MSE"]

    def compute(self, model, output_path: str | None) -> tuple[dict[str, float], list]:
        target_embeddings = self.embed_inputs(model, self.target_sentences)
        if target_embeddings.shape != self.source_embeddings.shape:
            raise ValueError(
                f"The student's embeddings have shape {target_embeddings.shape} but the teacher's have shape "
                f"{self.source_embeddings.shape}; their dimensions must match (truncate_dim can cut both)."
            )
        mse = float(((self.source_embeddings - target_embeddings) ** 2).mean() * 100)
        logger.info(f"MSE (*100):\t{mse:4f}")
        return {"negative_mse": -mse}, [mse]
