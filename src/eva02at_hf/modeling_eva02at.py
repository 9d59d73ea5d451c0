"""EVA02-AT: the EVA02-CLIP image transformer turned into a video encoder (paper Sec. IV-A), the paper's CLIP ViT
baseline video encoder (AVION), and the video-text retrieval model built on either with transformers' CLIP text
tower.

Shapes: B batch, T frames, h x w patch grid, N = h * w patches per frame, L = 1 + T * N tokens, D width.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, PreTrainedModel
from transformers.models.clip.modeling_clip import CLIPAttention, CLIPEncoderLayer, CLIPTextModel
from transformers.processing_utils import Unpack
from transformers.utils import ModelOutput, TransformersKwargs, can_return_tuple, logging
from transformers.utils.generic import merge_with_config_defaults
from transformers.utils.output_capturing import capture_outputs

from .configuration_eva02at import EVA02ATConfig, EVA02ATVisionConfig, EVA02ATViTVisionConfig
from .rope import (
    angles_to_sincos,
    apply_rope,
    prepend_identity_rotation,
    spatial_rope_angles,
    spatial_temporal_rope_angles,
    split_3d_rope_angles,
    temporal_rope_angles,
)

logger = logging.get_logger(__name__)


@dataclass
class EVA02ATRetrievalOutput(ModelOutput):
    """Output of [`EVA02ATForVideoTextRetrieval`].

    Args:
        loss: bidirectional InfoNCE on the scaled logits, when `return_loss=True`.
        logits_per_video: (B_video, B_text) scaled cosine similarities.
        logits_per_text: (B_text, B_video), the transpose.
        video_embeds: (B_video, projection_dim), L2-normalised.
        text_embeds: (B_text, projection_dim), L2-normalised.
        vision_model_output / text_model_output: the towers' outputs.
    """

    loss: torch.Tensor | None = None
    logits_per_video: torch.Tensor | None = None
    logits_per_text: torch.Tensor | None = None
    video_embeds: torch.Tensor | None = None
    text_embeds: torch.Tensor | None = None
    vision_model_output: BaseModelOutputWithPooling | None = None
    text_model_output: BaseModelOutputWithPooling | None = None

    def to_tuple(self) -> tuple[Any, ...]:
        return tuple(
            self[k] if k not in ("text_model_output", "vision_model_output") else getattr(self, k).to_tuple()
            for k in self.keys()
        )


def resample_spatial_position_embedding(
    position_embedding: torch.Tensor, grid_size: tuple[int, int]
) -> torch.Tensor:
    """Bicubically resize P_xy (1, 1 + n * n, D), CLS first, to a (h, w) patch grid: (1, 1 + h * w, D)."""
    cls_position, patch_positions = position_embedding[:, :1], position_embedding[:, 1:]
    old_side = int(patch_positions.shape[1] ** 0.5)
    if (old_side, old_side) == tuple(grid_size):
        return position_embedding
    grid = patch_positions.reshape(1, old_side, old_side, -1).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=tuple(grid_size), mode="bicubic", align_corners=False)
    patch_positions = grid.permute(0, 2, 3, 1).reshape(1, -1, grid.shape[1]).to(position_embedding.dtype)
    return torch.cat([cls_position, patch_positions], dim=1)


def resample_temporal_position_embedding(temporal_embedding: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Linearly resize P_t (1, T0, D) to (1, T, D); the first and last frames keep their embeddings."""
    if temporal_embedding.shape[1] == num_frames:
        return temporal_embedding
    resized = F.interpolate(
        temporal_embedding.transpose(1, 2).float(), size=num_frames, mode="linear", align_corners=True
    )
    return resized.transpose(1, 2).to(temporal_embedding.dtype)


