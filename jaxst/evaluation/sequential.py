"""Run several evaluators one after the other and merge their metrics."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from jaxst.evaluation.base import BaseEvaluator


def last_score(scores: list[float]) -> float:
    """The default main score of a SequentialEvaluator: that of the last evaluator."""
    return scores[-1]


class SequentialEvaluator(BaseEvaluator):
    """Call every evaluator with the same arguments; return all their metrics plus "sequential_score".

    Each evaluator contributes its primary metric (or its first metric; a bare float result counts as
    `evaluator_{i}`) to the list passed to `main_score_function`, whose result is "sequential_score",
    the primary metric.

    Args:
        evaluators: the evaluators, called in order.
        main_score_function: list of scores -> main score; default: the last score.
    """

    def __init__(
        self,
        evaluators: Iterable[BaseEvaluator],
        main_score_function: Callable[[list[float]], float] = last_score,
    ) -> None:
        super().__init__()
        self.evaluators = list(evaluators)
        self.main_score_function = main_score_function

    def __call__(
        self, model, output_path: str | None = None, epoch: int = -1, steps: int = -1
    ) -> dict[str, float]:
        results: dict[str, float] = {}
        scores = []
        for index, evaluator in enumerate(self.evaluators):
            evaluation = evaluator(model, output_path, epoch, steps)
            if not isinstance(evaluation, dict):
                scores.append(evaluation)
                evaluation = {f"evaluator_{index}": evaluation}
            elif getattr(evaluator, "primary_metric", None) is not None:
                scores.append(evaluation[evaluator.primary_metric])
            else:
                scores.append(next(iter(evaluation.values())))
            results.update(evaluation)
        self.primary_metric = "sequential_score"
        results["sequential_score"] = self.main_score_function(scores) if scores else 0.0
        return results
