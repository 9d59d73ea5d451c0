"""EPIC-KITCHENS-100 multi-instance retrieval (MIR): mAP and nDCG of the official challenge evaluation.

For a query (a row of the matrices), items are ranked by descending similarity, giving relevancies
r_1, ..., r_n in rank order. Following the official evaluation exactly:

- AP = (1 / |{j : r_j = 1}|) * sum_{k : r_k = 1} (r_1 + ... + r_k) / k. The precision term is the cumulative
  sum of the *soft* relevancies, so partially relevant items raise it, but only ranks holding a fully relevant
  item (relevancy exactly 1) are scored.
- nDCG = DCG / IDCG with DCG = sum_{k <= K} r_k / log2(k + 1), truncated to the first K ranks where
  K = |{j : r_j > 0}|, and IDCG the same sum for the relevancies sorted in descending order.

Ties in similarity are broken deterministically by a stable sort on descending similarity: tied items keep
their column order (lower index ranked first). Ties do change the result when the tied items have different
relevancies; the official code uses an unstable numpy sort (and a different tie order for its nDCG than for its
mAP), so on tied inputs its numbers are implementation-defined. Without ties both agree exactly.

Undefined queries: a query with no item of relevancy exactly 1 has AP = 0/0 and one with no item of non-zero
relevancy has nDCG = 0/0; the official code would turn the whole mean into NaN. Here such queries are excluded
from the corresponding mean (with a warning), which gives the official value whenever that value is defined.
On the real EK-100 test split every query has a fully relevant item, so nothing is excluded there.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..utils.safe_pickle import NUMPY_ARRAY_GLOBALS, restricted_pickle_load
from ._inputs import ArrayLike, as_scores, check_same_shape, nanmean_percent, stable_descending_order

MIR_KEYS = ("mAP_v2t", "mAP_t2v", "mAP_avg", "nDCG_v2t", "nDCG_t2v", "nDCG_avg")

# Elements of the (rows x items) block one thread processes at once (about 40 MB of working memory per thread),
# and the most threads used (numpy releases the GIL in sorting, gathering and reductions).
_CHUNK_ELEMENTS = 1 << 20
_MAX_THREADS = 8


def load_relevancy_pickle(path: str | os.PathLike) -> np.ndarray:
    """Load the official relevancy matrix (`caption_relevancy_EPIC_100_retrieval_test.pkl`, videos x sentences).

    The file is a pickled numpy array of shape (9668, 3842) on the real test split. It is read with a restricted
    unpickler that only reconstructs numpy arrays, so a crafted file cannot execute code.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"relevancy pickle not found: {path}")
    relevancy = restricted_pickle_load(path, NUMPY_ARRAY_GLOBALS, "numpy arrays")
    if not isinstance(relevancy, np.ndarray) or relevancy.ndim != 2:
        found = f"shape {relevancy.shape}" if isinstance(relevancy, np.ndarray) else type(relevancy).__name__
        raise ValueError(f"{path}: expected a pickled 2-D numpy array (videos x sentences), got {found}")
    return relevancy