def as_clips(pixel_values: torch.Tensor, num_channels: int) -> torch.Tensor:
    """(B, T, C, H, W) clips pass through, (B, C, H, W) images become one-frame clips; other shapes are an error."""
    if pixel_values.ndim == 4:
        pixel_values = pixel_values.unsqueeze(1)
    if pixel_values.ndim != 5 or pixel_values.shape[2] != num_channels:
        raise ValueError(
            f"pixel_values must have shape (batch, frames, {num_channels}, height, width) or "
            f"(batch, {num_channels}, height, width); got {tuple(pixel_values.shape)}."
        )
    return pixel_values


class EVA02ATVisionEmbeddings(nn.Module):
    """Tube patch embedding, CLS token and the learnable position embeddings of Eq. 7.

    z0 = x0 + P_xy (replicated over T) + P_t (replicated over the N patches of a frame); the CLS token gets the
    CLS entry of P_xy only. P_xy and P_t are resampled on the fly for other image sizes or frame counts; `resize`
    resamples the parameters themselves (used when a checkpoint is loaded at another size).
    """

    def __init__(
        self,
        config: EVA02ATVisionConfig | EVA02ATViTVisionConfig,
        patch_bias: bool = True,
        temporal_embedding: bool = True,
    ) -> None:
        super().__init__()
        self.config = config
        patch, grid = config.patch_size, config.image_size // config.patch_size
        # The paper's 1 x p x p tube kernel, saved as (D, C, 1, p, p); a temporal extent of 1 makes it a per-frame
        # conv2d, which `forward` runs on the (B * T, C, H, W) frames so clips need no (B, C, T, H, W) transpose.
        self.patch_embedding = nn.Conv3d(
            config.num_channels,
            config.hidden_size,
            kernel_size=(1, patch, patch),
            stride=(1, patch, patch),
            bias=patch_bias,
        )
        self.class_embedding = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.position_embedding = nn.Parameter(torch.zeros(1, 1 + grid * grid, config.hidden_size))
        self.temporal_embedding = (
            nn.Parameter(torch.zeros(1, config.num_frames, config.hidden_size))
            if temporal_embedding
            else None
        )

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """(B, T, C, H, W) -> tokens (B, 1 + T * N, D) and the patch grid (h, w)."""
        batch_size, num_frames = pixel_values.shape[:2]
        weight = self.patch_embedding.weight[:, :, 0]
        frames = pixel_values.flatten(0, 1).to(weight.dtype)
        patches = F.conv2d(frames, weight, self.patch_embedding.bias, stride=self.patch_embedding.stride[1:])
        grid_size = (patches.shape[-2], patches.shape[-1])
        patches = patches.flatten(2).transpose(1, 2).reshape(batch_size, num_frames, -1, patches.shape[1])

        position_embedding = resample_spatial_position_embedding(self.position_embedding, grid_size)
        patches = patches + position_embedding[:, None, 1:]
        if self.temporal_embedding is not None:
            if self.training and num_frames != self.temporal_embedding.shape[1]:
                logger.warning_once(
                    f"Training on {num_frames}-frame clips with a temporal embedding P_t sized for "
                    f"{self.temporal_embedding.shape[1]} frames: P_t is interpolated, so only some of its rows "
                    "get gradients. Resize it first: from_pretrained(..., num_frames=...) or "
                    "model.resize_position_embeddings(num_frames=...)."
                )
            patches = (
                patches
                + resample_temporal_position_embedding(self.temporal_embedding, num_frames)[:, :, None]
            )
        cls_token = (self.class_embedding + position_embedding[:, :1]).expand(batch_size, -1, -1)
        return torch.cat([cls_token, patches.flatten(1, 2)], dim=1), grid_size

    def resize(self, num_frames: int | None = None, image_size: int | None = None) -> None:
        """Resample P_t to `num_frames` and P_xy to `image_size` in place, and update the config."""
        config = self.config
        if num_frames is not None and num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}.")
        if image_size is not None and (image_size < config.patch_size or image_size % config.patch_size):
            raise ValueError(
                f"image_size must be a positive multiple of patch_size ({config.patch_size}), got {image_size}."
            )
        if num_frames is not None and self.temporal_embedding is not None:
            resized = resample_temporal_position_embedding(self.temporal_embedding.data, num_frames)
            self.temporal_embedding = nn.Parameter(resized)
        if image_size is not None:
            grid = image_size // config.patch_size
            resized = resample_spatial_position_embedding(self.position_embedding.data, (grid, grid))
            self.position_embedding = nn.Parameter(resized)
        config.num_frames = num_frames or config.num_frames
        config.image_size = image_size or config.image_size


