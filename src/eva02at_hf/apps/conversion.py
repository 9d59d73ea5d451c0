"""Convert the checkpoints people start from into EVA02-AT models (`eva02at convert`).

The image models' weights are copied unchanged, the 2D patch kernel becomes a 1 x p x p tube, and a temporal
position embedding P_t absent from the checkpoint starts at zero, so the converted model at one frame computes
exactly the image model's features (the paper's single-stage transfer). A P_t in the checkpoint is kept and
resampled to the requested frame count.

Formats (`FORMATS`; detected from the keys, `format=` forces one). A `module.` prefix (DDP) and a
`{"state_dict": ...}` / `{"model": ...}` wrapper are removed first.
- `eva02_clip`: EVA02-CLIP. timm `eva02_*_clip_224` (`cls_token`, `pos_embed`, `patch_embed.proj`,
  `blocks.i.attn.{q,k,v}_proj`, `blocks.i.attn.norm`, `blocks.i.mlp.{fc1_g,fc1_x,norm,fc2}`, `norm`, `head`;
  vision only), open_clip `EVA02-*` (those keys under `visual.trunk.`, the CLIP text tower under `text.`), BAAI
  EVA-CLIP (under `visual.`, with `attn.{q,v}_bias`, `attn.inner_attn_ln`, `mlp.{w1,w2,ffn_ln,w3}`).
- `eva02at`: the EVA02-AT authors' vision layout (`conv1` Linear on (c, ph, pw)-flattened patches, `pos_embed`
  without a batch dimension, `temporal_embed`, the timm block names, `head`), under `visual.` with an AVION text
  tower under `textual.`, or alone (vision only: an [`EVA02ATVisionModel`]).
- `avion`: AVION's CLIP ViT video models (`visual.` / `textual.`, `visual.image_projection` or `image_projection`,
  `textual.text_projection` or `text_projection`, `logit_scale`), with the `use_flash_attn` blocks (`attn.Wqkv`,
  `mlp.fc1` / `fc2`) or the plain ones (`attn.in_proj_weight`, `mlp.c_fc` / `c_proj`), and the `conv1` patch
  embedding as a Conv2d or, with `use_fast_conv1`, a Linear. GELU, vision LayerNorm epsilon 1e-6.
- `openai_clip`: OpenAI CLIP ViTs (`clip/model.py` state dicts, open_clip `*-quickgelu` / `pretrained="openai"`):
  QuickGELU, LayerNorm epsilon 1e-5.
- `open_clip`: open_clip ViTs trained with GELU (LAION, DataComp): the same keys as `openai_clip`. The keys do
  not say which activation a checkpoint was trained with; an `open_clip_config.json` beside the weights does
  (`quick_gelu`), otherwise the format must be given.
- `transformers_clip`: transformers' `CLIPModel` (e.g. `openai/clip-vit-base-patch16`), read with its
  `config.json`.

Attention heads cannot be read off the weights. They come from, in order: the caller (`num_heads` /
`text_num_heads`), a config file beside the checkpoint, or the widths of released models (`KNOWN_HEADS`);
any other width is an error asking for them. Unmapped checkpoint keys and model weights the checkpoint does not
provide (other than P_t, and the text tower of a vision-only EVA02-CLIP checkpoint) are errors that list them.
"""

from __future__ import annotations

import json
import logging
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from ..configuration_eva02at import EVA02ATConfig, EVA02ATVisionConfig, EVA02ATViTVisionConfig
from ..modeling_eva02at import EVA02ATForVideoTextRetrieval, EVA02ATVisionModel

logger = logging.getLogger(__name__)

FORMATS: dict[str, str] = {
    "eva02_clip": "EVA02-CLIP (timm eva02_*_clip_224, open_clip EVA02-*, BAAI EVA-CLIP)",
    "eva02at": "the EVA02-AT authors' layout (conv1 Linear, temporal_embed, head), with or without a text tower",
    "avion": "AVION CLIP ViT video checkpoints (visual./textual., Wqkv or in_proj attention, conv or fast_conv1)",
    "openai_clip": "OpenAI CLIP ViT (clip/model.py, open_clip pretrained='openai' / *-quickgelu): QuickGELU",
    "open_clip": "open_clip ViT trained with GELU (LAION, DataComp)",
    "transformers_clip": "transformers CLIPModel (e.g. openai/clip-vit-base-patch16), with its config.json",
}

