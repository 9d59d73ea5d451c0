"""`evaluate` module: EgoMCQ inter-video and intra-video accuracy (Ego4D multiple-choice questions)."""

import datasets

from eva02at_hf.metrics import _evaluate, egomcq_accuracy

_DESCRIPTION = """\
Accuracy on EgoMCQ, the Ego4D multiple-choice benchmark introduced with EgoVLP: each question is a text query with
5 candidate clips and one correct answer; the prediction is the highest-scoring candidate (the first one on ties).
Accuracy is reported separately, in percent, for inter-video questions (type 1 in the annotation file: candidates
from different videos, the easy setting) and intra-video questions (type 2: candidates from the same video).
Same numbers as `eva02at_hf.metrics.egomcq_accuracy`.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (2-D array-like of `float`): one row per question, the score of each candidate clip.
    references (1-D array-like of `int`): index of the correct candidate of each question (`answer` in `egomcq.json`).
    types (1-D array-like of `int`): type of each question, 1 = inter-video, 2 = intra-video (`types` in `egomcq.json`).
        An input like `predictions` and `references`, so it is accumulated by `add_batch` as well.
    Arrays, torch tensors and nested lists are accepted. A single-process `compute` with all inputs passes them
    straight to the function (no Arrow round trip); `add_batch` accumulates through evaluate's Arrow cache.
Returns:
    `inter_video_accuracy`, `intra_video_accuracy` (`float`, percent; NaN for a type without questions).
Examples:
    >>> metric = evaluate.load("src/eva02at_hf/metrics/egomcq")  # or eva02at_hf.metrics.load("egomcq")
    >>> metric.compute(predictions=[[0.1, 0.9, 0.0, 0.0, 0.0], [0.5, 0.1, 0.2, 0.0, 0.0]], references=[1, 2],
    ...                types=[1, 2])
    {'inter_video_accuracy': 100.0, 'intra_video_accuracy': 0.0}
"""

_CITATION = """\
@inproceedings{lin2022egocentric,
  title={Egocentric Video-Language Pretraining},
  author={Lin, Kevin Qinghong and Wang, Jinpeng and Soldan, Mattia and Wray, Michael and Yan, Rui and Xu, Eric
    Zhongcong and Gao, Difei and Tu, Rong-Cheng and Zhao, Wenzhe and Kong, Weijie and others},
  booktitle={Advances in Neural Information Processing Systems},
  year={2022}
}
@inproceedings{grauman2022ego4d,
  title={Ego4D: Around the World in 3,000 Hours of Egocentric Video},
  author={Grauman, Kristen and Westbury, Andrew and Byrne, Eugene and Chavis, Zachary and Furnari, Antonino and
    Girdhar, Rohit and Hamburger, Jackson and Jiang, Hao and Liu, Miao and Liu, Xingyu and others},
  booktitle={Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition},
  pages={18995--19012},
  year={2022}
}
"""


class EgoMCQ(_evaluate.PackagedMetric):
    function = egomcq_accuracy
    input_features = {
        "predictions": datasets.Sequence(datasets.Value("float64")),
        "references": datasets.Value("int64"),
        "types": datasets.Value("int64"),
    }
    card = _evaluate.MetricCard(
        _DESCRIPTION,
        _KWARGS_DESCRIPTION,
        _CITATION,
        "https://ego4d-data.org/",
        "https://github.com/showlab/EgoVLP",
        "https://arxiv.org/abs/2206.01670",
    )