class EVA02ATRotaryEmbedding(nn.Module):
    """Builds the (1 + T * N, 2 * head_dim) sin/cos table of the configured RoPE once per forward pass: an identity
    rotation for the CLS token (it carries no position), then the patches.

    Tables are cached per (frames, grid, device) shape, so every layer and every later call with the same shape
    reuses them.
    """

    def __init__(self, config: EVA02ATVisionConfig) -> None:
        super().__init__()
        self.config = config
        self.head_dim = config.hidden_size // config.num_attention_heads
        self._cache: dict[tuple[int, tuple[int, int], torch.device], torch.Tensor] = {}

    def angles(self, num_frames: int, grid_size: tuple[int, int]) -> torch.Tensor:
        """Rotation angles (T * N, head_dim / 2), frame-major then row-major: EVA02's 2D spatial angles plus each
        frame's temporal angles (`temporal_rope="additive"`, Eqs. 8-9), the spatial angles alone on every frame
        (`"none"`), or CogVideoX's split 3D angles (`"split_3d"`)."""
        config = self.config
        if config.temporal_rope == "split_3d":
            return split_3d_rope_angles(num_frames, grid_size, self.head_dim, config.rope_theta)
        spatial = spatial_rope_angles(
            grid_size, self.head_dim, config.rope_theta, config.rope_reference_grid_size
        )
        if config.temporal_rope == "none":
            return spatial.repeat(num_frames, 1)
        positions = torch.arange(num_frames, dtype=torch.float32)
        if config.temporal_rope_positions == "rescaled":
            positions = positions * (
                (config.temporal_rope_reference_frames or config.num_frames) / num_frames
            )
        temporal = temporal_rope_angles(positions, self.head_dim, config.temporal_rope_theta)
        return spatial_temporal_rope_angles(spatial, temporal)

    def table(self, num_frames: int, grid_size: tuple[int, int], device: torch.device) -> torch.Tensor:
        """The uncached (1 + T * N, 2 * head_dim) table."""
        return prepend_identity_rotation(angles_to_sincos(self.angles(num_frames, grid_size))).to(device)

    def forward(self, num_frames: int, grid_size: tuple[int, int], device: torch.device) -> torch.Tensor:
        if torch.compiler.is_compiling():
            return self.table(num_frames, grid_size, device)
        key = (num_frames, tuple(grid_size), device)
        if key not in self._cache:
            self._cache[key] = self.table(num_frames, grid_size, device)
        return self._cache[key]


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference attention: softmax(q k^T * scaling + mask) v. Inputs (B, heads, L, d); output (B, L, heads, d)."""
    attn_weights = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = F.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = F.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value).transpose(1, 2).contiguous()
    return attn_output, attn_weights


class EVA02ATAttention(nn.Module):
    """EVA02 joint space-time self-attention (Eq. 10) with QK-RoPE on patch tokens and sub-LN before the output
    projection. q and v projections carry a bias, k does not (EVA02-CLIP)."""

    def __init__(self, config: EVA02ATVisionConfig) -> None:
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = False
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.inner_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(
        self, hidden_states: torch.Tensor, rope: torch.Tensor, **kwargs: Unpack[TransformersKwargs]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """hidden_states (B, L, D), rope (L, 2 * head_dim) with an identity row for the CLS token -> (B, L, D)
        and the attention weights (eager)."""
        hidden_shape = (*hidden_states.shape[:-1], self.num_heads, self.head_dim)
        query = self.q_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        key = self.k_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        value = self.v_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        query = apply_rope(query, rope)
        key = apply_rope(key, rope)

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, attn_weights = attention_interface(
            self,
            query,
            key,
            value,
            None,
            scaling=self.scaling,
            dropout=self.config.attention_dropout if self.training else 0.0,
            **kwargs,
        )
        attn_output = attn_output.reshape(*hidden_states.shape[:-1], -1)
        return self.out_proj(self.inner_norm(attn_output)), attn_weights


class EVA02ATSwiGLU(nn.Module):
    """SwiGLU MLP with sub-LN: down(norm(act(gate(x)) * up(x)))."""

    def __init__(self, config: EVA02ATVisionConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act_fn = ACT2FN[config.hidden_act]
        self.inner_norm = nn.LayerNorm(config.intermediate_size, eps=config.layer_norm_eps)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.act_fn(self.gate_proj(hidden_states)) * self.up_proj(hidden_states)
        return self.down_proj(self.inner_norm(hidden_states))


class EVA02ATEncoderLayer(GradientCheckpointingLayer):
    """Pre-LN EVA02 block: x + Attn(LN(x)), then x + SwiGLU(LN(x))."""

    def __init__(self, config: EVA02ATVisionConfig) -> None:
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.self_attn = EVA02ATAttention(config)
        self.layer_norm2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = EVA02ATSwiGLU(config)

    def forward(
        self, hidden_states: torch.Tensor, rope: torch.Tensor, **kwargs: Unpack[TransformersKwargs]
    ) -> torch.Tensor:
        attn_output, _ = self.self_attn(self.layer_norm1(hidden_states), rope, **kwargs)
        hidden_states = hidden_states + attn_output
        return hidden_states + self.mlp(self.layer_norm2(hidden_states))


class EVA02ATPreTrainedModel(PreTrainedModel):
    """Weight initialisation (EVA02's truncated normal; P_t and the projection head per the config) and shared
    capabilities."""

    config: EVA02ATConfig
    base_model_prefix = "eva02at"
    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = [
        "EVA02ATEncoderLayer",
        "EVA02ATVisionEmbeddings",
        "CLIPEncoderLayer",
        "CLIPTextEmbeddings",
    ]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_record_outputs = {"hidden_states": EVA02ATEncoderLayer, "attentions": EVA02ATAttention}

    @classmethod
    def from_pretrained(
        cls, *args: Any, num_frames: int | None = None, image_size: int | None = None, **kwargs: Any
    ) -> "EVA02ATPreTrainedModel":
        """`PreTrainedModel.from_pretrained`, plus `num_frames` / `image_size` to load a checkpoint at another
        clip length or resolution: P_t is linearly and P_xy bicubically interpolated (RoPE needs nothing)."""
        model = super().from_pretrained(*args, **kwargs)
        if num_frames is not None or image_size is not None:
            model.resize_position_embeddings(num_frames=num_frames, image_size=image_size)
        return model

    def resize_position_embeddings(
        self, num_frames: int | None = None, image_size: int | None = None
    ) -> None:
        """Resample the learnable position embeddings to a new frame count and/or image size, in place."""
        if hasattr(self, "vision_model"):
            self.vision_model.resize_position_embeddings(num_frames=num_frames, image_size=image_size)
        else:
            self.embeddings.resize(num_frames=num_frames, image_size=image_size)

    @classmethod
    def is_custom_code(cls) -> bool:
        """False: `_init_weights` writes through `transformers.initialization`, so weights missing from a
        checkpoint get exactly a new model's initialisation. (For custom code transformers otherwise marks
        parameterless modules such as `CLIPAttention` as initialised and skips them, so the text tower's missing
        weights would get the generic std instead of CLIP's scheme.)"""
        return False

    def _init_weights(self, module: nn.Module) -> None:
        config = self.config
        vision_config = getattr(config, "vision_config", config)
        std = vision_config.initializer_range
        if isinstance(module, nn.Linear | nn.Conv3d):
            # config.head_init_scale on the video projection; at these stds timm's absolute truncation (+-2)
            # never binds, so this is trunc-normal(std) x scale
            is_head = module is getattr(self, "visual_projection", None)
            init.trunc_normal_(module.weight, std=std * (config.head_init_scale if is_head else 1.0))
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, EVA02ATVisionEmbeddings):
            init.trunc_normal_(module.class_embedding, std=std)
            init.trunc_normal_(module.position_embedding, std=std)
            # the ViT baseline keeps AVION's zero P_t (its config has no temporal_embedding_init)
            temporal_init = getattr(vision_config, "temporal_embedding_init", "zeros")
            if module.temporal_embedding is not None and temporal_init == "trunc_normal":
                init.trunc_normal_(module.temporal_embedding, std=std)
            elif module.temporal_embedding is not None:
                init.zeros_(module.temporal_embedding)
        elif isinstance(module, EVA02ATForVideoTextRetrieval):
            init.constant_(module.logit_scale, config.logit_scale_init_value)
            init.normal_(module.text_projection.weight, std=config.text_config.hidden_size**-0.5)


