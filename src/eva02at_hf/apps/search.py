"""Top-k retrieval over L2-normalised embeddings: exact in torch, or with a FAISS flat inner-product index.

Scores are inner products, i.e. cosine similarities for the unit-norm embeddings EVA02-AT returns. The torch
path scans the collection in blocks and keeps a running top-k, so memory stays at
``O(queries x (block + k))`` whatever the collection size. FAISS (``pip install faiss-cpu``, the ``search``
extra) gives the same ranking with its optimised `IndexFlatIP`, and an index that can be saved and reused.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import torch

SEARCH_BACKENDS = ("exact", "faiss")


def faiss_available() -> bool:
    return importlib.util.find_spec("faiss") is not None


def _check_inputs(queries: torch.Tensor, keys: torch.Tensor, k: int) -> None:
    if queries.ndim != 2 or keys.ndim != 2 or queries.shape[1] != keys.shape[1]:
        raise ValueError(
            f"queries (Q, D) and keys (N, D) must share D; got {tuple(queries.shape)} and {tuple(keys.shape)}"
        )
    if k < 1:
        raise ValueError(f"`k` must be >= 1, got {k}")


def topk_exact(
    queries: torch.Tensor, keys: torch.Tensor, k: int, block_size: int = 65536
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k inner products of each query against all keys.

    Args:
        queries: (Q, D); keys: (N, D); k: hits per query (clipped to N).
        block_size: keys scored per matrix product.

    Returns:
        scores (Q, k') descending and indices (Q, k') into ``keys``, with ``k' = min(k, N)``; ties keep the lower
        key index first.
    """
    _check_inputs(queries, keys, k)
    k = min(k, keys.shape[0])
    queries = queries.float()
    best_scores = queries.new_empty(queries.shape[0], 0)
    best_indices = torch.empty(queries.shape[0], 0, dtype=torch.long, device=queries.device)
    for first in range(0, keys.shape[0], block_size):
        block = queries @ keys[first : first + block_size].to(queries).t()
        offsets = torch.arange(first, first + block.shape[1], device=queries.device).expand_as(block)
        scores = torch.cat([best_scores, block], dim=1)
        indices = torch.cat([best_indices, offsets], dim=1)
        order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
        best_scores, best_indices = scores.gather(1, order), indices.gather(1, order)
    return best_scores, best_indices


class FaissIndex:
    """A FAISS `IndexFlatIP` over (N, D) keys; ``search`` returns the same (scores, indices) as `topk_exact`."""

    def __init__(self, keys: torch.Tensor) -> None:
        if not faiss_available():
            raise ImportError(
                "FAISS is not installed: `pip install faiss-cpu` (or `pip install eva02at-hf[search]`)"
            )
        import faiss

        self.index = faiss.IndexFlatIP(keys.shape[1])
        self.index.add(np.ascontiguousarray(keys.detach().float().cpu().numpy()))

    @property
    def size(self) -> int:
        return self.index.ntotal

    def search(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(Q, D) queries -> scores (Q, min(k, N)) descending and indices (Q, min(k, N))."""
        if queries.ndim != 2 or queries.shape[1] != self.index.d:
            raise ValueError(f"queries must be (Q, {self.index.d}), got {tuple(queries.shape)}")
        if k < 1:
            raise ValueError(f"`k` must be >= 1, got {k}")
        k = min(k, self.size)
        scores, indices = self.index.search(np.ascontiguousarray(queries.detach().float().cpu().numpy()), k)
        return torch.from_numpy(scores), torch.from_numpy(indices).long()


def search(
    queries: torch.Tensor, keys: torch.Tensor, k: int, backend: str = "exact"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of ``queries`` (Q, D) among ``keys`` (N, D) with ``backend`` ``"exact"`` (torch) or ``"faiss"``."""
    if backend == "exact":
        return topk_exact(queries, keys, k)
    if backend == "faiss":
        _check_inputs(queries, keys, k)
        return FaissIndex(keys).search(queries, k)
    raise ValueError(f"`backend` must be one of {SEARCH_BACKENDS}, got {backend!r}")


__all__ = ["SEARCH_BACKENDS", "FaissIndex", "faiss_available", "search", "topk_exact"]
