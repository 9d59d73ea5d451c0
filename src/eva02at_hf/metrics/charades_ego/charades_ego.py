"""`evaluate` module: Charades-Ego action recognition mAP (standard Charades evaluation)."""

import datasets

from eva02at_hf.metrics import _evaluate, charades_ego_map

_DESCRIPTION = """\
Mean average precision over the Charades-Ego action classes (157), in percent, with the action recognition task
treated as video-to-text retrieval (scores are video x class-prompt similarities). Standard Charades evaluation:
videos without any positive label are ranked last for every class, per-class AP averages the precision at the rank
of each positive, and classes without a positive are skipped. Ties in score are broken by a stable sort (lower
video index first). Same numbers as `eva02at_hf.metrics.charades_ego_map`.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (2-D array-like of `float`): one row per video, the score of every class.
    references (2-D array-like of `int`): one row per video, 1 for each class present in the video, else 0.
    Arrays, torch tensors and nested lists are accepted. A single-process `compute` with all inputs passes them
    straight to the function (no Arrow round trip); `add_batch` accumulates through evaluate's Arrow cache.
Returns:
    `mAP` (`float`, percent; NaN when no class has a positive).
Examples:
    >>> metric = evaluate.load("src/eva02at_hf/metrics/charades_ego")  # or eva02at_hf.metrics.load("charades_ego")
    >>> metric.compute(predictions=[[0.9, 0.1], [0.2, 0.8]], references=[[1, 0], [0, 1]])
    {'mAP': 100.0}
"""

_CITATION = """\
@article{sigurdsson2018charadesego,
  title={Charades-Ego: A Large-Scale Dataset of Paired Third and First Person Videos},
  author={Sigurdsson, Gunnar A. and Gupta, Abhinav and Schmid, Cordelia and Farhadi, Ali and Alahari, Karteek},
  journal={arXiv preprint arXiv:1804.09626},
  year={2018}
}
"""


class CharadesEgo(_evaluate.PackagedMetric):
    function = charades_ego_map
    input_features = {
        "predictions": datasets.Sequence(datasets.Value("float64")),
        "references": datasets.Sequence(datasets.Value("int64")),
    }
    card = _evaluate.MetricCard(
        _DESCRIPTION,
        _KWARGS_DESCRIPTION,
        _CITATION,
        "https://prior.allenai.org/projects/charades-ego",
        "https://github.com/gsig/charades-algorithms",
        "https://arxiv.org/abs/1804.09626",
    )