class EVA02ATVisionModel(EVA02ATPreTrainedModel):
    """The EVA02-AT video encoder: joint attention over all T * N patches of a clip, pooled at the CLS token."""

    config: EVA02ATVisionConfig
    main_input_name = "pixel_values"
    input_modalities = ("video",)
    base_model_prefix = "vision_model"

    def __init__(self, config: EVA02ATVisionConfig) -> None:
        super().__init__(config)
        self.embeddings = EVA02ATVisionEmbeddings(config, temporal_embedding=config.use_temporal_embedding)
        self.rotary_embedding = EVA02ATRotaryEmbedding(config)
        self.layers = nn.ModuleList([EVA02ATEncoderLayer(config) for _ in range(config.num_hidden_layers)])
        self.post_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.patch_embedding

    def resize_position_embeddings(
        self, num_frames: int | None = None, image_size: int | None = None
    ) -> None:
        """Resample P_t / P_xy in place; `rescaled` temporal RoPE keeps referring to the frame count the weights
        were trained at."""
        config = self.config
        if num_frames is not None and num_frames >= 1 and config.temporal_rope_positions == "rescaled":
            config.temporal_rope_reference_frames = config.temporal_rope_reference_frames or config.num_frames
        self.embeddings.resize(num_frames=num_frames, image_size=image_size)

    @merge_with_config_defaults
    @capture_outputs(tie_last_hidden_states=False)
    def forward(
        self, pixel_values: torch.Tensor, **kwargs: Unpack[TransformersKwargs]
    ) -> BaseModelOutputWithPooling:
        """Encode clips.

        Args:
            pixel_values: (B, T, C, H, W) clips, or (B, C, H, W) images (treated as one frame at t = 0).

        Returns:
            `last_hidden_state` (B, 1 + T * N, D) after the final LayerNorm, `pooler_output` (B, D) its CLS token;
            `hidden_states` / `attentions` when `output_hidden_states` / `output_attentions` are set.
        """
        pixel_values = as_clips(pixel_values, self.config.num_channels)
        hidden_states, grid_size = self.embeddings(pixel_values)
        rope = self.rotary_embedding(pixel_values.shape[1], grid_size, hidden_states.device)
        for layer in self.layers:
            hidden_states = layer(hidden_states, rope, **kwargs)
        last_hidden_state = self.post_layernorm(hidden_states)
        return BaseModelOutputWithPooling(
            last_hidden_state=last_hidden_state, pooler_output=last_hidden_state[:, 0]
        )