# Heads of released towers by width (head size 64 unless noted): EVA02 Ti / S / B / L, CLIP ViT-B / L, ViT-H/14
# (head width 80), ViT-g/14 (88), ViT-bigG/14 (104); CLIP text towers 512 / 640 / 768 / 1024 / 1280 (bigG: 20).
KNOWN_HEADS: dict[str, dict[int, int]] = {
    "vision": {192: 3, 384: 6, 768: 12, 1024: 16, 1280: 16, 1408: 16, 1664: 16},
    "text": {512: 8, 640: 10, 768: 12, 1024: 16, 1280: 20},
}
IGNORED_KEY_PATTERNS = (r"(^|\.)rope\.", r"(^|\.)attn_mask$", r"(^|\.)position_ids$")
CLIP_TEXT_ROOTS = {"token_embedding", "positional_embedding", "transformer", "ln_final", "text_projection"}
CHECKPOINT_FILES = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.bin",
    "model.safetensors",
    "pytorch_model.bin",
)

EVA02_VISION_RULES: tuple[tuple[str, str], ...] = (
    (r"^cls_token$", "embeddings.class_embedding"),
    (r"^pos_embed$", "embeddings.position_embedding"),
    (r"^temporal_embed$", "embeddings.temporal_embedding"),
    (r"^(patch_embed\.proj|conv1)\.(weight|bias)$", r"embeddings.patch_embedding.\2"),
    (r"^blocks\.(\d+)\.norm1\.", r"layers.\1.layer_norm1."),
    (r"^blocks\.(\d+)\.norm2\.", r"layers.\1.layer_norm2."),
    (r"^blocks\.(\d+)\.attn\.([qkv])_proj\.", r"layers.\1.self_attn.\2_proj."),
    (r"^blocks\.(\d+)\.attn\.([qv])_bias$", r"layers.\1.self_attn.\2_proj.bias"),
    (r"^blocks\.(\d+)\.attn\.(norm|inner_attn_ln)\.", r"layers.\1.self_attn.inner_norm."),
    (r"^blocks\.(\d+)\.attn\.proj\.", r"layers.\1.self_attn.out_proj."),
    (r"^blocks\.(\d+)\.mlp\.(fc1_g|w1)\.", r"layers.\1.mlp.gate_proj."),
    (r"^blocks\.(\d+)\.mlp\.(fc1_x|w2)\.", r"layers.\1.mlp.up_proj."),
    (r"^blocks\.(\d+)\.mlp\.(norm|ffn_ln)\.", r"layers.\1.mlp.inner_norm."),
    (r"^blocks\.(\d+)\.mlp\.(fc2|w3)\.", r"layers.\1.mlp.down_proj."),
    (r"^norm\.", "post_layernorm."),
)

VIT_VISION_RULES: tuple[tuple[str, str], ...] = (
    (r"^class_embedding$", "embeddings.class_embedding"),
    (r"^positional_embedding$", "embeddings.position_embedding"),
    (r"^temporal_embedding$", "embeddings.temporal_embedding"),
    (r"^conv1\.weight$", "embeddings.patch_embedding.weight"),
    (r"^ln_pre\.", "pre_layernorm."),
    (r"^ln_post\.", "post_layernorm."),
    (r"^transformer\.resblocks\.(\d+)\.ln_1\.", r"layers.\1.layer_norm1."),
    (r"^transformer\.resblocks\.(\d+)\.ln_2\.", r"layers.\1.layer_norm2."),
    (r"^transformer\.resblocks\.(\d+)\.attn\.out_proj\.", r"layers.\1.self_attn.out_proj."),
    (r"^transformer\.resblocks\.(\d+)\.mlp\.(c_fc|fc1)\.", r"layers.\1.mlp.fc1."),
    (r"^transformer\.resblocks\.(\d+)\.mlp\.(c_proj|fc2)\.", r"layers.\1.mlp.fc2."),
)

