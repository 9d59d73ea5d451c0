"""Convert EVA02-CLIP checkpoints (timm, open_clip or BAAI EVA-CLIP key layouts) into EVA02-AT.

This is the paper's single-stage transfer: the image model's weights are copied unchanged, the 2D patch kernel
becomes a 1 x p x p tube, and the new temporal position embedding P_t starts at zero, so the converted model
at one frame computes exactly the image model's features.

Supported layouts (prefixes are detected from the keys):
- timm `eva02_*_clip_224`: `cls_token`, `pos_embed`, `patch_embed.proj`, `blocks.i.attn.{q,k,v}_proj`,
  `blocks.i.attn.norm`, `blocks.i.mlp.{fc1_g,fc1_x,norm,fc2}`, `norm`, `head` (vision only);
- open_clip `EVA02-*`: the timm keys under `visual.trunk.`, plus the CLIP text tower under `text.`;
- BAAI EVA-CLIP: vision under `visual.` with `attn.{q,v}_bias`, `attn.inner_attn_ln`, `mlp.{w1,w2,ffn_ln,w3}`,
  and the text tower under `text.`.
Unmapped checkpoint keys, and model weights the checkpoint does not provide (other than P_t, and the text tower
of a vision-only timm checkpoint), are errors that list the keys.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch
from safetensors.torch import load_file

from .configuration_eva02at import EVA02ATConfig
from .modeling_eva02at import EVA02ATForVideoTextRetrieval

logger = logging.getLogger(__name__)

IGNORED_KEY_PATTERNS = (r"(^|\.)rope\.", r"(^|\.)attn_mask$", r"(^|\.)position_ids$")
HEAD_DIM = 64

VISION_RULES: tuple[tuple[str, str], ...] = (
    (r"^cls_token$", "vision_model.embeddings.class_embedding"),
    (r"^pos_embed$", "vision_model.embeddings.position_embedding"),
    (r"^patch_embed\.proj\.(weight|bias)$", r"vision_model.embeddings.patch_embedding.\1"),
    (r"^blocks\.(\d+)\.norm1\.", r"vision_model.layers.\1.layer_norm1."),
    (r"^blocks\.(\d+)\.norm2\.", r"vision_model.layers.\1.layer_norm2."),
    (r"^blocks\.(\d+)\.attn\.([qkv])_proj\.", r"vision_model.layers.\1.self_attn.\2_proj."),
    (r"^blocks\.(\d+)\.attn\.([qv])_bias$", r"vision_model.layers.\1.self_attn.\2_proj.bias"),
    (r"^blocks\.(\d+)\.attn\.(norm|inner_attn_ln)\.", r"vision_model.layers.\1.self_attn.inner_norm."),
    (r"^blocks\.(\d+)\.attn\.proj\.", r"vision_model.layers.\1.self_attn.out_proj."),
    (r"^blocks\.(\d+)\.mlp\.(fc1_g|w1)\.", r"vision_model.layers.\1.mlp.gate_proj."),
    (r"^blocks\.(\d+)\.mlp\.(fc1_x|w2)\.", r"vision_model.layers.\1.mlp.up_proj."),
    (r"^blocks\.(\d+)\.mlp\.(norm|ffn_ln)\.", r"vision_model.layers.\1.mlp.inner_norm."),
    (r"^blocks\.(\d+)\.mlp\.(fc2|w3)\.", r"vision_model.layers.\1.mlp.down_proj."),
    (r"^norm\.", "vision_model.post_layernorm."),
    (r"^head\.", "visual_projection."),
)

TEXT_RULES: tuple[tuple[str, str], ...] = (
    (r"^token_embedding\.weight$", "text_model.embeddings.token_embedding.weight"),
    (r"^positional_embedding$", "text_model.embeddings.position_embedding.weight"),
    (r"^transformer\.resblocks\.(\d+)\.ln_1\.", r"text_model.encoder.layers.\1.layer_norm1."),
    (r"^transformer\.resblocks\.(\d+)\.ln_2\.", r"text_model.encoder.layers.\1.layer_norm2."),
    (
        r"^transformer\.resblocks\.(\d+)\.attn\.out_proj\.",
        r"text_model.encoder.layers.\1.self_attn.out_proj.",
    ),
    (r"^transformer\.resblocks\.(\d+)\.mlp\.c_fc\.", r"text_model.encoder.layers.\1.mlp.fc1."),
    (r"^transformer\.resblocks\.(\d+)\.mlp\.c_proj\.", r"text_model.encoder.layers.\1.mlp.fc2."),
    (r"^ln_final\.", "text_model.final_layer_norm."),
)


class ConversionError(ValueError):
    """A checkpoint could not be mapped completely onto EVA02-AT."""


def load_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a `.safetensors`, `.bin`, `.pt` or `.pth` state dict without executing pickled code.

    Nested `state_dict` / `model` / `module` entries (training checkpoints) are unwrapped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint file not found: {path}")
    if path.suffix == ".safetensors":
        state_dict: dict = load_file(str(path))
    else:
        try:
            state_dict = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise ConversionError(
                f"Could not read {path} as a weights-only torch checkpoint: {error}"
            ) from error
    for wrapper in ("state_dict", "model", "module"):
        if isinstance(state_dict.get(wrapper), dict):
            state_dict = state_dict[wrapper]
    return {key: value for key, value in state_dict.items() if isinstance(value, torch.Tensor)}


def split_layouts(state_dict: dict[str, torch.Tensor]) -> tuple[dict, dict, dict]:
    """Split a checkpoint into (vision keys without prefix, text keys without prefix, other keys)."""
    if any(key.startswith("visual.trunk.") for key in state_dict):
        vision_prefix = "visual.trunk."
    elif any(key.startswith("visual.") for key in state_dict):
        vision_prefix = "visual."
    else:
        vision_prefix = ""
    vision, text, other = {}, {}, {}
    for key, value in state_dict.items():
        if re.search("|".join(IGNORED_KEY_PATTERNS), key):
            continue
        if key.startswith("text."):
            text[key[len("text.") :]] = value
        elif vision_prefix and key.startswith(vision_prefix):
            vision[key[len(vision_prefix) :]] = value
        elif not vision_prefix and key.split(".")[0] in {
            "token_embedding",
            "positional_embedding",
            "transformer",
            "ln_final",
            "text_projection",
        }:
            text[key] = value
        elif not vision_prefix and key != "logit_scale":
            vision[key] = value
        else:
            other[key] = value
    return vision, text, other


def infer_config(state_dict: dict[str, torch.Tensor], num_frames: int = 16, **overrides) -> EVA02ATConfig:
    """Read the architecture off the weight shapes (heads = width / 64, EVA02-CLIP's and CLIP's head size)."""
    vision, text, _ = split_layouts(state_dict)
    if "pos_embed" not in vision:
        raise ConversionError(
            "No vision position embedding (`pos_embed`) found: is this an EVA02-CLIP checkpoint?"
        )
    width = vision["pos_embed"].shape[-1]
    patch_size = vision["patch_embed.proj.weight"].shape[-1]
    grid = int((vision["pos_embed"].shape[1] - 1) ** 0.5)
    gate_key = next(key for key in vision if re.match(r"blocks\.0\.mlp\.(fc1_g|w1)\.weight", key))
    vision_config = {
        "hidden_size": width,
        "intermediate_size": vision[gate_key].shape[0],
        "num_hidden_layers": len({key.split(".")[1] for key in vision if key.startswith("blocks.")}),
        "num_attention_heads": width // HEAD_DIM,
        "patch_size": patch_size,
        "image_size": grid * patch_size,
        "num_frames": num_frames,
        **overrides.pop("vision_config", {}),
    }
    text_config = dict(overrides.pop("text_config", {}))
    if text:
        text_width = text["token_embedding.weight"].shape[1]
        text_config = {
            "vocab_size": text["token_embedding.weight"].shape[0],
            "hidden_size": text_width,
            "intermediate_size": text["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
            "num_hidden_layers": len(
                {key.split(".")[2] for key in text if key.startswith("transformer.resblocks.")}
            ),
            "num_attention_heads": text_width // HEAD_DIM,
            "max_position_embeddings": text["positional_embedding"].shape[0],
            **text_config,
        }
    head = vision.get("head.weight")
    projection_dim = overrides.pop("projection_dim", head.shape[0] if head is not None else 256)
    return EVA02ATConfig(
        vision_config=vision_config, text_config=text_config, projection_dim=projection_dim, **overrides
    )


def _rename(key: str, rules: tuple[tuple[str, str], ...]) -> str | None:
    for pattern, replacement in rules:
        if re.match(pattern, key):
            return re.sub(pattern, replacement, key)
    return None


def convert_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map an EVA02-CLIP state dict onto EVA02-AT parameter names; raises on any key it cannot place."""
    vision, text, other = split_layouts(state_dict)
    converted: dict[str, torch.Tensor] = {}
    unmapped: list[str] = []
    for key, value in vision.items():
        new_key = _rename(key, VISION_RULES)
        if new_key is None:
            unmapped.append(f"visual:{key}")
            continue
        if key == "patch_embed.proj.weight":
            value = value.unsqueeze(2)
        converted[new_key] = value
    for key, value in text.items():
        block = re.match(r"^transformer\.resblocks\.(\d+)\.attn\.in_proj_(weight|bias)$", key)
        if block:
            layer, kind = block.groups()
            for name, chunk in zip(("q", "k", "v"), value.chunk(3, dim=0), strict=True):
                converted[f"text_model.encoder.layers.{layer}.self_attn.{name}_proj.{kind}"] = chunk
            continue
        if key == "text_projection":
            converted["text_projection.weight"] = value.t()
            continue
        new_key = _rename(key, TEXT_RULES)
        if new_key is None:
            unmapped.append(f"text:{key}")
            continue
        converted[new_key] = value
    for key, value in other.items():
        if key == "logit_scale":
            converted["logit_scale"] = value.reshape(())
        else:
            unmapped.append(key)
    if unmapped:
        raise ConversionError(
            f"{len(unmapped)} checkpoint keys have no EVA02-AT counterpart: {sorted(unmapped)}"
        )
    return converted