class EVA02ATViTVisionModel(EVA02ATPreTrainedModel):
    """The CLIP ViT video encoder of AVION (the paper's ViT baseline): joint attention over all T * N patches of a
    clip in transformers' CLIP blocks, pooled at the CLS token."""

    config: EVA02ATViTVisionConfig
    main_input_name = "pixel_values"
    input_modalities = ("video",)
    base_model_prefix = "vision_model"
    _can_record_outputs = {"hidden_states": CLIPEncoderLayer, "attentions": CLIPAttention}

    def __init__(self, config: EVA02ATViTVisionConfig) -> None:
        super().__init__(config)
        self.embeddings = EVA02ATVisionEmbeddings(config, patch_bias=False)
        self.pre_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.layers = nn.ModuleList([CLIPEncoderLayer(config) for _ in range(config.num_hidden_layers)])
        self.post_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.patch_embedding

    @merge_with_config_defaults
    @capture_outputs(tie_last_hidden_states=False)
    def forward(
        self, pixel_values: torch.Tensor, **kwargs: Unpack[TransformersKwargs]
    ) -> BaseModelOutputWithPooling:
        """Encode clips.

        Args:
            pixel_values: (B, T, C, H, W) clips, or (B, C, H, W) images (one frame).

        Returns:
            `last_hidden_state` (B, 1 + T * N, D) from the last block (before `ln_post`, as in CLIP), and
            `pooler_output` (B, D), the CLS token after `ln_post`.
        """
        pixel_values = as_clips(pixel_values, self.config.num_channels)
        hidden_states, _ = self.embeddings(pixel_values)
        hidden_states = self.pre_layernorm(hidden_states)
        for layer in self.layers:
            hidden_states = layer(hidden_states, None, **kwargs)
        return BaseModelOutputWithPooling(
            last_hidden_state=hidden_states, pooler_output=self.post_layernorm(hidden_states[:, 0])
        )


