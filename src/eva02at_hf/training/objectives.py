"""Global-batch training objectives: gather the local embeddings of every process, then apply a paper loss.

`RetrievalObjective` follows the recipe of `eva02at_hf.objectives.losses`: embeddings and the clip / sentence indices are
gathered with `gather_with_grad`, the (B, B) batch relevancy is rebuilt from the pre-built matrix
(`batch_relevancy`), the loss of the whole global batch is computed on every process and multiplied by the world
size, so that DDP's gradient averaging yields the gradient of the global-batch loss. Rows whose clip could not be
decoded (``valid`` False) are left out of the loss.
"""

from __future__ import annotations

from typing import Any

import scipy.sparse as sp
import torch
import torch.distributed as dist
from torch import nn

from ..objectives.losses import (
    AdaptiveMIMMLoss,
    EgoNCELoss,
    InfoNCELoss,
    MIMMLoss,
    SMSHardLoss,
    SMSLoss,
    gather_with_grad,
)
from ..objectives.relevancy import batch_relevancy

LOSSES = ("sms", "sms_hard", "adaptive_mimm", "mimm", "infonce", "egonce")
# The losses that take a soft relevancy (EK-100 MIR); SMS-hard needs 0 / 1 labels (Charades-Ego).
SOFT_LABEL_LOSSES = tuple(name for name in LOSSES if name != "sms_hard")


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


PAPER_MARGINS = {"sms": 0.6, "sms_hard": 0.3, "adaptive_mimm": 0.4, "mimm": 0.2}
"""Each margin loss's gamma in the paper (Sec. V-A, Table V)."""
DEFAULT_SMS_PRESET = "authors_code"
"""The recipes' SMS edge: the authors' released loss, which produced the paper's EK-100 numbers."""


def build_loss(
    name: str,
    margin: float | None = None,
    tau: float = 0.1,
    sms_preset: str = DEFAULT_SMS_PRESET,
    sms_lambda: float | None = None,
    temperature: float = 0.05,
) -> nn.Module:
    """The criterion ``name`` of `LOSSES` with the paper's hyper-parameters.

    ``margin=None`` takes the loss's `PAPER_MARGINS` value. SMS takes its edge lambda and relevancy storage from
    `eva02at_hf.objectives.losses.SMS_PRESETS[sms_preset]` ("paper": lambda = epsilon = 0.1; "authors_code": lambda =
    1.1 / 240 on uint8 x 240 relevancy); ``sms_lambda`` overrides the preset's lambda.
    """
    if name in PAPER_MARGINS and margin is None:
        margin = PAPER_MARGINS[name]
    if name == "sms":
        overrides = {} if sms_lambda is None else {"lambda_": sms_lambda}
        return SMSLoss.from_preset(sms_preset, margin=margin, tau=tau, **overrides)
    if name == "sms_hard":
        return SMSHardLoss(margin=margin, tau=tau)
    if name == "adaptive_mimm":
        return AdaptiveMIMMLoss(margin=margin)
    if name == "mimm":
        return MIMMLoss(margin=margin)
    if name == "infonce":
        return InfoNCELoss(temperature=temperature)
    if name == "egonce":
        return EgoNCELoss(temperature=temperature)
    raise ValueError(f"unknown loss {name!r}; choose one of {LOSSES}")


class RetrievalObjective(nn.Module):
    """Loss of the global batch from one process's embeddings.

    Args:
        criterion: a loss of `eva02at_hf.objectives.losses`.
        relevancy: (N_clips, N_sentences) training relevancy (dense or scipy sparse); needed by every loss
            except InfoNCE. EgoNCE's positives are the pairs with non-zero relevancy (a shared verb or noun).
    """

    def __init__(self, criterion: nn.Module, relevancy: Any = None) -> None:
        super().__init__()
        if relevancy is None and not isinstance(criterion, InfoNCELoss):
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
        if isinstance(self.criterion, InfoNCELoss):
            loss = self.criterion(similarity)
        else:
            clips = gather_with_grad(batch["clip_index"].to(videos.device))[valid]
            sentences = gather_with_grad(batch["sentence_index"].to(videos.device))[valid]
            relevancy = batch_relevancy(self.relevancy, clips, sentences).to(videos.device)
            if isinstance(self.criterion, EgoNCELoss):
                loss = self.criterion(similarity, relevancy > 0)
            else:
                loss = self.criterion(similarity, relevancy)
        return loss * world_size()