TEXT_RULES: tuple[tuple[str, str], ...] = (
    (r"^token_embedding\.weight$", "embeddings.token_embedding.weight"),
    (r"^positional_embedding$", "embeddings.position_embedding.weight"),
    (r"^transformer\.resblocks\.(\d+)\.ln_1\.", r"encoder.layers.\1.layer_norm1."),
    (r"^transformer\.resblocks\.(\d+)\.ln_2\.", r"encoder.layers.\1.layer_norm2."),
    (r"^transformer\.resblocks\.(\d+)\.attn\.out_proj\.", r"encoder.layers.\1.self_attn.out_proj."),
    (r"^transformer\.resblocks\.(\d+)\.mlp\.c_fc\.", r"encoder.layers.\1.mlp.fc1."),
    (r"^transformer\.resblocks\.(\d+)\.mlp\.c_proj\.", r"encoder.layers.\1.mlp.fc2."),
    (r"^ln_final\.", "final_layer_norm."),
)

# transformers' CLIPModel: the text tower is ours as is; the vision tower differs in a few names.
TRANSFORMERS_VISION_RULES: tuple[tuple[str, str], ...] = (
    (r"^embeddings\.class_embedding$", "embeddings.class_embedding"),
    (r"^embeddings\.position_embedding\.weight$", "embeddings.position_embedding"),
    (r"^embeddings\.patch_embedding\.weight$", "embeddings.patch_embedding.weight"),
    (r"^pre_layrnorm\.", "pre_layernorm."),
    (r"^post_layernorm\.", "post_layernorm."),
    (r"^encoder\.layers\.", "layers."),
)


class ConversionError(ValueError):
    """A checkpoint could not be mapped completely onto EVA02-AT."""


@dataclass
class ArchitectureHints:
    """What the weights cannot say, from the caller or a config file beside the checkpoint."""

    num_heads: int | None = None
    text_num_heads: int | None = None
    quick_gelu: bool | None = None
    source: str = "the caller"

    def merged(self, other: ArchitectureHints) -> ArchitectureHints:
        """These hints, with the gaps filled from `other`."""
        return ArchitectureHints(
            num_heads=self.num_heads if self.num_heads is not None else other.num_heads,
            text_num_heads=self.text_num_heads if self.text_num_heads is not None else other.text_num_heads,
            quick_gelu=self.quick_gelu if self.quick_gelu is not None else other.quick_gelu,
            source=self.source,
        )


# ------------------------------------------------------------------------------------------------ reading


def load_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a `.safetensors`, `.bin`, `.pt` or `.pth` state dict without executing pickled code.

    Nested `state_dict` / `model` / `module` entries (training checkpoints) are unwrapped and a `module.` prefix
    (DDP) is removed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint file not found: {path}")
    if path.suffix == ".safetensors":
        state_dict: dict = load_file(str(path))
    else:
        if zipfile.is_zipfile(path) and any(
            name.endswith("/constants.pkl") for name in zipfile.ZipFile(path).namelist()
        ):
            raise ConversionError(
                f"{path} is a TorchScript archive (OpenAI's released .pt files are), which cannot be read without "
                "running its code. Convert the same weights from the Hub instead, e.g. "
                "`--checkpoint timm/vit_base_patch16_clip_224.openai` or `openai/clip-vit-base-patch16`."
            )
        try:
            state_dict = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise ConversionError(
                f"Could not read {path} as a weights-only torch checkpoint: {error}"
            ) from error
    for wrapper in ("state_dict", "model", "module"):
        if isinstance(state_dict.get(wrapper), dict):
            state_dict = state_dict[wrapper]
    tensors = {key: value for key, value in state_dict.items() if isinstance(value, torch.Tensor)}
    if tensors and all(key.startswith("module.") for key in tensors):
        tensors = {key[len("module.") :]: value for key, value in tensors.items()}
    return tensors


