"""Training objectives of EVA02-AT: InfoNCE, MI-MM, adaptive MI-MM, SMS (soft and hard labels) and EgoNCE.

Conventions shared by every loss:

* `similarity[i, j]` is video i . text j (L2-normalised embeddings), a square (B, B) matrix where text j is the
  sampled positive of video j, so the diagonal holds the positive pairs.
* `relevancy[i, j]` is the soft relevancy c_ij of video i to text j (see `eva02at_hf.objectives.relevancy.batch_relevancy`).
* Every loss is a `RetrievalLoss`: ``forward(similarity, relevancy=None)`` returns a scalar, and its docstring says
  what it does with the relevancy. Those that read it (`RetrievalLoss.uses_relevancy`) raise a ValueError naming
  the loss when it is None; the others check its shape when given and ignore it. Each constructor's defaults are the
  paper's values; `eva02at_hf.objectives.registry` builds them by name.
* Every loss is bi-directional: the video-to-text term uses the rows of `similarity` / `relevancy`, the
  text-to-video term the same function applied to `similarity.T` / `relevancy.T`.
* Margin losses use the triplets (i, j, k) with j = i, the anchor's own sampled positive, and k every other
  column of the batch (as EgoVLP / AVION MI-MM). `reduction="mean"` (default) divides the sum of the 2 B (B - 1)
  triplet terms by their number, EgoVLP / AVION's convention; `"sum"` is the paper's printed sums (the two
  differ by a constant factor, i.e. a rescaled learning rate).

Across processes every rank computes the loss of the whole global batch. Gather the local embeddings with
`gather_with_grad` (which keeps the gradient of the local shard only) and the clip / sentence indices with the
same function, then build the global similarity and relevancy::

    videos, texts = gather_with_grad(video_embeds), gather_with_grad(text_embeds)
    clips, sentences = gather_with_grad(clip_indices), gather_with_grad(sentence_indices)
    relevancy = batch_relevancy(train_relevancy, clips, sentences).to(videos.device)
    loss = criterion(videos @ texts.T, relevancy)
    (loss * world_size).backward()

Each rank then holds exactly the single-process gradient of its own embeddings; DDP averages parameter
gradients over ranks, hence the `world_size` factor to recover the gradient of the global-batch loss.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal, TypeVar

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

Reduction = Literal["mean", "sum"]
LossT = TypeVar("LossT", bound="RetrievalLoss")
_MAX_GATHER_DIMS = 8
BOUNDARY_TOLERANCE = 1e-6
"""Rounding allowed in SMS's R >= lambda test: relevancies are sums of small fractions (Eq. 5)."""


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """All-gather `tensor` along dim 0 in rank order; only the local shard keeps its autograd graph.

    Returns `tensor` itself when torch.distributed is not initialised. Every rank must pass the same shape, on
    the backend's device (CUDA for NCCL), including integer tensors such as the clip / sentence indices.

    Args:
        tensor: (B_local, ...) local shard.

    Returns:
        (world_size * B_local, ...) global tensor.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    if not 1 <= tensor.ndim <= _MAX_GATHER_DIMS:
        raise ValueError(
            f"`tensor` must have 1 to {_MAX_GATHER_DIMS} dimensions, got shape {tuple(tensor.shape)}"
        )
    world_size = dist.get_world_size()
    padding = [-1] * (_MAX_GATHER_DIMS - tensor.ndim)
    shape = torch.tensor([*tensor.shape, *padding], device=tensor.device)
    shapes = [torch.zeros_like(shape) for _ in range(world_size)]
    dist.all_gather(shapes, shape)
    if any(not torch.equal(other, shape) for other in shapes):
        raise ValueError(
            f"gather_with_grad needs the same shape on every rank, got {[s[s >= 0].tolist() for s in shapes]}"
        )
    gathered = [torch.empty_like(tensor) for _ in range(world_size)]
    dist.all_gather(gathered, tensor.detach().contiguous())
    gathered[dist.get_rank()] = tensor
    return torch.cat(gathered)


def _check_square(similarity: torch.Tensor, name: str = "similarity", min_size: int = 1) -> int:
    if similarity.ndim != 2 or similarity.shape[0] != similarity.shape[1]:
        raise ValueError(f"`{name}` must be a square (B, B) matrix, got shape {tuple(similarity.shape)}")
    if similarity.shape[0] < min_size:
        raise ValueError(f"`{name}` needs at least {min_size} pairs, got {similarity.shape[0]}")
    return similarity.shape[0]


def _check_relevancy(relevancy: torch.Tensor, similarity: torch.Tensor) -> None:
    if relevancy.shape != similarity.shape:
        raise ValueError(
            f"`relevancy` shape {tuple(relevancy.shape)} must match `similarity` shape {tuple(similarity.shape)}"
        )


def _check_reduction(reduction: str) -> None:
    if reduction not in ("mean", "sum"):
        raise ValueError(f"`reduction` must be 'mean' or 'sum', got {reduction!r}")


def _bidirectional_triplets(
    terms: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    similarity: torch.Tensor,
    relevancy: torch.Tensor,
    reduction: Reduction,
) -> torch.Tensor:
    """Sum or mean of the (i, i, k), k != i, triplet terms of both retrieval directions."""
    size = similarity.shape[0]
    off_diagonal = ~torch.eye(size, dtype=torch.bool, device=similarity.device)
    total = (
        terms(similarity, relevancy)[off_diagonal].sum()
        + terms(similarity.T, relevancy.T)[off_diagonal].sum()
    )
    return total if reduction == "sum" else total / (2 * size * (size - 1))


def _positive_gap(similarity: torch.Tensor) -> torch.Tensor:
    """(B, B) S_ij - S_ik with j = i the anchor's positive and k the column."""
    return similarity.diagonal().unsqueeze(1) - similarity


