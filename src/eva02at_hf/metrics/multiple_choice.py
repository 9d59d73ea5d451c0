"""EgoMCQ (Ego4D multiple-choice questions, from EgoVLP): inter-video and intra-video accuracy.

Each question is a text query with candidate clips (5 in EgoMCQ) and one correct answer. The predicted answer is
the candidate with the highest score; on tied scores the first (lowest-index) maximal candidate is chosen, as
`torch.argmax` does in the reference evaluations. Accuracy is reported separately per question type, with the
type codes of the EgoMCQ annotation file (`egomcq.json`, field `types`):

- 1: inter-video, the five candidates come from different videos (the easy one, ~90 % for good models);
- 2: intra-video, the five candidates come from the same video.

A widely copied implementation enumerates the sorted type codes against the labels ["Intra-video",
"Inter-video"], swapping the two names; here code 1 is inter-video.
"""

from __future__ import annotations

import numpy as np

from ._inputs import ArrayLike, as_array, as_scores, nanmean_percent

INTER_VIDEO = 1
INTRA_VIDEO = 2


def egomcq_accuracy(scores: ArrayLike, answers: ArrayLike, types: ArrayLike) -> dict[str, float]:
    """EgoMCQ accuracy (in percent) for inter-video and intra-video questions.

    Args:
        scores: (questions, candidates) score of every candidate clip for every question.
        answers: (questions,) index of the correct candidate.
        types: (questions,) question type, 1 = inter-video, 2 = intra-video.

    Returns:
        `inter_video_accuracy`, `intra_video_accuracy`; NaN for a type with no question.
    """
    scores = as_scores(scores, "scores")
    answers, types = as_array(answers, "answers", 1), as_array(types, "types", 1)
    num_questions, num_candidates = scores.shape
    for name, value in (("answers", answers), ("types", types)):
        if value.shape[0] != num_questions:
            raise ValueError(
                f"`{name}` must have one entry per question ({num_questions}), got {value.shape[0]}"
            )
        if (value != np.round(value)).any():
            raise ValueError(f"`{name}` must hold integers")
    if ((answers < 0) | (answers >= num_candidates)).any():
        raise ValueError(f"`answers` must be candidate indices in [0, {num_candidates - 1}]")
    if not np.isin(types, (INTER_VIDEO, INTRA_VIDEO)).all():
        raise ValueError(f"`types` must be {INTER_VIDEO} (inter-video) or {INTRA_VIDEO} (intra-video)")

    correct = (scores.argmax(axis=1) == answers).astype(np.float64)
    return {
        "inter_video_accuracy": nanmean_percent(correct[types == INTER_VIDEO]),
        "intra_video_accuracy": nanmean_percent(correct[types == INTRA_VIDEO]),
    }