def read_architecture_hints(checkpoint: str | Path) -> ArchitectureHints:
    """Heads and activation from an `open_clip_config.json` or transformers `config.json` beside `checkpoint`."""
    folder = Path(checkpoint).parent
    open_clip_config = folder / "open_clip_config.json"
    if open_clip_config.is_file():
        model_cfg = json.loads(open_clip_config.read_text(encoding="utf-8")).get("model_cfg", {})
        vision, text = model_cfg.get("vision_cfg", {}), model_cfg.get("text_cfg", {})
        num_heads = None
        if "width" in vision and "timm_model_name" not in vision:
            num_heads = vision["width"] // vision.get("head_width", 64)
        return ArchitectureHints(
            num_heads=num_heads,
            text_num_heads=text.get("heads"),
            quick_gelu=bool(model_cfg.get("quick_gelu", False)),
            source=str(open_clip_config),
        )
    config_file = folder / "config.json"
    if config_file.is_file():
        config = json.loads(config_file.read_text(encoding="utf-8"))
        if "vision_config" in config and "text_config" in config:
            vision, text = config["vision_config"], config["text_config"]
            # transformers writes only the values that differ from the config class defaults (12 / 8 heads)
            return ArchitectureHints(
                num_heads=vision.get("num_attention_heads", 12),
                text_num_heads=text.get("num_attention_heads", 8),
                quick_gelu=vision.get("hidden_act", "quick_gelu") == "quick_gelu",
                source=str(config_file),
            )
    return ArchitectureHints(source="none")


def is_hub_id(source: str) -> bool:
    """Whether `source` reads as a Hub repository id (`owner/name`) rather than a path (or a weights file name)."""
    if Path(source).exists() or Path(source).suffix in (".safetensors", ".bin", ".pt", ".pth"):
        return False
    return bool(re.fullmatch(r"[\w.-]+/[\w.-]+", source))


def resolve_checkpoint(
    source: str,
    filename: str | None = None,
    revision: str | None = None,
    token: str | None = None,
    cache_dir: str | None = None,
) -> Path:
    """The local file of `source`: a checkpoint file, a folder holding one, or a Hub model id.

    A Hub id is fetched with `huggingface_hub` (its cache, `revision`, `token`, and offline mode through
    `HF_HUB_OFFLINE`); the first of `CHECKPOINT_FILES` the repository holds is used unless `filename` names one,
    and a config file beside it (`open_clip_config.json` / `config.json`) is fetched too when present.
    """
    path = Path(source)
    if path.is_file():
        return path
    candidates = (filename,) if filename else CHECKPOINT_FILES
    if path.is_dir():
        for name in candidates:
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(f"{source}: none of {', '.join(candidates)} in this folder")
    if not is_hub_id(source):
        raise FileNotFoundError(f"file not found: {source}")
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    def fetch(name: str) -> Path | None:
        try:
            return Path(hf_hub_download(source, name, revision=revision, token=token, cache_dir=cache_dir))
        except (EntryNotFoundError, LocalEntryNotFoundError):
            return None

    for name in candidates:
        checkpoint = fetch(name)
        if checkpoint is not None:
            for config_name in ("open_clip_config.json", "config.json"):
                fetch(config_name)
            return checkpoint
    where = (
        "the local Hub cache (offline mode)" if constants.is_offline_mode() else "the Hub or the local cache"
    )
    raise FileNotFoundError(
        f"{source}: none of {', '.join(candidates)} found in {where}"
        + (f" at revision {revision}" if revision else "")
        + (
            "; download it while online (`hf download " + source + "`) or unset HF_HUB_OFFLINE"
            if constants.is_offline_mode()
            else ""
        )
    )


# --------------------------------------------------------------------------------------------- detection


