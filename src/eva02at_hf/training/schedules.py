"""Learning-rate schedules of the recipes, built from torch's schedulers (one step per optimizer update).

* ``"constant"``: the fixed learning rate of Ego4D pre-training (AdamW 3e-5).
* ``"cosine"``: linear warm-up from ``warmup_start_lr`` to the peak over ``warmup_steps`` (the first epoch in the
  paper: 1e-6 -> 2e-5 on EK-100, 1e-6 -> 3e-5 on Charades-Ego), then cosine decay to ``final_lr``. The paper does
  not state the post-warm-up schedule; cosine decay is AVION's, whose fine-tuning recipe EVA02-AT follows.
"""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import ConstantLR, CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR

SCHEDULES = ("constant", "cosine")


def build_scheduler(
    optimizer: Optimizer,
    kind: str,
    total_steps: int,
    warmup_steps: int = 0,
    warmup_start_lr: float = 1e-6,
    final_lr: float = 1e-6,
) -> LRScheduler:
    """Scheduler over ``total_steps`` optimizer updates; the optimizer's ``lr`` is the peak learning rate."""
    if kind not in SCHEDULES:
        raise ValueError(f"`lr_schedule` must be one of {SCHEDULES}, got {kind!r}")
    if total_steps < 1 or not 0 <= warmup_steps <= total_steps:
        raise ValueError(
            f"need 0 <= warmup_steps ({warmup_steps}) <= total_steps ({total_steps}), total >= 1"
        )
    peak = optimizer.param_groups[0]["lr"]
    if warmup_steps and not 0 < warmup_start_lr <= peak:
        raise ValueError(f"`warmup_start_lr` ({warmup_start_lr}) must lie in (0, peak learning rate {peak}]")
    if kind == "constant":
        after: LRScheduler = ConstantLR(optimizer, factor=1.0, total_iters=0)
    else:
        after = CosineAnnealingLR(optimizer, T_max=max(total_steps - warmup_steps, 1), eta_min=final_lr)
    if not warmup_steps:
        return after
    warmup = LinearLR(
        optimizer, start_factor=warmup_start_lr / peak, end_factor=1.0, total_iters=warmup_steps
    )
    return SequentialLR(optimizer, [warmup, after], milestones=[warmup_steps])