class EVA02ATForVideoTextRetrieval(EVA02ATPreTrainedModel):
    """EVA02-AT dual encoder: video tower (EVA02-AT, or the CLIP ViT baseline) + CLIP text tower, each projected to
    `projection_dim` and L2-normalised.

    The vision projection has a bias with the EVA02 tower (EVA02-CLIP's timm head) and none with the ViT (CLIP's
    `proj`); the text projection has none (CLIP).
    """

    config: EVA02ATConfig
    main_input_name = "input_ids"

    def __init__(self, config: EVA02ATConfig) -> None:
        super().__init__(config)
        vision_class = EVA02ATViTVisionModel if config.uses_vit_backbone else EVA02ATVisionModel
        self.vision_model = vision_class._from_config(config.vision_config)
        self.text_model = CLIPTextModel._from_config(config.text_config)
        self.visual_projection = nn.Linear(
            config.vision_config.hidden_size, config.projection_dim, bias=not config.uses_vit_backbone
        )
        self.text_projection = nn.Linear(config.text_config.hidden_size, config.projection_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(config.logit_scale_init_value))
        self.post_init()

    def save_pretrained(self, save_directory: str | os.PathLike, *args: Any, **kwargs: Any) -> None:
        """`PreTrainedModel.save_pretrained`. A model registered for `AutoModel` (as `import eva02at_hf` does)
        also lists the EVA02-AT pipelines in its config (`custom_pipelines`) and writes their module next to the
        modeling code, so `pipeline("zero-shot-video-classification" | "video-text-retrieval", model=folder,
        trust_remote_code=True)` works where the package is not installed."""
        if self._auto_class is None:
            return super().save_pretrained(save_directory, *args, **kwargs)
        from .pipelines_eva02at import custom_pipelines

        previous = getattr(self.config, "custom_pipelines", None)
        self.config.custom_pipelines = custom_pipelines()
        try:
            super().save_pretrained(save_directory, *args, **kwargs)
        finally:
            if previous is None:
                del self.config.custom_pipelines
            else:
                self.config.custom_pipelines = previous

    def get_input_embeddings(self) -> nn.Module:
        """The text tower's token embedding (as `CLIPModel`)."""
        return self.text_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.text_model.set_input_embeddings(value)

    @can_return_tuple
    def get_video_features(
        self, pixel_values: torch.Tensor, **kwargs: Unpack[TransformersKwargs]
    ) -> tuple | BaseModelOutputWithPooling:
        """Encode (B, T, C, H, W) clips (or (B, C, H, W) images).

        Returns the video tower's output with `pooler_output` replaced by the projected (B, projection_dim)
        embedding, not normalised: `F.normalize(out.pooler_output, dim=-1)` gives the unit vectors `forward`
        compares. `output_hidden_states`, `output_attentions` and `return_dict` work as in the tower.
        """
        vision_outputs: BaseModelOutputWithPooling = self.vision_model(
            pixel_values=pixel_values, return_dict=True, **kwargs
        )
        vision_outputs.pooler_output = self.visual_projection(vision_outputs.pooler_output)
        return vision_outputs

    @can_return_tuple
    def get_text_features(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple | BaseModelOutputWithPooling:
        """Encode (B, 77) token ids.

        Returns the text tower's output with `pooler_output` replaced by the projected (B, projection_dim)
        embedding, not normalised (as `get_video_features`).
        """
        text_outputs: BaseModelOutputWithPooling = self.text_model(
            input_ids=input_ids, attention_mask=attention_mask, return_dict=True, **kwargs
        )
        text_outputs.pooler_output = self.text_projection(text_outputs.pooler_output)
        return text_outputs

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        return_loss: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> EVA02ATRetrievalOutput:
        """Score every clip against every caption.

        Returns logits `exp(logit_scale) * cos(video_i, text_j)`; with `return_loss=True`, the bidirectional
        InfoNCE of matched pairs on the diagonal of this batch at the learnable temperature `exp(-logit_scale)`
        (trained with the loss, transformers' CLIP convention). Different on purpose from the training recipes,
        which freeze `logit_scale` and use `eva02at_hf.objectives`: the same InfoNCE at the paper's fixed
        temperature 0.05 (`InfoNCELoss`, equal to this loss when `logit_scale = log(20)`) or the margin losses, on
        the batch gathered across processes.
        """
        if input_ids is None or pixel_values is None:
            raise ValueError("EVA02ATForVideoTextRetrieval.forward needs both input_ids and pixel_values.")
        vision_outputs = self.get_video_features(pixel_values=pixel_values, return_dict=True, **kwargs)
        text_outputs = self.get_text_features(
            input_ids=input_ids, attention_mask=attention_mask, return_dict=True, **kwargs
        )
        video_embeds = F.normalize(vision_outputs.pooler_output, dim=-1)
        text_embeds = F.normalize(text_outputs.pooler_output, dim=-1)
        logits_per_video = self.logit_scale.exp() * video_embeds @ text_embeds.t()
        loss = None
        if return_loss:
            if logits_per_video.shape[0] != logits_per_video.shape[1]:
                raise ValueError(
                    "return_loss=True needs one caption per clip (matched pairs on the diagonal); got "
                    f"{logits_per_video.shape[0]} clips and {logits_per_video.shape[1]} captions."
                )
            targets = torch.arange(logits_per_video.shape[0], device=logits_per_video.device)
            loss = (
                F.cross_entropy(logits_per_video, targets) + F.cross_entropy(logits_per_video.t(), targets)
            ) / 2
        return EVA02ATRetrievalOutput(
            loss=loss,
            logits_per_video=logits_per_video,
            logits_per_text=logits_per_video.t(),
            video_embeds=video_embeds,
            text_embeds=text_embeds,
            vision_model_output=vision_outputs,
            text_model_output=text_outputs,
        )


__all__ = [
    "EVA02ATForVideoTextRetrieval",
    "EVA02ATPreTrainedModel",
    "EVA02ATRetrievalOutput",
    "EVA02ATViTVisionModel",
    "EVA02ATVisionModel",
]
