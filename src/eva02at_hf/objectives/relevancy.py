"""Soft relevancy between narrations, hard-mining positive sampling and batch relevancy.

* `pos_iou_relevancy`: the part-of-speech weighted IoU of verb and noun class sets (EVA02-AT Eq. 5),
  built from sparse clip x class incidence matrices: intersection = A @ B^T, union = |a| + |b| - intersection.
* `HardMiningSampler`: for clip i, draws its positive sentence uniformly from
  i+ = {j | c_ij > epsilon} (EVA02-AT Fig. 4, "greater than"; the authors' loader).
* `batch_relevancy`: rebuilds the B x B relevancy of a batch from the pre-built matrix, so that negative pairs
  keep their true soft relevancy (EVA02-AT Section IV-B) instead of 0.
* `egonce_positive_mask`: the EgoNCE positives (EgoVLPv2 Eq. 4), pairs sharing a verb or a noun class.

Dataset-sized matrices are numpy / scipy; batch-sized helpers return torch tensors for the losses.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from numbers import Integral, Real
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch

ClassIds = int | Iterable[int]
Relevancy = np.ndarray | sp.sparray | sp.spmatrix


def _incidence(sets: Sequence[ClassIds], name: str) -> sp.csr_array:
    """(N, max_id + 1) binary CSR incidence matrix of N class-id sets (duplicates count once)."""
    if isinstance(sets, (str, bytes)) or not hasattr(sets, "__len__"):
        raise TypeError(f"`{name}` must be a sequence with one class-id collection per narration")
    indptr = np.zeros(len(sets) + 1, dtype=np.int64)
    indices: list[int] = []
    for row, item in enumerate(sets):
        if isinstance(item, (str, bytes)):
            raise TypeError(f"`{name}[{row}]` is a string ({item!r}); parse it into integer class ids first")
        values = [item] if isinstance(item, Integral) else list(item)
        if not all(isinstance(v, Integral) and not isinstance(v, bool) and v >= 0 for v in values):
            raise ValueError(f"`{name}[{row}]` must hold non-negative integer class ids, got {item!r}")
        unique = sorted(set(values))
        indices.extend(unique)
        indptr[row + 1] = indptr[row] + len(unique)
    indices_array = np.asarray(indices, dtype=np.int64)
    num_classes = int(indices_array.max()) + 1 if indices_array.size else 0
    data = np.ones(indices_array.size, dtype=np.float32)
    return sp.csr_array((data, indices_array, indptr), shape=(len(sets), num_classes))


def _pad_classes(matrix: sp.csr_array, num_classes: int) -> sp.csr_array:
    matrix.resize((matrix.shape[0], num_classes))
    return matrix


def _iou(
    rows: sp.csr_array, columns_t: sp.csr_array, row_sizes: np.ndarray, col_sizes: np.ndarray
) -> sp.csr_array:
    """Sparse IoU between the sets of `rows` (n, C) and the columns of `columns_t` (C, m); 0 where disjoint."""
    intersection = sp.csr_array(rows @ columns_t)
    row_of_entry = np.repeat(np.arange(intersection.shape[0]), np.diff(intersection.indptr))
    union = row_sizes[row_of_entry] + col_sizes[intersection.indices] - intersection.data
    intersection.data = intersection.data / union
    return intersection


def _check_weights(weights: tuple[float, float]) -> tuple[float, float]:
    if len(weights) != 2 or not all(isinstance(w, Real) and np.isfinite(w) and w >= 0 for w in weights):
        raise ValueError(f"`weights` must be two finite non-negative numbers (verb, noun), got {weights!r}")
    if not np.isclose(sum(weights), 1.0):
        raise ValueError(f"`weights` must sum to 1 so that relevancy lies in [0, 1], got {weights!r}")
    return float(weights[0]), float(weights[1])


def pos_iou_relevancy(
    verbs: Sequence[ClassIds],
    nouns: Sequence[ClassIds],
    other_verbs: Sequence[ClassIds] | None = None,
    other_nouns: Sequence[ClassIds] | None = None,
    weights: tuple[float, float] = (0.5, 0.5),
    return_sparse: bool = False,
    block_size: int = 4096,
) -> np.ndarray | sp.csr_array:
    """Part-of-speech weighted IoU relevancy (EVA02-AT Eq. 5): c_ij = sum_p alpha_p |w_i^p & w_j^p| / |w_i^p | w_j^p|.

    Args:
        verbs, nouns: one verb / noun class-id collection per row narration (an int is a singleton set).
        other_verbs, other_nouns: the column narrations; both `None` means the rows themselves.
        weights: (verb, noun) weights alpha_p, non-negative and summing to 1.
        return_sparse: return a scipy CSR array (only the non-zero entries) instead of a dense array.
        block_size: rows computed at once; bounds the temporary memory.

    Returns:
        (N_rows, N_cols) float32 relevancy, dense `np.ndarray` or `scipy.sparse.csr_array`. A pair of empty
        sets has IoU 0 for that part of speech.
    """
    alpha_verb, alpha_noun = _check_weights(weights)
    if (other_verbs is None) != (other_nouns is None):
        raise ValueError("`other_verbs` and `other_nouns` must be given together")
    if block_size < 1:
        raise ValueError(f"`block_size` must be positive, got {block_size}")
    row_verbs, row_nouns = _incidence(verbs, "verbs"), _incidence(nouns, "nouns")
    if row_verbs.shape[0] != row_nouns.shape[0]:
        raise ValueError(
            f"`verbs` ({row_verbs.shape[0]}) and `nouns` ({row_nouns.shape[0]}) differ in length"
        )
    if other_verbs is None:
        col_verbs, col_nouns = row_verbs, row_nouns
    else:
        col_verbs, col_nouns = _incidence(other_verbs, "other_verbs"), _incidence(other_nouns, "other_nouns")
        if col_verbs.shape[0] != col_nouns.shape[0]:
            raise ValueError(
                f"`other_verbs` ({col_verbs.shape[0]}) and `other_nouns` ({col_nouns.shape[0]}) differ in length"
            )
    num_verbs = max(row_verbs.shape[1], col_verbs.shape[1])
    num_nouns = max(row_nouns.shape[1], col_nouns.shape[1])
    parts = []
    for alpha, rows, cols, num_classes in (
        (alpha_verb, row_verbs, col_verbs, num_verbs),
        (alpha_noun, row_nouns, col_nouns, num_nouns),
    ):
        if alpha > 0:
            rows = _pad_classes(rows.copy(), num_classes)
            cols_t = sp.csr_array(_pad_classes(cols.copy(), num_classes).T)
            sizes = np.diff(rows.indptr).astype(np.float32), np.diff(cols.indptr).astype(np.float32)
            parts.append((alpha, rows, cols_t, *sizes))

    num_rows, num_cols = row_verbs.shape[0], col_verbs.shape[0]
    dense = None if return_sparse else np.zeros((num_rows, num_cols), dtype=np.float32)
    blocks = []
    for start in range(0, num_rows, block_size):
        stop = min(start + block_size, num_rows)
        block = sp.csr_array((stop - start, num_cols), dtype=np.float32)
        for alpha, rows, cols_t, row_sizes, col_sizes in parts:
            block = block + alpha * _iou(rows[start:stop], cols_t, row_sizes[start:stop], col_sizes)
        block = sp.csr_array(block, dtype=np.float32)
        if dense is None:
            blocks.append(block)
        else:
            block.toarray(out=dense[start:stop])
    return dense if dense is not None else _stack_rows(blocks, num_rows, num_cols)


def _stack_rows(blocks: list[sp.csr_array], num_rows: int, num_cols: int) -> sp.csr_array:
    """Stack CSR row blocks with a single copy of their entries (scipy's vstack goes through COO)."""
    if not blocks:
        return sp.csr_array((num_rows, num_cols), dtype=np.float32)
    offsets = np.cumsum([0] + [block.nnz for block in blocks])
    index_dtype = np.int32 if offsets[-1] <= np.iinfo(np.int32).max else np.int64
    indptr = np.concatenate(
        [[0]] + [block.indptr[1:] + offset for block, offset in zip(blocks, offsets[:-1], strict=True)]
    )
    indices = np.concatenate([block.indices.astype(index_dtype, copy=False) for block in blocks])
    data = np.concatenate([block.data for block in blocks])
    return sp.csr_array((data, indices, indptr.astype(index_dtype)), shape=(num_rows, num_cols))


CANDIDATE_TOLERANCE = 1e-6
"""Relevancies within this of epsilon count as equal to it (not candidates): 0.3 - 0.2 is 0.10000001 in float32."""


def _candidate_pattern(relevancy: Relevancy, epsilon: float, block_size: int) -> sp.csr_array:
    """CSR pattern of the entries with relevancy > epsilon (+ `CANDIDATE_TOLERANCE`), in the matrix's dtype."""
    if sp.issparse(relevancy):
        matrix = sp.csr_array(relevancy)
        if matrix.ndim != 2:
            raise ValueError(f"`relevancy` must be 2-D, got shape {matrix.shape}")
        pattern = sp.csr_array(matrix > matrix.dtype.type(epsilon + CANDIDATE_TOLERANCE))
        pattern.sort_indices()
        return pattern
    matrix = np.asarray(relevancy)
    if matrix.ndim != 2 or not np.issubdtype(matrix.dtype, np.floating):
        raise ValueError(
            f"`relevancy` must be a 2-D float matrix, got shape {matrix.shape} dtype {matrix.dtype}"
        )
    threshold = matrix.dtype.type(epsilon + CANDIDATE_TOLERANCE)
    blocks = [
        sp.csr_array(matrix[start : start + block_size] > threshold)
        for start in range(0, matrix.shape[0], block_size)
    ]
    return _stack_rows(blocks, *matrix.shape)


def _as_index_array(indices: Sequence[int] | np.ndarray | torch.Tensor, size: int, name: str) -> np.ndarray:
    if isinstance(indices, torch.Tensor):
        indices = indices.detach().cpu().numpy()
    array = np.asarray(indices)
    if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"`{name}` must be a 1-D sequence of integer indices, got shape {array.shape}")
    if array.size and (array.min() < -size or array.max() >= size):
        raise IndexError(f"`{name}` holds indices outside [0, {size}): min {array.min()}, max {array.max()}")
    return array % size if array.size else array.astype(np.int64)