def _drop_ignored(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    pattern = "|".join(IGNORED_KEY_PATTERNS)
    return {key: value for key, value in state_dict.items() if not re.search(pattern, key)}


def detect_format(state_dict: dict[str, torch.Tensor], hints: ArchitectureHints | None = None) -> str:
    """Name the layout of `state_dict` (a key of `FORMATS`); raises when no format matches or the keys leave a
    choice only the caller can make."""
    keys = set(state_dict)

    def has(pattern: str) -> bool:
        return any(re.search(pattern, key) for key in keys)

    if has(r"^vision_model\.encoder\.layers\."):
        return "transformers_clip"
    if has(r"^(visual\.)?conv1\.weight$") and has(r"^(visual\.)?blocks\.0\."):
        return "eva02at"
    if has(r"^visual\.trunk\.") or has(r"^(visual\.)?blocks\.0\.mlp\.(fc1_g|w1)\."):
        return "eva02_clip"
    if has(r"^visual\.transformer\.resblocks\."):
        if (
            has(r"^textual\.")
            or has(r"image_projection$")
            or has(r"\.attn\.Wqkv\.")
            or has("temporal_embedding")
        ):
            return "avion"
        if hints is not None and hints.quick_gelu is not None:
            return "openai_clip" if hints.quick_gelu else "open_clip"
        raise ConversionError(
            "This is an OpenAI / open_clip CLIP ViT checkpoint, and its keys do not say which MLP activation it was "
            "trained with: pass --format openai_clip (QuickGELU: OpenAI's weights) or --format open_clip (GELU: "
            "LAION / DataComp models), or keep the open_clip_config.json of the Hub repository beside it."
        )
    sample = sorted(keys)[:8]
    raise ConversionError(
        f"Unrecognised checkpoint layout (first keys: {sample}); supported formats: "
        + "; ".join(f"{name}: {text}" for name, text in FORMATS.items())
    )


# ----------------------------------------------------------------------------------------------- mapping


def _rename(key: str, rules: tuple[tuple[str, str], ...]) -> str | None:
    for pattern, replacement in rules:
        if re.match(pattern, key):
            return re.sub(pattern, replacement, key)
    return None


def _split_fused_qkv(key: str, value: torch.Tensor) -> dict[str, torch.Tensor] | None:
    """`...resblocks.i.attn.{in_proj_weight, in_proj_bias, Wqkv.weight, Wqkv.bias}` -> q / k / v projections
    (PyTorch's and flash-attn's fused layouts both stack q, k, v along the output dimension)."""
    match = re.match(r"^transformer\.resblocks\.(\d+)\.attn\.(?:in_proj_|Wqkv\.)(weight|bias)$", key)
    if match is None:
        return None
    layer, kind = match.groups()
    return {
        f"{layer}.self_attn.{name}_proj.{kind}": chunk
        for name, chunk in zip("qkv", value.chunk(3, dim=0), strict=True)
    }


def _patch_kernel(value: torch.Tensor, num_channels: int = 3) -> torch.Tensor:
    """A Conv2d (D, C, p, p) or a Linear on (c, ph, pw)-flattened patches (D, C * p * p) -> a (D, C, 1, p, p) tube."""
    if value.ndim == 2:
        patch = round((value.shape[1] / num_channels) ** 0.5)
        value = value.reshape(value.shape[0], num_channels, patch, patch)
    return value.unsqueeze(2)


def _reshape_embedding(name: str, value: torch.Tensor) -> torch.Tensor:
    """Give an embedding-module tensor our shape: a tube patch kernel, (1, 1, D) CLS, (1, L, D) positions."""
    if name == "embeddings.patch_embedding.weight":
        return _patch_kernel(value)
    if name == "embeddings.class_embedding":
        return value.reshape(1, 1, -1)
    if name in ("embeddings.position_embedding", "embeddings.temporal_embedding") and value.ndim == 2:
        return value.unsqueeze(0)
    return value


def _convert_vision(
    vision: dict[str, torch.Tensor], family: str, unmapped: list[str]
) -> dict[str, torch.Tensor]:
    """Vision tower keys (prefix removed) -> `vision_model.*` keys, for the `eva02` or `vit` family."""
    converted = {}
    rules = EVA02_VISION_RULES if family == "eva02" else VIT_VISION_RULES
    for key, value in vision.items():
        if family == "vit" and (fused := _split_fused_qkv(key, value)) is not None:
            converted.update({f"vision_model.layers.{name}": chunk for name, chunk in fused.items()})
            continue
        new_key = _rename(key, rules)
        if new_key is None:
            unmapped.append(f"visual:{key}")
        else:
            converted[f"vision_model.{new_key}"] = _reshape_embedding(new_key, value)
    return converted


def _convert_text(text: dict[str, torch.Tensor], unmapped: list[str]) -> dict[str, torch.Tensor]:
    """OpenAI / open_clip / AVION text tower keys (prefix removed) -> `text_model.*` and `text_projection`."""
    converted = {}
    for key, value in text.items():
        if (fused := _split_fused_qkv(key, value)) is not None:
            converted.update({f"text_model.encoder.layers.{name}": chunk for name, chunk in fused.items()})
        elif key == "text_projection":
            converted["text_projection.weight"] = value.t()
        elif (new_key := _rename(key, TEXT_RULES)) is not None:
            converted[f"text_model.{new_key}"] = value
        else:
            unmapped.append(f"text:{key}")
    return converted


def split_towers(state_dict: dict[str, torch.Tensor], format: str) -> tuple[dict, dict, dict]:
    """(vision keys, text keys, other keys), each without its tower prefix, for a checkpoint of `format`."""
    state_dict = _drop_ignored(state_dict)
    vision_prefixes = {
        "eva02_clip": ("visual.trunk.", "visual."),
        "eva02at": ("visual.",),
        "avion": ("visual.",),
        "openai_clip": ("visual.",),
        "open_clip": ("visual.",),
        "transformers_clip": ("vision_model.",),
    }[format]
    text_prefix = {"eva02_clip": "text.", "eva02at": "textual.", "avion": "textual."}.get(format, "")
    has_prefixed_vision = any(key.startswith(vision_prefixes) for key in state_dict)
    vision, text, other = {}, {}, {}
    for key, value in state_dict.items():
        vision_prefix = next((prefix for prefix in vision_prefixes if key.startswith(prefix)), None)
        if vision_prefix is not None:
            vision[key[len(vision_prefix) :]] = value
        elif text_prefix and key.startswith(text_prefix):
            text[key[len(text_prefix) :]] = value
        elif format == "transformers_clip" and key.startswith("text_model."):
            text[key] = value
        elif format != "transformers_clip" and key.split(".")[0] in CLIP_TEXT_ROOTS:
            text[key] = value  # OpenAI's top-level text tower, or one saved beside an unprefixed vision tower
        elif not has_prefixed_vision and key.split(".")[0] not in CLIP_TEXT_ROOTS | {"logit_scale"}:
            vision[key] = value
        else:
            other[key] = value
    return vision, text, other


def convert_state_dict(
    state_dict: dict[str, torch.Tensor], format: str | None = None
) -> dict[str, torch.Tensor]:
    """Map a checkpoint onto EVA02-AT parameter names (`vision_model.*`, `text_model.*`, projections,
    `logit_scale`); raises on any key it cannot place."""
    format = format or detect_format(state_dict)
    vision, text, other = split_towers(state_dict, format)
    unmapped: list[str] = []
    if format == "transformers_clip":
        converted = {}
        for key, value in vision.items():
            new_key = _rename(key, TRANSFORMERS_VISION_RULES)
            if new_key is None:
                unmapped.append(f"visual:{key}")
            else:
                converted[f"vision_model.{new_key}"] = _reshape_embedding(new_key, value)
        converted.update(text)
    else:
        family = "eva02" if format in ("eva02_clip", "eva02at") else "vit"
        head = {key: vision.pop(key) for key in list(vision) if key.startswith("head.")}
        if family == "vit":
            for name in ("proj", "image_projection"):
                if name in vision:
                    head["weight"] = vision.pop(name).t()
        converted = _convert_vision(vision, family, unmapped)
        converted.update(
            {f"visual_projection.{key.removeprefix('head.')}": value for key, value in head.items()}
        )
        converted.update(_convert_text(text, unmapped))
    for key, value in other.items():
        if key == "logit_scale":
            converted["logit_scale"] = value.reshape(())
        elif key in ("image_projection", "visual_projection.weight"):
            converted["visual_projection.weight"] = value.t() if key == "image_projection" else value
        elif key == "text_projection.weight":
            converted[key] = value
        else:
            unmapped.append(key)
    if unmapped:
        raise ConversionError(
            f"{len(unmapped)} checkpoint keys have no EVA02-AT counterpart ({format} layout): {sorted(unmapped)}"
        )
    return converted


# -------------------------------------------------------------------------------------------- architecture


def infer_num_heads(width: int, tower: str, given: int | None, source: str = "the caller") -> int:
    """Attention heads of a `width`-wide `tower` ("vision" / "text"): `given`, else a released model's count."""
    flag = "--num_heads" if tower == "vision" else "--text_num_heads"
    if given is not None:
        if width % given:
            raise ConversionError(
                f"{flag} {given} (from {source}) does not divide the {tower} width {width}."
            )
        return given
    if width in KNOWN_HEADS[tower]:
        return KNOWN_HEADS[tower][width]
    raise ConversionError(
        f"The number of attention heads of the {width}-wide {tower} tower cannot be read off the weights, and "
        f"{width} is not the width of a released model: pass {flag}."
    )


def _count_layers(keys: list[str], pattern: str) -> int:
    return len({match.group(1) for key in keys if (match := re.match(pattern, key))})


def _vit_activation(format: str, hints: ArchitectureHints) -> str:
    """The MLP activation of a CLIP ViT checkpoint: OpenAI's QuickGELU, or GELU (AVION, LAION / DataComp)."""
    if format == "transformers_clip":
        if hints.quick_gelu is None:
            raise ConversionError(
                "A transformers CLIPModel checkpoint is converted with its config.json (hidden_act): keep it beside "
                "the weights, or give the Hub id."
            )
        return "quick_gelu" if hints.quick_gelu else "gelu"
    return "quick_gelu" if format == "openai_clip" else "gelu"


def infer_config(
    converted: dict[str, torch.Tensor],
    format: str,
    hints: ArchitectureHints | None = None,
    num_frames: int | None = None,
    **overrides,
) -> EVA02ATConfig:
    """Read the architecture off converted (EVA02-AT-named) weights; heads from `hints` or `KNOWN_HEADS`."""
    hints = hints or ArchitectureHints()
    keys = list(converted)
    if "vision_model.embeddings.position_embedding" not in converted:
        raise ConversionError("No vision position embedding found: the checkpoint has no vision tower.")
    position = converted["vision_model.embeddings.position_embedding"]
    kernel = converted["vision_model.embeddings.patch_embedding.weight"]
    width, patch_size = position.shape[-1], kernel.shape[-1]
    temporal = converted.get("vision_model.embeddings.temporal_embedding")
    vision_config = {
        "hidden_size": width,
        "num_hidden_layers": _count_layers(keys, r"vision_model\.layers\.(\d+)\."),
        "num_attention_heads": infer_num_heads(width, "vision", hints.num_heads, hints.source),
        "num_channels": kernel.shape[1],
        "patch_size": patch_size,
        "image_size": round((position.shape[1] - 1) ** 0.5) * patch_size,
        "num_frames": temporal.shape[1] if temporal is not None else (num_frames or 16),
    }
    if format in ("eva02_clip", "eva02at"):
        vision_config["intermediate_size"] = converted["vision_model.layers.0.mlp.gate_proj.weight"].shape[0]
    else:
        vision_config |= {
            "model_type": EVA02ATViTVisionConfig.model_type,
            "intermediate_size": converted["vision_model.layers.0.mlp.fc1.weight"].shape[0],
            "hidden_act": _vit_activation(format, hints),
            "layer_norm_eps": 1e-6 if format == "avion" else 1e-5,
        }
    vision_config |= overrides.pop("vision_config", {})
    text_config = dict(overrides.pop("text_config", {}))
    if "text_model.embeddings.token_embedding.weight" in converted:
        vocab_size, text_width = converted["text_model.embeddings.token_embedding.weight"].shape
        text_config = {
            "vocab_size": vocab_size,
            "hidden_size": text_width,
            "intermediate_size": converted["text_model.encoder.layers.0.mlp.fc1.weight"].shape[0],
            "num_hidden_layers": _count_layers(keys, r"text_model\.encoder\.layers\.(\d+)\."),
            "num_attention_heads": infer_num_heads(text_width, "text", hints.text_num_heads, hints.source),
            "max_position_embeddings": converted["text_model.embeddings.position_embedding.weight"].shape[0],
            "hidden_act": "quick_gelu" if vision_config.get("hidden_act") == "quick_gelu" else "gelu",
            **text_config,
        }
    projection = converted.get("visual_projection.weight")
    projection_dim = overrides.pop("projection_dim", projection.shape[0] if projection is not None else 256)
    return EVA02ATConfig(
        vision_config=vision_config, text_config=text_config, projection_dim=projection_dim, **overrides
    )


def convert_checkpoint(
    state_dict: dict[str, torch.Tensor],
    num_frames: int | None = None,
    projection_dim: int | None = None,
    format: str | None = None,
    num_heads: int | None = None,
    text_num_heads: int | None = None,
    hints: ArchitectureHints | None = None,
    **config_overrides,
) -> EVA02ATForVideoTextRetrieval | EVA02ATVisionModel:
    """Build an EVA02-AT model from a checkpoint of any supported format.

    Args:
        state_dict: the checkpoint (`load_checkpoint` output).
        num_frames: frames P_t is sized for. Default: the checkpoint's P_t, else 16. A checkpoint's P_t is
            linearly resampled to another count (and a new P_t starts at zero).
        projection_dim: keep the checkpoint's projections when None; otherwise start new, randomly initialised
            projections of this size (the paper's 256).
        format: a key of `FORMATS`; detected from the keys when None.
        num_heads / text_num_heads: attention heads of the towers, when the width does not say (`infer_num_heads`).
        hints: heads and activation read from a config file beside the checkpoint (`read_architecture_hints`);
            `num_heads` / `text_num_heads` take precedence.
        config_overrides: extra `EVA02ATConfig` fields (e.g. `vision_config={"temporal_rope": "none"}`).

    Returns:
        an [`EVA02ATForVideoTextRetrieval`], or an [`EVA02ATVisionModel`] for a vision-only `eva02at` checkpoint.
    """
    if format is not None and format not in FORMATS:
        raise ConversionError(f"Unknown format {format!r}; choose one of {sorted(FORMATS)}.")
    hints = ArchitectureHints(num_heads, text_num_heads).merged(hints or ArchitectureHints(source="none"))
    format = format or detect_format(state_dict, hints)
    converted = convert_state_dict(state_dict, format)
    if projection_dim is not None:
        config_overrides["projection_dim"] = projection_dim
        converted = {key: value for key, value in converted.items() if "_projection." not in key}
    config = infer_config(converted, format, hints, num_frames=num_frames, **config_overrides)
    has_text = any(key.startswith("text_model.") for key in converted)
    if format == "eva02at" and not has_text:
        return _load_vision_only(converted, config.vision_config, num_frames)
    model = EVA02ATForVideoTextRetrieval(config)
    allowed_missing = {"vision_model.embeddings.temporal_embedding"}
    if projection_dim is not None:
        allowed_missing |= {"visual_projection.weight", "visual_projection.bias", "text_projection.weight"}
    if not has_text:
        logger.warning(
            "The checkpoint has no text tower: the text tower and text projection are randomly initialised."
        )
        allowed_missing |= {
            key for key in model.state_dict() if key.startswith(("text_model.", "text_projection"))
        }
        allowed_missing.add("logit_scale")
    _load_strictly(model, converted, allowed_missing)
    if num_frames is not None:
        model.resize_position_embeddings(num_frames=num_frames)
    return model


def _load_vision_only(
    converted: dict[str, torch.Tensor], config: EVA02ATVisionConfig, num_frames: int | None
) -> EVA02ATVisionModel:
    """The vision-only authors' layout: an `EVA02ATVisionModel` (its `head` has no place there and is dropped)."""
    dropped = sorted(key for key in converted if not key.startswith("vision_model."))
    if dropped:
        logger.warning(
            f"Vision-only checkpoint: {dropped} (the video projection) are not part of EVA02ATVisionModel and are "
            "dropped; convert the full model (visual. + textual.) to keep them."
        )
    model = EVA02ATVisionModel(config)
    weights = {
        key.removeprefix("vision_model."): value for key, value in converted.items() if key not in dropped
    }
    _load_strictly(model, weights, {"embeddings.temporal_embedding"})
    if num_frames is not None:
        model.resize_position_embeddings(num_frames=num_frames)
    return model


def _load_strictly(model: nn.Module, weights: dict[str, torch.Tensor], allowed_missing: set[str]) -> None:
    """`load_state_dict`, refusing unexpected weights, shape mismatches and missing ones outside `allowed_missing`."""
    expected = model.state_dict()
    mismatched = [
        f"{key}: checkpoint {tuple(value.shape)} vs model {tuple(expected[key].shape)}"
        for key, value in weights.items()
        if key in expected and value.shape != expected[key].shape
    ]
    if mismatched:
        raise ConversionError(f"Converted weights do not fit the inferred architecture: {mismatched}")
    result = model.load_state_dict(weights, strict=False)
    if result.unexpected_keys:
        raise ConversionError(f"Converted keys not in the model: {sorted(result.unexpected_keys)}")
    missing = sorted(key for key in result.missing_keys if key not in allowed_missing)
    if missing:
        raise ConversionError(f"The checkpoint does not provide these EVA02-AT weights: {missing}")
