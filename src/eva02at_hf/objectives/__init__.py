"""The paper's training objectives: the losses on a similarity matrix, their registry, the relevancy they are
trained on, and the loss of the global batch across processes."""

from .global_batch import RetrievalObjective
from .losses import (
    DEFAULT_SMS_PRESET,
    SMS_PRESETS,
    AdaptiveMIMMLoss,
    EgoNCELoss,
    InfoNCELoss,
    MIMMLoss,
    RetrievalLoss,
    SMSHardLoss,
    SMSLoss,
    gather_with_grad,
)
from .registry import LOSSES, build_loss, loss_class, loss_defaults, paper_margins, soft_label_losses
from .relevancy import HardMiningSampler, batch_relevancy, egonce_positive_mask, pos_iou_relevancy

__all__ = [
    "DEFAULT_SMS_PRESET",
    "LOSSES",
    "SMS_PRESETS",
    "AdaptiveMIMMLoss",
    "EgoNCELoss",
    "HardMiningSampler",
    "InfoNCELoss",
    "MIMMLoss",
    "RetrievalLoss",
    "RetrievalObjective",
    "SMSHardLoss",
    "SMSLoss",
    "batch_relevancy",
    "build_loss",
    "egonce_positive_mask",
    "gather_with_grad",
    "loss_class",
    "loss_defaults",
    "paper_margins",
    "pos_iou_relevancy",
    "soft_label_losses",
]