class HardMiningSampler:
    """Hard-mining positive sampler of EVA02-AT Fig. 4 (following EgoVLP).

    The candidate positives of clip i are i+ = {j | c_ij > epsilon}: strictly greater, as Fig. 4 says ("greater
    than") and as the loaders of the authors and of EgoVLP do. Section III's set notation reads >=; the two differ
    only on entries equal to epsilon (e.g. c = 0.5 * 1/5 = 0.1), which are not candidates here. Entries within
    `CANDIDATE_TOLERANCE` of epsilon count as equal to it; the comparison is done in the matrix's dtype.

    Args:
        relevancy: (N_clips, N_sentences) relevancy, dense float array or scipy sparse matrix.
        epsilon: candidate threshold, in (0, 1].
        block_size: rows scanned at once when the matrix is dense.
    """

    def __init__(self, relevancy: Relevancy, epsilon: float = 0.1, block_size: int = 4096) -> None:
        if not 0 < epsilon <= 1:
            raise ValueError(f"`epsilon` must lie in (0, 1], got {epsilon}")
        pattern = _candidate_pattern(relevancy, epsilon, block_size)
        self.epsilon = epsilon
        self.num_clips, self.num_sentences = pattern.shape
        self.indptr = pattern.indptr.astype(np.int64)
        self.indices = pattern.indices

    @property
    def num_candidates(self) -> np.ndarray:
        """(N_clips,) number of candidate sentences of each clip."""
        return np.diff(self.indptr)

    def candidates(self, clip_index: int) -> np.ndarray:
        """Sorted sentence indices j with c_ij > epsilon for clip `clip_index`."""
        (index,) = _as_index_array([clip_index], self.num_clips, "clip_index")
        return self.indices[self.indptr[index] : self.indptr[index + 1]]

    def sample(
        self,
        clip_indices: Sequence[int] | np.ndarray | torch.Tensor,
        rng: np.random.Generator | int | Sequence[int] | None = None,
    ) -> np.ndarray:
        """Draw one positive sentence per clip, uniformly among its candidates.

        Args:
            clip_indices: (B,) rows of the relevancy matrix.
            rng: a numpy Generator or a seed for `np.random.default_rng`; the draw is deterministic given it.

        Returns:
            (B,) int64 sentence indices.
        """
        clips = _as_index_array(clip_indices, self.num_clips, "clip_indices")
        starts = self.indptr[clips]
        counts = self.indptr[clips + 1] - starts
        if (counts == 0).any():
            clip = int(clips[np.argmax(counts == 0)])
            raise ValueError(f"clip {clip} has no sentence with relevancy > {self.epsilon}")
        offsets = np.random.default_rng(rng).integers(0, counts, dtype=np.int64) if clips.size else counts
        return self.indices[starts + offsets].astype(np.int64)


