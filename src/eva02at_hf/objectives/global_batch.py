"""The loss of the global batch: gather the local embeddings of every process, then apply a `RetrievalLoss`."""

from __future__ import annotations

from typing import Any

import scipy.sparse as sp
import torch
import torch.distributed as dist
from torch import nn

from .losses import RetrievalLoss, gather_with_grad
from .relevancy import batch_relevancy


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class RetrievalObjective(nn.Module):
    """Loss of the global batch from one process's embeddings (EVA02-AT Fig. 4).

    It follows the recipe of `eva02at_hf.objectives.losses`: embeddings and the clip / sentence indices are
    gathered with `gather_with_grad`, the (B, B) batch relevancy is rebuilt from the pre-built matrix
    (`batch_relevancy`) so that negatives keep their true relevancy, the loss of the whole global batch is computed
    on every process and multiplied by the world size, so that DDP's gradient averaging yields the gradient of the
    global-batch loss. Rows whose clip could not be decoded (``valid`` False) are left out of the loss.

    It lives with the losses, not with the training loop, because it is part of what is optimised (the paper's
    batch relevancy) and depends only on the losses and the relevancy; the loop just calls it on each batch.

    Args:
        criterion: a `RetrievalLoss`. Its ``uses_relevancy`` decides whether the batch relevancy is rebuilt (the
            batch then needs ``clip_index`` and ``sentence_index``) or None is passed.
        relevancy: (N_clips, N_sentences) training relevancy (dense or scipy sparse); required by the losses that
            use it.
    """

    def __init__(self, criterion: RetrievalLoss, relevancy: Any = None) -> None:
        super().__init__()
        if relevancy is None and criterion.uses_relevancy:
            raise ValueError(f"{type(criterion).__name__} needs the training relevancy matrix")
        self.criterion = criterion
        self.relevancy = sp.csr_array(relevancy) if sp.issparse(relevancy) else relevancy

    def forward(
        self, video_embeds: torch.Tensor, text_embeds: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """video_embeds, text_embeds: (B_local, D) L2-normalised. Returns the loss scaled by the world size."""
        videos, texts = gather_with_grad(video_embeds), gather_with_grad(text_embeds)
        valid = gather_with_grad(batch["valid"].to(videos.device))
        similarity = (videos @ texts.T)[valid][:, valid]
        if similarity.shape[0] < 2:
            return (videos.sum() + texts.sum()) * 0.0
        relevancy = None
        if self.criterion.uses_relevancy:
            clips = gather_with_grad(batch["clip_index"].to(videos.device))[valid]
            sentences = gather_with_grad(batch["sentence_index"].to(videos.device))[valid]
            relevancy = batch_relevancy(self.relevancy, clips, sentences).to(videos.device)
        return self.criterion(similarity, relevancy) * world_size()
