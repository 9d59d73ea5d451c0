"""LoRA fine-tuning through `peft`: low-rank adapters on the attention and MLP projections of both towers.

A LoRA layer computes W x + (alpha / r) B A x with W frozen, A (r x in) and B (out x r) trained (B starts at zero,
so the adapted model starts as the base model); merging writes W + (alpha / r) B A into the weight.

>>> model = add_lora(EVA02ATForVideoTextRetrieval.from_pretrained("eva02at-b"), r=8, alpha=16)
>>> model.print_trainable_parameters()          # the adapters only; the towers, projections and norms are frozen
>>> model.save_pretrained("adapter")             # adapter_config.json + adapter_model.safetensors
>>> PeftModel.from_pretrained(base, "adapter").merge_and_unload()   # back to a plain EVA02ATForVideoTextRetrieval
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from peft import LoraConfig, PeftModel, get_peft_model

# The linear layers of the video tower's attention (q / k / v / out) and SwiGLU MLP (gate / up / down) and of the
# CLIP text tower's attention (q / k / v / out) and MLP (fc1 / fc2); the joint-space projections are left out.
LORA_TARGET_MODULES = (
    "q_proj",
    "k_proj",
    "v_proj",
    "out_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
    "fc1",
    "fc2",
)


def add_lora(
    model: torch.nn.Module,
    r: int,
    alpha: float | None = None,
    target_modules: Sequence[str] | None = None,
    dropout: float = 0.0,
) -> PeftModel:
    """Wrap ``model`` with LoRA adapters of rank ``r`` (`peft.get_peft_model`); everything else is frozen.

    Args:
        r: adapter rank.
        alpha: LoRA alpha; the update is scaled by alpha / r (default alpha = 2 r).
        target_modules: names (suffixes) of the linear layers to adapt (default `LORA_TARGET_MODULES`).
        dropout: dropout on the adapters' input.
    """
    if r < 1:
        raise ValueError(f"--lora_r must be >= 1, got {r}.")
    targets = list(target_modules or LORA_TARGET_MODULES)
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules() if name}
    unknown = sorted(set(targets) - present)
    if unknown:
        raise ValueError(
            f"--lora_target_modules {unknown} name no layer of the model; the attention and MLP "
            f"projections are {list(LORA_TARGET_MODULES)}."
        )
    config = LoraConfig(
        r=r, lora_alpha=2 * r if alpha is None else alpha, target_modules=targets, lora_dropout=dropout
    )
    return get_peft_model(model, config)


def merged_copy(model: PeftModel) -> torch.nn.Module:
    """A standalone copy of the base model with the adapters merged into its weights; ``model`` is left as it is
    (it keeps training). Holds a second copy of the model while it exists."""
    return copy.deepcopy(model).merge_and_unload()


__all__ = ["LORA_TARGET_MODULES", "add_lora", "merged_copy"]