def batch_relevancy(
    relevancy: Relevancy,
    clip_indices: Sequence[int] | np.ndarray | torch.Tensor,
    sentence_indices: Sequence[int] | np.ndarray | torch.Tensor,
) -> torch.Tensor:
    """Rebuild the batch relevancy (EVA02-AT Section IV-B): out[a, b] = relevancy[clip_indices[a], sentence_indices[b]].

    With `sentence_indices[b]` the sampled positive of clip b, the diagonal holds the positives' relevancy and
    the off-diagonal entries the true soft relevancy of the negatives.

    Returns:
        (B_clips, B_sentences) float32 tensor.
    """
    if relevancy.ndim != 2:
        raise ValueError(f"`relevancy` must be 2-D, got shape {relevancy.shape}")
    rows = _as_index_array(clip_indices, relevancy.shape[0], "clip_indices")
    cols = _as_index_array(sentence_indices, relevancy.shape[1], "sentence_indices")
    if sp.issparse(relevancy):
        block = sp.csr_array(relevancy)[rows][:, cols].toarray()
    else:
        block = np.asarray(relevancy)[np.ix_(rows, cols)]
    return torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))


def egonce_positive_mask(
    verbs: Sequence[ClassIds],
    nouns: Sequence[ClassIds],
    other_verbs: Sequence[ClassIds] | None = None,
    other_nouns: Sequence[ClassIds] | None = None,
    mode: Literal["either", "both"] = "either",
) -> torch.Tensor:
    """EgoNCE positives of a batch: mask[i, j] = narrations i and j share a verb class or a noun class.

    `mode="either"` is EgoVLPv2's definition (Section 3.2, "at least one noun or one verb"); `mode="both"` asks
    for a shared verb and a shared noun, as in EgoVLP's released EgoNCE code.

    Returns:
        (N_rows, N_cols) bool tensor.
    """
    if mode not in ("either", "both"):
        raise ValueError(f"`mode` must be 'either' or 'both', got {mode!r}")
    if (other_verbs is None) != (other_nouns is None):
        raise ValueError("`other_verbs` and `other_nouns` must be given together")
    if other_verbs is None:
        other_verbs, other_nouns = verbs, nouns
    shared = []
    for rows_name, rows, cols_name, cols in (
        ("verbs", verbs, "other_verbs", other_verbs),
        ("nouns", nouns, "other_nouns", other_nouns),
    ):
        row_matrix, col_matrix = _incidence(rows, rows_name), _incidence(cols, cols_name)
        num_classes = max(row_matrix.shape[1], col_matrix.shape[1])
        row_matrix, col_matrix = _pad_classes(row_matrix, num_classes), _pad_classes(col_matrix, num_classes)
        shared.append((row_matrix @ col_matrix.T).toarray() > 0)
    if shared[0].shape != shared[1].shape:
        raise ValueError(f"verb table {shared[0].shape} and noun table {shared[1].shape} differ in length")
    mask = shared[0] | shared[1] if mode == "either" else shared[0] & shared[1]
    return torch.from_numpy(mask)
