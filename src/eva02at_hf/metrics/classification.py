"""Charades-Ego action recognition as video-to-text retrieval: mAP over classes (standard Charades evaluation).

This is the definition of `charades_map` in the Charades starter code (gsig/charades-algorithms): videos without
any positive label get score -inf for every class (they sink to the bottom of every ranking); for every class,
videos are ranked by descending score and AP = (1 / P) * sum over the ranks k of the P positives of precision@k
(positives among the first k, divided by k). A class without a positive has AP NaN there and is skipped here
(NaN-mean, as in the copies used by egocentric video-language code bases; the starter code's plain mean would make
the whole mAP NaN). Ties in score are broken by a stable sort (lower video index first); the reference's unstable
sort leaves them unspecified.
"""

from __future__ import annotations

import numpy as np

from ._inputs import (
    ArrayLike,
    as_array,
    as_scores,
    check_same_shape,
    nanmean_percent,
    stable_descending_order,
)


def average_precision_per_class(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """AP of every class (column) of `scores` (videos, classes) against binary `targets` -> (classes,) float64.

    NaN for a class without positive.
    """
    order = stable_descending_order(scores.T)
    positives = np.take_along_axis(np.ascontiguousarray(targets.T), order, axis=1) == 1
    precision = np.cumsum(positives, axis=1) / np.arange(1, scores.shape[0] + 1, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.add.reduce(precision, axis=1, where=positives) / positives.sum(axis=1)


def charades_ego_map(scores: ArrayLike, targets: ArrayLike) -> dict[str, float]:
    """Charades-Ego mAP (in percent) over the classes that have at least one positive.

    Args:
        scores: (videos, classes) scores, e.g. video x class-prompt similarities (157 classes).
        targets: (videos, classes) multi-label ground truth, 1 for a positive, 0 otherwise.

    Returns:
        `mAP`; NaN when no class has a positive.
    """
    scores = as_scores(scores, "scores")
    targets = as_array(targets, "targets", 2)
    check_same_shape(scores, "scores", targets, "targets")
    if ((targets != 0) & (targets != 1)).any():
        raise ValueError("`targets` must be binary (0 or 1)")
    unlabelled = ~targets.any(axis=1)
    scores = np.where(unlabelled[:, None], -np.inf, scores).astype(scores.dtype, copy=False)
    return {"mAP": nanmean_percent(average_precision_per_class(scores, targets))}
