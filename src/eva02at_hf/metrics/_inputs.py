"""Conversion and validation of metric inputs (numpy arrays, torch tensors, scipy sparse or nested sequences)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor | Sequence


def as_array(value: ArrayLike, name: str, ndim: int) -> np.ndarray:
    """Return `value` as a numpy array with `ndim` dimensions (torch tensors are moved to the CPU, scipy sparse
    matrices densified)."""
    if hasattr(value, "toarray"):
        value = value.toarray()
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu()
        if tensor.dtype in (torch.float16, torch.bfloat16):
            tensor = tensor.float()  # exact, keeps order and ties
        value = tensor.numpy()
    array = np.asarray(value)
    if not (
        np.issubdtype(array.dtype, np.integer)
        or np.issubdtype(array.dtype, np.floating)
        or array.dtype == bool
    ):
        raise TypeError(f"`{name}` must be real-valued numeric, got an array of dtype {array.dtype}")
    if array.ndim != ndim:
        raise ValueError(f"`{name}` must have {ndim} dimension(s), got shape {array.shape}")
    return array


def as_scores(value: ArrayLike, name: str, ndim: int = 2) -> np.ndarray:
    """Floating-point scores without NaN: float32 and float64 are kept, other types become float64."""
    array = as_array(value, name, ndim)
    if array.dtype not in (np.float32, np.float64):
        array = array.astype(np.float32 if array.dtype == np.float16 else np.float64)
    if np.isnan(array).any():
        raise ValueError(f"`{name}` contains NaN")
    return array


def check_same_shape(a: np.ndarray, a_name: str, b: np.ndarray, b_name: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"`{a_name}` and `{b_name}` must have the same shape, got {a.shape} and {b.shape}")


def nanmean_percent(values: np.ndarray) -> float:
    """100 x the mean of the non-NaN entries (NaN when there are none)."""
    valid = values[~np.isnan(values)]
    return float("nan") if valid.size == 0 else 100.0 * float(np.mean(valid, dtype=np.float64))


def stable_descending_order(scores: np.ndarray) -> np.ndarray:
    """Column indices ranking each row of `scores` (rows, items) by descending score; ties keep column order.

    For float32 scores, each score's bits are mapped to an unsigned key that increases as the score decreases and
    the column index is appended in the low 32 bits; sorting these unique uint64 keys (a fast value sort) gives
    exactly the stable order. Other dtypes use numpy's stable argsort.
    """
    if scores.dtype != np.float32:
        return np.argsort(np.negative(scores, order="C"), axis=1, kind="stable")
    # + 0 turns -0.0 into +0.0 (which compares equal to it) and makes a C-contiguous copy of any view.
    bits = np.add(scores, np.float32(0), order="C").view(np.uint32)
    descending = np.where(bits >> 31, bits, bits ^ np.uint32(0x7FFFFFFF))
    keys = (descending.astype(np.uint64) << np.uint64(32)) | np.arange(scores.shape[1], dtype=np.uint64)
    keys.sort(axis=1)
    keys &= np.uint64(0xFFFFFFFF)
    return keys.view(np.int64)
