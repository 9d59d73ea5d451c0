"""Activation memory of the EVA02-AT video encoder in training, as a function of the clip length.

A training forward keeps, per encoder layer and per token, the inputs autograd needs for the backward pass.
Counted from the layer's operations (`EVA02ATEncoderLayer`): the inputs of the four LayerNorms, the LayerNorm
output feeding q / k / v, the rotated q and k, v, the attention output, the inputs of the output and down
projections and of the SwiGLU product (gate, SiLU(gate), up): 9 D + 5 F values, plus the attention's own state,
B * heads * L log-sum-exp values for SDPA kernels, or the B * heads * L * L probabilities for eager attention.
The estimate is for a model whose weights and activations share one dtype (float32, or the model cast to
bfloat16 / float16). Mixed precision (`torch.autocast`) falls in between: the residual stream stays float32,
each linear layer keeps its own low-precision copy of its input and the low-precision weight copies are kept
for the step; measured on CPU it holds 0.6-0.7x the float32 figure (see docs/performance.md).
"""

from __future__ import annotations

import torch

from ..configuration_eva02at import EVA02ATConfig, EVA02ATVisionConfig

LAYER_NORMS_PER_LAYER = 4


def _layer_bytes_per_token(
    config: EVA02ATVisionConfig, num_tokens: int, element: int, attn_implementation: str
) -> int:
    """Bytes one encoder layer keeps for backward per token of one clip (`element`: bytes per activation)."""
    hidden_bytes = 9 * element * config.hidden_size
    intermediate_bytes = 5 * element * config.intermediate_size
    norm_statistics = LAYER_NORMS_PER_LAYER * 2 * 4
    if attn_implementation == "eager":
        # softmax is taken in float32 and saved; in low precision its cast to the activation dtype is saved too.
        probability_bytes = 4 if element == 4 else 4 + element
        attention_state = config.num_attention_heads * num_tokens * probability_bytes
    else:
        attention_state = config.num_attention_heads * 4
    return hidden_bytes + intermediate_bytes + norm_statistics + attention_state


def estimate_activation_memory(
    config: EVA02ATVisionConfig | EVA02ATConfig,
    num_frames: int,
    batch_size: int = 1,
    dtype: torch.dtype = torch.float32,
    attn_implementation: str = "sdpa",
    gradient_checkpointing: bool = False,
) -> int:
    """Bytes of activations a training step of the vision tower holds at its peak (parameters, gradients and
    optimizer state excluded), for (B, T, C, H, W) clips.

    Args:
        config: the vision tower configuration (or a full `EVA02ATConfig`, whose `vision_config` is used).
        num_frames: T, frames per clip; the sequence has L = 1 + T * N tokens.
        batch_size: B, clips per step.
        dtype: the model's (weights' and activations') dtype.
        attn_implementation: `"sdpa"` (flash / memory-efficient kernels, O(L) state) or `"eager"` (keeps the
            O(L^2) attention probabilities).
        gradient_checkpointing: with `activation_checkpointing_enable()`, each layer keeps only its input
            hidden states; the backward pass recomputes one layer at a time, which adds one layer's activations.

    Returns:
        The estimate in bytes: `layers * B * L * per_token_layer_bytes` without checkpointing,
        `layers * B * L * D * bytes + B * L * per_token_layer_bytes` with it, plus the patch-embedding input,
        the final LayerNorm input and the RoPE table.
    """
    if isinstance(config, EVA02ATConfig):
        config = config.vision_config
    if attn_implementation not in ("sdpa", "eager"):
        raise ValueError(f"attn_implementation must be 'sdpa' or 'eager', got {attn_implementation!r}.")
    if num_frames < 1 or batch_size < 1:
        raise ValueError(f"num_frames and batch_size must be >= 1, got {num_frames} and {batch_size}.")
    grid = config.image_size // config.patch_size
    patches = num_frames * grid * grid
    tokens = 1 + patches
    head_dim = config.hidden_size // config.num_attention_heads
    element = torch.empty((), dtype=dtype).element_size()
    per_layer = batch_size * tokens * _layer_bytes_per_token(config, tokens, element, attn_implementation)
    if gradient_checkpointing:
        layers = config.num_hidden_layers * batch_size * tokens * config.hidden_size * element + per_layer
    else:
        layers = config.num_hidden_layers * per_layer
    pixels = batch_size * patches * config.num_channels * config.patch_size**2 * element
    final_norm = batch_size * tokens * (config.hidden_size * element + 2 * 4)
    rope_table = tokens * 2 * head_dim * 4
    return layers + pixels + final_norm + rope_table


__all__ = ["estimate_activation_memory"]
