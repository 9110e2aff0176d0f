"""Threshold search and binary-classification metrics, as sentence-transformers and scikit-learn compute them.

Vectorized forms of sentence-transformers' `BinaryClassificationEvaluator.find_best_*_and_threshold`
loops and of scikit-learn's `average_precision_score` / `matthews_corrcoef` (binary case), giving the same
numbers without a scikit-learn dependency. Scores are sorted from most to least similar; a threshold is
only considered between groups of equal scores.
"""

from __future__ import annotations

import numpy as np


def _sorted_groups(
    scores: np.ndarray, labels: np.ndarray, high_score_more_similar: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores and labels from most to least similar, and the positions that end a group of equal scores."""
    order = np.argsort(-scores if high_score_more_similar else scores, kind="stable")
    sorted_scores, sorted_labels = scores[order], labels[order]
    group_ends = np.flatnonzero(np.append(sorted_scores[1:] != sorted_scores[:-1], True))
    return sorted_scores, sorted_labels, group_ends


def _threshold_after(sorted_scores: np.ndarray, position: int):
    """Midpoint between the score at `position` and the next (in the scores' dtype); the score itself at the
    end, or where the rounded midpoint equals the next score."""
    if position == len(sorted_scores) - 1:
        return sorted_scores[position]
    midpoint = (sorted_scores[position] + sorted_scores[position + 1]) / 2
    return sorted_scores[position] if midpoint == sorted_scores[position + 1] else midpoint


def find_best_acc_and_threshold(scores, labels, high_score_more_similar: bool) -> tuple[float, float]:
    """Best accuracy of `score >= t` (or `<= t`) as "similar", and that threshold t.

    Starts from predicting every pair dissimilar (threshold just past the most similar score); a later
    threshold wins only with a strictly higher accuracy.
    """
    scores, labels = np.asarray(scores), np.asarray(labels)
    if len(scores) != len(labels):
        raise ValueError(f"Got {len(scores)} scores but {len(labels)} labels.")
    if len(scores) == 0:
        return 0, -1
    sorted_scores, sorted_labels, group_ends = _sorted_groups(scores, labels, high_score_more_similar)
    n, negatives = len(labels), int(np.sum(labels == 0))
    correct = np.cumsum(sorted_labels == 1) + negatives - np.cumsum(sorted_labels != 1)
    accuracies = correct[group_ends] / n
    best = int(np.argmax(accuracies))
    if accuracies[best] > negatives / n:
        return accuracies[best], _threshold_after(sorted_scores, group_ends[best])
    score_dtype = np.result_type(scores.dtype, np.float16)
    direction = np.inf if high_score_more_similar else -np.inf
    return negatives / n, np.nextafter(sorted_scores[0], direction, dtype=score_dtype)


def find_best_f1_and_threshold(
    scores, labels, high_score_more_similar: bool
) -> tuple[float, float, float, float]:
    """Best F1 of `score >= t` (or `<= t`) as "similar": (f1, precision, recall, threshold); zeros if none."""
    scores, labels = np.asarray(scores), np.asarray(labels)
    if len(scores) != len(labels):
        raise ValueError(f"Got {len(scores)} scores but {len(labels)} labels.")
    if len(scores) == 0:
        return 0, 0, 0, 0
    sorted_scores, sorted_labels, group_ends = _sorted_groups(scores, labels, high_score_more_similar)
    extracted = group_ends + 1
    correct = np.cumsum(sorted_labels == 1)[group_ends]
    valid = correct > 0
    if not valid.any():
        return 0, 0, 0, 0
    precision = correct[valid] / extracted[valid]
    recall = correct[valid] / np.sum(labels)
    f1 = 2 * precision * recall / (precision + recall)
    best = int(np.argmax(f1))
    threshold = _threshold_after(sorted_scores, group_ends[valid][best])
    return f1[best], precision[best], recall[best], threshold


def average_precision(labels, scores) -> float:
    """Area under the precision-recall curve as a step sum (scikit-learn's `average_precision_score`).

    AP = sum_i (R_i - R_{i-1}) P_i over the distinct scores from highest to lowest, R_{-1} = 0.
    """
    labels, scores = np.asarray(labels), np.asarray(scores)
    sorted_scores, sorted_labels, group_ends = _sorted_groups(scores, labels, True)
    true_positives = np.cumsum(sorted_labels, dtype=np.float64)[group_ends]
    precision = true_positives / (group_ends + 1)
    recall = true_positives / true_positives[-1] if true_positives[-1] else np.ones_like(true_positives)
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def matthews_corrcoef(labels, predictions) -> float:
    """Matthews correlation of binary labels and predictions (scikit-learn's formula; 0 if undefined).

    MCC = (c n - t.p) / sqrt((n^2 - p.p)(n^2 - t.t)), with c correct predictions, n samples, and t, p the
    per-class counts of labels and predictions.
    """
    labels, predictions = np.asarray(labels).astype(bool), np.asarray(predictions).astype(bool)
    n = float(len(labels))
    true_counts = np.array([np.sum(~labels), np.sum(labels)], dtype=np.float64)
    predicted_counts = np.array([np.sum(~predictions), np.sum(predictions)], dtype=np.float64)
    correct = float(np.sum(labels == predictions))
    cov_true_predicted = correct * n - np.dot(true_counts, predicted_counts)
    cov_predicted = n**2 - np.dot(predicted_counts, predicted_counts)
    cov_true = n**2 - np.dot(true_counts, true_counts)
    if cov_predicted * cov_true == 0:
        return 0.0
    return float(cov_true_predicted / np.sqrt(cov_true * cov_predicted))