def _average_precision(ranked: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Official MIR AP per row of rank-ordered float64 relevancies `ranked` (queries, items) -> (queries,)."""
    fully_relevant = ranked == 1
    precision = np.cumsum(ranked, axis=1)
    precision /= ranks
    with np.errstate(invalid="ignore"):
        return np.add.reduce(precision, axis=1, where=fully_relevant) / fully_relevant.sum(axis=1)


def _ndcg(ranked: np.ndarray, relevancy: np.ndarray, discount: np.ndarray) -> np.ndarray:
    """Official MIR nDCG per row of rank-ordered relevancies `ranked` (queries, items) -> (queries,).

    `relevancy` holds the same rows in any order; sorted ascending it gives the ideal ranking read backwards.
    """
    num_nonzero = np.count_nonzero(ranked, axis=1)
    within_cutoff = np.arange(ranked.shape[1]) < num_nonzero[:, None]
    dcg = np.add.reduce(ranked * discount, axis=1, where=within_cutoff)
    idcg = np.sort(relevancy, axis=1) @ discount[::-1]
    with np.errstate(invalid="ignore"):
        return dcg / idcg


def _as_inputs(
    similarity: ArrayLike, relevancy: ArrayLike | str | os.PathLike
) -> tuple[np.ndarray, np.ndarray]:
    """Validated float arrays; `relevancy` may be the path of the official pickle."""
    similarity = as_scores(similarity, "similarity")
    if isinstance(relevancy, str | os.PathLike):
        relevancy = load_relevancy_pickle(relevancy)
    relevancy = as_scores(relevancy, "relevancy")
    check_same_shape(similarity, "similarity", relevancy, "relevancy")
    if similarity.size == 0:
        raise ValueError(f"`similarity` and `relevancy` must not be empty, got shape {similarity.shape}")
    if relevancy.min() < 0 or relevancy.max() > 1:
        raise ValueError("`relevancy` values must lie in [0, 1]")
    return similarity, relevancy


def _chunk_per_query(
    similarity: np.ndarray, relevancy: np.ndarray, ranks: np.ndarray, discount: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    relevancy = np.ascontiguousarray(relevancy)
    order = stable_descending_order(similarity)
    ranked = np.take_along_axis(relevancy, order, axis=1).astype(np.float64, copy=False)
    return _average_precision(ranked, ranks), _ndcg(ranked, relevancy, discount)


def _per_query(similarity: np.ndarray, relevancy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    num_queries, num_items = similarity.shape
    ranks = np.arange(1, num_items + 1, dtype=np.float64)
    discount = 1.0 / np.log2(ranks + 1.0)
    rows_per_chunk = max(1, _CHUNK_ELEMENTS // max(1, num_items))
    chunks = [slice(start, start + rows_per_chunk) for start in range(0, num_queries, rows_per_chunk)]
    with ThreadPoolExecutor(max_workers=max(1, min(len(chunks), _MAX_THREADS, os.cpu_count() or 1))) as pool:
        results = list(
            pool.map(
                lambda rows: _chunk_per_query(similarity[rows], relevancy[rows], ranks, discount), chunks
            )
        )
    return tuple(np.concatenate(parts) for parts in zip(*results, strict=True))


def mir_per_query(
    similarity: ArrayLike, relevancy: ArrayLike | str | os.PathLike
) -> tuple[np.ndarray, np.ndarray]:
    """AP and nDCG of every query, queries being the rows of `similarity` and `relevancy` (queries, items).

    Returns two float64 arrays of shape (queries,), NaN for undefined queries (see module docstring).
    Rows are processed in chunks, each vectorised (stable descending sort, gather, cumulative sums in float64),
    on up to `_MAX_THREADS` threads.
    """
    return _per_query(*_as_inputs(similarity, relevancy))


def _warn_undefined(values: np.ndarray, metric: str, direction: str, reason: str) -> None:
    undefined = int(np.isnan(values).sum())
    if undefined:
        warnings.warn(
            f"EK-100 MIR: {undefined} of {values.size} {direction} queries have {reason}; their {metric} is "
            f"undefined (0/0) and they are left out of the mean",
            stacklevel=3,
        )


def ek100_mir(similarity: ArrayLike, relevancy: ArrayLike | str | os.PathLike) -> dict[str, float]:
    """EK-100 multi-instance retrieval mAP and nDCG (in percent), as in the official challenge evaluation.

    Args:
        similarity: (videos, text queries) predicted similarities, e.g. (9668, 3842) on the test split.
        relevancy: (videos, text queries) soft relevancies in [0, 1], or the path of the official relevancy pickle
            (`caption_relevancy_EPIC_100_retrieval_test.pkl`), loaded with a restricted unpickler.

    Returns:
        `mAP_v2t`, `nDCG_v2t` (video queries: rows), `mAP_t2v`, `nDCG_t2v` (text queries: columns, i.e. the
        transposes) and their averages `mAP_avg`, `nDCG_avg`.
    """
    similarity, relevancy = _as_inputs(similarity, relevancy)
    results = {}
    for direction, sim, rel in (("v2t", similarity, relevancy), ("t2v", similarity.T, relevancy.T)):
        average_precision, ndcg = _per_query(sim, rel)
        _warn_undefined(average_precision, "AP", direction, "no item of relevancy exactly 1")
        _warn_undefined(ndcg, "nDCG", direction, "no item of non-zero relevancy")
        results[f"mAP_{direction}"] = nanmean_percent(average_precision)
        results[f"nDCG_{direction}"] = nanmean_percent(ndcg)
    results["mAP_avg"] = (results["mAP_v2t"] + results["mAP_t2v"]) / 2
    results["nDCG_avg"] = (results["nDCG_v2t"] + results["nDCG_t2v"]) / 2
    return {key: results[key] for key in MIR_KEYS}