def convert_checkpoint(
    state_dict: dict[str, torch.Tensor],
    num_frames: int = 16,
    projection_dim: int | None = None,
    **config_overrides,
) -> EVA02ATForVideoTextRetrieval:
    """Build an EVA02-AT retrieval model from an EVA02-CLIP state dict.

    Args:
        state_dict: the checkpoint (any supported layout).
        num_frames: frames the temporal embedding is sized for (4 for pre-training, 16 for fine-tuning).
        projection_dim: keep the CLIP projection when None; otherwise start new, randomly initialised
            projections of this size (the paper's 256).
        config_overrides: extra `EVA02ATConfig` fields (e.g. `vision_config={"temporal_position_encoding": ...}`).
    """
    if projection_dim is not None:
        config_overrides["projection_dim"] = projection_dim
    config = infer_config(state_dict, num_frames=num_frames, **config_overrides)
    converted = convert_state_dict(state_dict)
    if projection_dim is not None:
        converted = {key: value for key, value in converted.items() if "_projection." not in key}
    model = EVA02ATForVideoTextRetrieval(config)
    result = model.load_state_dict(converted, strict=False)
    if result.unexpected_keys:
        raise ConversionError(f"Converted keys not in the model: {sorted(result.unexpected_keys)}")
    allowed_missing = {"vision_model.embeddings.temporal_embedding"}
    if projection_dim is not None:
        allowed_missing |= {"visual_projection.weight", "visual_projection.bias", "text_projection.weight"}
    has_text = any(key.startswith("text_model.") for key in converted)
    missing = [key for key in result.missing_keys if key not in allowed_missing]
    if not has_text:
        logger.warning(
            "The checkpoint has no text tower: the text tower and text projection are randomly initialised."
        )
        missing = [
            key for key in missing if not key.startswith(("text_model.", "text_projection.", "logit_scale"))
        ]
    if missing:
        raise ConversionError(f"The checkpoint does not provide these EVA02-AT weights: {sorted(missing)}")
    return model
