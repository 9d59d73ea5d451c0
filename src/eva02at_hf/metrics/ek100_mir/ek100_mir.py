"""`evaluate` module: EPIC-KITCHENS-100 multi-instance retrieval mAP and nDCG (official challenge definitions)."""

import datasets

from eva02at_hf.metrics import _evaluate, ek100_mir

_DESCRIPTION = """\
Mean average precision (mAP) and normalised discounted cumulative gain (nDCG) of the EPIC-KITCHENS-100
multi-instance retrieval challenge, for video-to-text (each video a query over the text queries), text-to-video
(each text query over the videos) and their average, in percent. Definitions of the official evaluation: AP uses
the cumulative sum of the soft relevancies as the precision term, scored only at ranks holding an item of relevancy
exactly 1, divided by the number of such items; nDCG truncates the DCG of each query to as many ranks as it has
items of non-zero relevancy. Ties in similarity are broken by a stable sort (lower index first); queries for which
AP or nDCG is 0/0 are left out of that mean. Same numbers as `eva02at_hf.metrics.ek100_mir`.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (2-D array-like of `float`): one row per video, the similarity of that video to every text query
        (9668 rows of 3842 values on the EK-100 test split).
    references (2-D array-like of `float`): one row per video, the relevancy in [0, 1] of every text query to
        that video (the rows of the official `caption_relevancy_EPIC_100_retrieval_test.pkl`, which
        `eva02at_hf.metrics.load_relevancy_pickle` reads safely).
    Arrays, torch tensors and nested lists are accepted. A single-process `compute` with all inputs passes them
    straight to the function (no Arrow round trip); `add_batch` accumulates through evaluate's Arrow cache.
Returns:
    `mAP_v2t`, `mAP_t2v`, `mAP_avg`, `nDCG_v2t`, `nDCG_t2v`, `nDCG_avg` (`float`, percent).
Examples:
    >>> metric = evaluate.load("src/eva02at_hf/metrics/ek100_mir")  # or eva02at_hf.metrics.load("ek100_mir")
    >>> results = metric.compute(predictions=[[0.9, 0.1], [0.2, 0.8]], references=[[1.0, 0.0], [0.0, 1.0]])
    >>> results["mAP_avg"], results["nDCG_avg"]
    (100.0, 100.0)
"""

_CITATION = """\
@article{damen2022rescaling,
  title={Rescaling Egocentric Vision: Collection, Pipeline and Challenges for EPIC-KITCHENS-100},
  author={Damen, Dima and Doughty, Hazel and Farinella, Giovanni Maria and Furnari, Antonino and Kazakos,
    Evangelos and Ma, Jian and Moltisanti, Davide and Munro, Jonathan and Perrett, Toby and Price, Will and
    Wray, Michael},
  journal={International Journal of Computer Vision},
  year={2022}
}
"""


class EK100MIR(_evaluate.PackagedMetric):
    function = ek100_mir
    input_features = {
        "predictions": datasets.Sequence(datasets.Value("float64")),
        "references": datasets.Sequence(datasets.Value("float64")),
    }
    card = _evaluate.MetricCard(
        _DESCRIPTION,
        _KWARGS_DESCRIPTION,
        _CITATION,
        "https://epic-kitchens.github.io/",
        "https://github.com/epic-kitchens/C5-Multi-Instance-Retrieval",
        "https://arxiv.org/abs/2006.13256",
    )