class RetrievalLoss(nn.Module):
    """A loss on the (B, B) similarity of a batch whose diagonal holds the sampled positive pairs.

    ``forward(similarity, relevancy=None)`` returns a scalar. Class attributes, read by `build_loss` and
    `RetrievalObjective` instead of testing the type:

    * ``uses_relevancy``: forward reads ``relevancy`` (and raises when it is None); `RetrievalObjective` only
      rebuilds the batch relevancy for these.
    * ``hard_labels``: the relevancy must hold 0 / 1 labels (SMS-hard), so it cannot train on EK-100's soft one.
    * ``presets`` / ``default_preset``: named argument sets (`from_preset`) and the one `from_options` starts from.
    """

    uses_relevancy: ClassVar[bool] = False
    hard_labels: ClassVar[bool] = False
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    default_preset: ClassVar[str | None] = None

    @classmethod
    def recipe_defaults(cls) -> dict[str, Any]:
        """The keyword arguments `from_options` uses when given none: the constructor's defaults (the paper's
        values), updated by ``default_preset``."""
        parameters = inspect.signature(cls).parameters.values()
        signature = {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}
        return {**signature, **(cls.presets[cls.default_preset] if cls.default_preset else {})}

    @classmethod
    def from_preset(cls: type[LossT], name: str, **overrides: Any) -> LossT:
        """The loss with the arguments of ``presets[name]``; ``overrides`` replace any argument."""
        if name not in cls.presets:
            kind = cls.__name__.removesuffix("Loss")
            raise ValueError(f"unknown {kind} preset {name!r}; choose one of {sorted(cls.presets)}")
        return cls(**{**cls.presets[name], **overrides})

    @classmethod
    def from_options(cls: type[LossT], preset: str | None = None, **options: Any) -> LossT:
        """The loss from a recipe's options: those the constructor takes and that are not None, on top of
        ``preset`` (default ``default_preset``) for a loss with presets. The other options are ignored, so that a
        script can pass its whole set (margin, tau, temperature, ...) whatever the loss."""
        accepted = inspect.signature(cls).parameters
        arguments = {key: value for key, value in options.items() if value is not None and key in accepted}
        if not cls.presets:
            return cls(**arguments)
        return cls.from_preset(preset or cls.default_preset, **arguments)

    def _require_relevancy(self, relevancy: torch.Tensor | None, similarity: torch.Tensor) -> torch.Tensor:
        if relevancy is None:
            raise ValueError(
                f"{type(self).__name__} needs `relevancy`, the (B, B) relevancy of the batch "
                "(`eva02at_hf.objectives.relevancy.batch_relevancy`); got None"
            )
        _check_relevancy(relevancy, similarity)
        return relevancy

    def forward(self, similarity: torch.Tensor, relevancy: torch.Tensor | None = None) -> torch.Tensor:
        """similarity: (B, B) video . text; relevancy: (B, B) c_ij or None. Returns a scalar."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward(similarity, relevancy=None)")


class InfoNCELoss(RetrievalLoss):
    """Bi-directional InfoNCE (EVA02-AT pre-training, temperature 0.05): mean of the two cross-entropies.

    L = 1/2 [CE(S / T, diag) + CE(S^T / T, diag)], averaged over anchors, as AVION's CLIP loss.

    The same function as `EVA02ATForVideoTextRetrieval.forward(return_loss=True)`, on purpose with another
    temperature: here T is fixed (the paper's 0.05, Sec. V-A) and the loss sees the gathered global batch through
    `RetrievalObjective`; the model's forward divides by its learnable ``exp(-logit_scale)`` (CLIP's 0.07 at
    initialisation, trained with the loss) on its local batch, the transformers convention (`CLIPModel`).
    ``InfoNCELoss(temperature=1 / model.logit_scale.exp())`` on the cosine similarities gives the forward's loss.
    """

    def __init__(self, temperature: float = 0.05) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"`temperature` must be positive, got {temperature}")
        self.temperature = temperature

    def forward(self, similarity: torch.Tensor, relevancy: torch.Tensor | None = None) -> torch.Tensor:
        """similarity: (B, B) video . text. Returns a scalar.

        ``relevancy`` is not used (its shape is checked when given): InfoNCE has one positive per row, the
        diagonal, and every other pair of the batch is a negative whatever its relevancy. `EgoNCELoss` is the
        InfoNCE that takes the relevancy's positives.
        """
        size = _check_square(similarity)
        if relevancy is not None:
            _check_relevancy(relevancy, similarity)
        logits = similarity / self.temperature
        target = torch.arange(size, device=similarity.device)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


class MIMMLoss(RetrievalLoss):
    """Multi-Instance Max-Margin loss (EVA02-AT Eq. 4): [gamma - S_ii + S_ik]_+ in both directions.

    Table V's MI-MM baseline (gamma 0.2). It does not use the relevancy, by definition: Eq. 4 is the hard-label
    loss, where c_ii - c_ik = 1 for the sampled positive and every other text of the batch, so every triplet has
    the same margin gamma. Scaling the margin by the positive's relevancy is adaptive MI-MM (`AdaptiveMIMMLoss`,
    Eq. 6); using the negatives' relevancy too is SMS.
    """

    def __init__(self, margin: float = 0.2, reduction: Reduction = "mean") -> None:
        super().__init__()
        _check_reduction(reduction)
        self.margin, self.reduction = margin, reduction

    def forward(self, similarity: torch.Tensor, relevancy: torch.Tensor | None = None) -> torch.Tensor:
        """similarity: (B, B); ``relevancy`` (B, B) is not used (see the class), only its shape is checked when
        given. Returns a scalar."""
        _check_square(similarity, min_size=2)
        if relevancy is not None:
            _check_relevancy(relevancy, similarity)

        def terms(sim: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
            return F.relu(self.margin - _positive_gap(sim))

        return _bidirectional_triplets(terms, similarity, similarity, self.reduction)


class AdaptiveMIMMLoss(RetrievalLoss):
    """Adaptive MI-MM (EgoVLP; EVA02-AT Eq. 6): [c_ii gamma - S_ii + S_ik]_+ in both directions.

    Only the positive's relevancy c_ii (the diagonal of `relevancy`) is used; negatives count as c_ik = 0.
    """

    uses_relevancy = True

    def __init__(self, margin: float = 0.4, reduction: Reduction = "mean") -> None:
        super().__init__()
        _check_reduction(reduction)
        self.margin, self.reduction = margin, reduction

    def forward(self, similarity: torch.Tensor, relevancy: torch.Tensor | None = None) -> torch.Tensor:
        """similarity, relevancy: (B, B); ``relevancy`` is required, its diagonal scales the margins. Returns a
        scalar."""
        _check_square(similarity, min_size=2)
        relevancy = self._require_relevancy(relevancy, similarity)

        def terms(sim: torch.Tensor, rel: torch.Tensor) -> torch.Tensor:
            return F.relu(rel.diagonal().unsqueeze(1) * self.margin - _positive_gap(sim))

        return _bidirectional_triplets(terms, similarity, relevancy, self.reduction)


def quantize_relevancy(relevancy: torch.Tensor, levels: int) -> torch.Tensor:
    """floor(c * levels) / levels: the authors' storage of relevancy as uint8 multiples of 1 / ``levels`` (240).

    A relevancy that is a multiple of 1 / ``levels`` up to float rounding (0.35 is 83.99999 / 240 in float32) keeps
    its value: the floor is taken after adding 1e-4 of a level.
    """
    return torch.floor(relevancy * levels + 1e-4) / levels


def sms_terms(
    similarity: torch.Tensor,
    relevancy: torch.Tensor,
    margin: float,
    tau: float,
    lambda_: float,
    neutral: Literal["relaxed", "hinge"] = "relaxed",
    relevancy_levels: int | None = None,
) -> torch.Tensor:
    """One-direction SMS triplet terms (EVA02-AT Eqs. 13-16) for j = i (anchor's positive), k = column.

    With R = c_ii - c_ik and gap = S_ii - S_ik:
        R >= lambda:   [R gamma - gap]_+      (pull the positive above the negative)
        R <= -lambda:  [gap - R gamma]_+      (the "negative" is more relevant: push it above)
        |R| < lambda:  [|R gamma - gap| - tau]_+ ("relaxed")  or  [gap]_+ ("hinge", Eq. 16 as printed)

    The relaxed branch is the authors' released loss; at R = 0 it is Eq. 15's [|S_ij - S_ik| - tau]_+, and for
    0 < |R| < lambda it keeps the margin R gamma as the other two branches do. With ``relevancy_levels`` (the
    authors' 240) the negatives' c_ik are quantised with `quantize_relevancy` while the positive's c_ii keeps its
    value, as in the authors' code (the sampled positive's relevancy travels with the batch as a float; the
    matrix they index for the negatives is uint8).

    The branch tests allow `BOUNDARY_TOLERANCE` of rounding, so R = lambda exactly takes the R >= lambda branch
    whatever the floating-point error of c_ii - c_ik (0.5 - 0.4 is 0.0999999 in float32, 0.6 - 0.5 is
    0.1000000).

    Returns:
        (B, B) terms; the diagonal (k = i) must be left out by the caller.
    """
    gap = _positive_gap(similarity)
    negatives = relevancy if relevancy_levels is None else quantize_relevancy(relevancy, relevancy_levels)
    r = relevancy.diagonal().unsqueeze(1) - negatives
    offset = r * margin - gap
    pull = F.relu(offset)
    push = F.relu(-offset)
    small = F.relu(offset.abs() - tau) if neutral == "relaxed" else F.relu(gap)
    edge = lambda_ - BOUNDARY_TOLERANCE
    return torch.where(r >= edge, pull, torch.where(r <= -edge, push, small))


AUTHORS_RELEVANCY_LEVELS = 240
SMS_PRESETS: dict[str, dict[str, Any]] = {
    # The paper's text (Sec. IV-B): lambda "equals the threshold for selecting positive pairs", epsilon = 0.1.
    "paper": {"lambda_": 0.1, "relevancy_levels": None},
    # The authors' released loss (xqwang14/SMS-Loss): relevancy stored as uint8 x 240, edge 1.1 / 240, so only
    # R ~ 0 (equal relevancy, up to the uint8 truncation) is neutral.
    "authors_code": {"lambda_": 1.1 / AUTHORS_RELEVANCY_LEVELS, "relevancy_levels": AUTHORS_RELEVANCY_LEVELS},
}
DEFAULT_SMS_PRESET = "authors_code"
"""The recipes' SMS preset (`build_loss`): the authors' released loss, which produced the paper's EK-100 numbers."""


class SMSLoss(RetrievalLoss):
    """Symmetric Multi-Similarity loss for soft labels (EVA02-AT Eq. 16, branches in `sms_terms`).

    Three settings shape it: the margin gamma (0.6), the relaxation tau of the neutral branch (0.1) and the edge
    lambda that decides which |R| count as neutral. The paper's text sets lambda to the hard-mining epsilon
    (0.1); the authors' released loss uses lambda = 1.1 / 240 on relevancy quantised to multiples of 1 / 240, so
    that only R ~ 0 is neutral. `SMS_PRESETS` / `from_preset` name both ("paper", the class defaults, and
    "authors_code", `DEFAULT_SMS_PRESET`: what `build_loss("sms")` builds, because it produced the paper's
    numbers).

    ``relevancy`` is required: R = c_ii - c_ik of every triplet, negatives included, picks its branch.

    Args:
        margin: gamma.
        tau: relaxation factor, >= 0.
        lambda_: edge lambda of the neutral branch, > 0.
        relevancy_levels: quantise the negatives' relevancy to multiples of 1 / levels (`quantize_relevancy`);
            None keeps it as given.
        neutral: "relaxed" ([|R gamma - gap| - tau]_+, Eq. 15 at R = 0) or "hinge" (Eq. 16 as printed) for
            |R| < lambda.
        reduction: "mean" over the 2 B (B - 1) triplets (the authors') or "sum" (the paper's printed sum).
    """

    uses_relevancy = True
    presets = SMS_PRESETS
    default_preset = DEFAULT_SMS_PRESET

    def __init__(
        self,
        margin: float = 0.6,
        tau: float = 0.1,
        lambda_: float = 0.1,
        relevancy_levels: int | None = None,
        neutral: Literal["relaxed", "hinge"] = "relaxed",
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        if tau < 0:
            raise ValueError(f"`tau` must be non-negative, got {tau}")
        if not lambda_ > 0:
            raise ValueError(f"`lambda_` (the SMS edge) must be positive, got {lambda_}")
        if relevancy_levels is not None and relevancy_levels < 1:
            raise ValueError(f"`relevancy_levels` must be a positive integer or None, got {relevancy_levels}")
        if neutral not in ("relaxed", "hinge"):
            raise ValueError(f"`neutral` must be 'relaxed' or 'hinge', got {neutral!r}")
        _check_reduction(reduction)
        self.margin, self.tau, self.lambda_, self.relevancy_levels = margin, tau, lambda_, relevancy_levels
        self.neutral, self.reduction = neutral, reduction

    def extra_repr(self) -> str:
        return (
            f"margin={self.margin}, tau={self.tau}, lambda_={self.lambda_:.6g}, "
            f"relevancy_levels={self.relevancy_levels}, neutral={self.neutral!r}, reduction={self.reduction!r}"
        )

    def forward(self, similarity: torch.Tensor, relevancy: torch.Tensor | None = None) -> torch.Tensor:
        """similarity, relevancy: (B, B), relevancy[i, j] = c_ij (required). Returns a scalar."""
        _check_square(similarity, min_size=2)
        relevancy = self._require_relevancy(relevancy, similarity)

        def terms(sim: torch.Tensor, rel: torch.Tensor) -> torch.Tensor:
            return sms_terms(
                sim, rel, self.margin, self.tau, self.lambda_, self.neutral, self.relevancy_levels
            )

        return _bidirectional_triplets(terms, similarity, relevancy, self.reduction)


class SMSHardLoss(SMSLoss):
    """SMS for hard multi-label data (EVA02-AT Eq. 17, Charades-Ego, gamma 0.3).

    `relevancy` (required) holds 0 / 1 and its diagonal is 1 (each clip's sampled text is one of its labels), so
    R = 1 - c_ik is 1 ([gamma - S_ii + S_ik]_+) or 0 ([|S_ii - S_ik| - tau]_+). The edge lambda is 0.5, anywhere
    between the two values; SMS's presets (relevancy storage) do not apply to hard labels.
    """

    hard_labels = True
    presets = {}
    default_preset = None

    def __init__(self, margin: float = 0.3, tau: float = 0.1, reduction: Reduction = "mean") -> None:
        super().__init__(margin=margin, tau=tau, lambda_=0.5, neutral="relaxed", reduction=reduction)

    def forward(self, similarity: torch.Tensor, relevancy: torch.Tensor | None = None) -> torch.Tensor:
        """similarity, relevancy: (B, B), relevancy in {0, 1} with a diagonal of 1. Returns a scalar."""
        relevancy = self._require_relevancy(relevancy, similarity)
        if not ((relevancy == 0) | (relevancy == 1)).all():
            raise ValueError("`relevancy` of SMSHardLoss must hold hard labels 0 / 1")
        if not (relevancy.diagonal() == 1).all():
            raise ValueError("`relevancy` of SMSHardLoss must have a diagonal of 1 (the sampled positives)")
        return super().forward(similarity, relevancy)


def _multi_positive_nce(
    logits: torch.Tensor, positive: torch.Tensor, extra: torch.Tensor | None
) -> torch.Tensor:
    """Mean over rows of -log(sum_{P_i} exp(logits) / sum_all exp(logits, extra))."""
    denominator = torch.logsumexp(logits if extra is None else torch.cat([logits, extra], dim=1), dim=1)
    numerator = torch.logsumexp(logits.masked_fill(~positive, float("-inf")), dim=1)
    return (denominator - numerator).mean()


class EgoNCELoss(RetrievalLoss):
    """EgoNCE (EgoVLPv2 Eq. 4; EgoVLP): InfoNCE whose positives are all pairs sharing a verb or a noun.

    L = L_v2t + L_t2v with L_v2t = -1/B sum_i log(sum_{k in P_i} exp(S_ik / T) / sum_j exp(S_ij / T) + extra),
    the negative log-likelihood (the printed Eq. 4 omits the minus sign). The positives P_i are thresholded from the
    relevancy: c_ik > 0, which under Eq. 5 (`pos_iou_relevancy`) means a shared verb or noun class, EgoVLPv2's
    definition. The matched pair (i, i) is always a positive. Extra negatives (EgoVLPv2's visually similar clips)
    only enlarge the denominators; to also use them as anchors, concatenate them into the batch instead.
    """

    uses_relevancy = True

    def __init__(self, temperature: float = 0.05) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"`temperature` must be positive, got {temperature}")
        self.temperature = temperature

    def forward(
        self,
        similarity: torch.Tensor,
        relevancy: torch.Tensor | None = None,
        negatives_v2t: torch.Tensor | None = None,
        negatives_t2v: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Compute EgoNCE.

        Args:
            similarity: (B, B) video . text.
            relevancy: (B, B) relevancy of video i to text j (required); the pairs with c_ij > 0 are positives. A
                bool mask is a 0 / 1 relevancy, e.g. `eva02at_hf.objectives.relevancy.egonce_positive_mask` with
                ``mode="both"`` (EgoVLP's released definition: a shared verb and a shared noun).
            negatives_v2t: optional (B, M) similarity of video i to M extra negative texts.
            negatives_t2v: optional (B, M') similarity of text i to M' extra negative videos.

        Returns:
            Scalar loss.
        """
        size = _check_square(similarity)
        relevancy = self._require_relevancy(relevancy, similarity)
        for name, extra in (("negatives_v2t", negatives_v2t), ("negatives_t2v", negatives_t2v)):
            if extra is not None and (extra.ndim != 2 or extra.shape[0] != size):
                raise ValueError(f"`{name}` must have shape ({size}, M), got {tuple(extra.shape)}")
        positive = (relevancy > 0) | torch.eye(size, dtype=torch.bool, device=relevancy.device)
        logits = similarity / self.temperature

        def scaled(extra: torch.Tensor | None) -> torch.Tensor | None:
            return None if extra is None else extra / self.temperature

        return _multi_positive_nce(logits, positive, scaled(negatives_v2t)) + _multi_positive_nce(
            logits.T, positive.T, scaled(negatives_t2v)
        )
