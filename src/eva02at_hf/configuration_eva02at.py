"""Configuration classes for EVA02-AT (vision tower, text tower, retrieval model) and the named presets."""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Literal, get_args

from huggingface_hub.dataclasses import strict
from transformers.activations import ACT2FN
from transformers.configuration_utils import PreTrainedConfig
from transformers.models.clip.configuration_clip import CLIPTextConfig

TemporalRope = Literal["none", "additive", "split_3d"]
TEMPORAL_ROPES: tuple[str, ...] = get_args(TemporalRope)
TEMPORAL_ROPE_POSITIONS = ("index", "rescaled")
TEMPORAL_EMBEDDING_INITS = ("zeros", "trunc_normal")


def pipelines_not_registered(custom_pipelines: dict[str, Any] | None) -> dict[str, Any]:
    """The entries of a saved config's `custom_pipelines` (task -> {"impl": "module.Class", ...}) whose task this
    process has not registered with a class of that name.

    Saved models list the EVA02-AT pipelines so that `pipeline(task, model=folder, trust_remote_code=True)` works
    without the package; where `import eva02at_hf` has registered them, transformers' `pipeline()` would still take
    listed tasks for remote code and demand `trust_remote_code=True`, so the config drops them on load.
    """
    if not custom_pipelines:
        return {}
    from transformers.pipelines import PIPELINE_REGISTRY

    kept = {}
    for task, info in custom_pipelines.items():
        registered = PIPELINE_REGISTRY.supported_tasks.get(task, {}).get("impl")
        if registered is None or registered.__name__ != str(info.get("impl", "")).rsplit(".", 1)[-1]:
            kept[task] = info
    return kept


# The single `temporal_position_encoding` string that older configs hold for both temporal choices.
LEGACY_TEMPORAL_POSITION_ENCODINGS: dict[str, dict[str, Any]] = {
    "learnable+rope": {"use_temporal_embedding": True, "temporal_rope": "additive"},
    "learnable": {"use_temporal_embedding": True, "temporal_rope": "none"},
    "rope": {"use_temporal_embedding": False, "temporal_rope": "additive"},
    "split_3d_rope": {"use_temporal_embedding": False, "temporal_rope": "split_3d"},
}


def temporal_fields_from_legacy(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Replace a legacy `temporal_position_encoding` in config kwargs by `use_temporal_embedding` and
    `temporal_rope`; an unknown value, or a new field given with a value that contradicts it, is an error."""
    if "temporal_position_encoding" not in kwargs:
        return kwargs
    kwargs = dict(kwargs)
    legacy = kwargs.pop("temporal_position_encoding")
    if legacy not in LEGACY_TEMPORAL_POSITION_ENCODINGS:
        raise ValueError(
            f"temporal_position_encoding={legacy!r} is not one of {tuple(LEGACY_TEMPORAL_POSITION_ENCODINGS)}; "
            "new configs set use_temporal_embedding and temporal_rope instead."
        )
    fields = LEGACY_TEMPORAL_POSITION_ENCODINGS[legacy]
    contradicting = {
        name: kwargs[name] for name, value in fields.items() if name in kwargs and kwargs[name] != value
    }
    if contradicting:
        raise ValueError(
            f"temporal_position_encoding={legacy!r} means {fields}, which contradicts {contradicting}; "
            "pass only use_temporal_embedding and temporal_rope."
        )
    return {**kwargs, **fields}


def accepts_legacy_temporal_position_encoding(config_class: type[PreTrainedConfig]) -> type[PreTrainedConfig]:
    """Map a legacy `temporal_position_encoding` before the dataclass `__init__` sees the kwargs, so that
    `EVA02ATVisionConfig(temporal_position_encoding=...)` and `from_pretrained` of older `config.json` files build
    the same config as the two new fields (and save only those)."""
    init = config_class.__init__

    @functools.wraps(init)
    def __init__(self: PreTrainedConfig, **kwargs: Any) -> None:
        init(self, **temporal_fields_from_legacy(kwargs))

    config_class.__init__ = __init__
    return config_class


def validate_video_tower(config: PreTrainedConfig) -> None:
    """The shape checks both video towers need: heads dividing the width, whole patches, at least one frame."""
    if config.hidden_size % config.num_attention_heads != 0:
        raise ValueError(
            f"hidden_size ({config.hidden_size}) must be a multiple of num_attention_heads "
            f"({config.num_attention_heads})."
        )
    if config.image_size % config.patch_size != 0:
        raise ValueError(
            f"image_size ({config.image_size}) must be a multiple of patch_size ({config.patch_size})."
        )
    if config.num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {config.num_frames}.")


@strict
class EVA02ATVideoTowerConfig(PreTrainedConfig):
    """The fields both video towers have: the transformer's shape, the clip geometry and the initialisation.

    Not a model's configuration itself; [`EVA02ATVisionConfig`] and [`EVA02ATViTVisionConfig`] document them and
    set their own defaults.
    """

    base_config_key = "vision_config"

    hidden_size: int = 768
    intermediate_size: int = 2048
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    num_channels: int = 3
    image_size: int = 224
    patch_size: int = 16
    num_frames: int = 16
    hidden_act: str = "silu"
    layer_norm_eps: float = 1e-6
    attention_dropout: float = 0.0
    initializer_range: float = 0.02


@accepts_legacy_temporal_position_encoding
@strict
class EVA02ATVisionConfig(EVA02ATVideoTowerConfig):
    r"""Configuration of [`EVA02ATVisionModel`], the EVA02 image transformer turned video encoder (paper Sec. IV-A).

    Defaults reproduce the EVA02-CLIP-B/16 vision tower (timm `eva02_base_patch16_clip_224`).

    Args:
        hidden_size (`int`): width D of the transformer (768 for B, 1024 for L).
        intermediate_size (`int`): hidden width of the SwiGLU MLP (`int(D * 4 * 2 / 3)`: 2048 for B, 2730 for L).
        num_hidden_layers (`int`): number of EVA02 blocks.
        num_attention_heads (`int`): attention heads; the head dimension must be divisible by 4 (2D RoPE).
        num_channels (`int`): input channels.
        image_size (`int`): square input resolution in pixels.
        patch_size (`int`): side p of the 1 x p x p tube patch embedding.
        num_frames (`int`): T, the number of frames the learnable temporal embedding P_t is sized for. Clips
            with another frame count are accepted: P_t is linearly interpolated to the clip's frame count.
        hidden_act (`str`): gate activation of the SwiGLU MLP (`"silu"` in EVA02).
        layer_norm_eps (`float`): epsilon of every LayerNorm (1e-6 in EVA02).
        attention_dropout (`float`): dropout on attention probabilities.
        initializer_range (`float`): std of the truncated-normal weight initialisation.
        temporal_embedding_init (`str`): initialisation of a newly created P_t. `"zeros"` (default): at T = 1, and
            at any T before training, the model is exactly the image model it was converted from;
            `"trunc_normal"`: truncated normal with std `initializer_range` (0.02), what the authors' code does
            (it overwrites the zeros), so that frames differ from the first step.
        use_temporal_embedding (`bool`): whether the tower holds the learnable temporal embedding P_t of Eq. 7,
            added to every patch of its frame. `True` (default, the paper's).
        temporal_rope (`str`): the temporal rotary encoding. `"additive"` (default, the paper's): the
            spatial-temporal RoPE whose 1D temporal angles span the whole head dimension and add to EVA02's 2D
            spatial angles (R_xy+t = R_xy * R_t, Eqs. 8-10), so one frame at t = 0 is exactly the image model;
            `"none"`: the image model's 2D RoPE on every frame, no temporal rotation at all; `"split_3d"`: the
            CogVideoX baseline, a 3D RoPE whose head dimension is split into 1/4 (time), 3/8 (height) and 3/8
            (width) slices over integer coordinates (head dimension divisible by 16). `"split_3d"` is not an image
            model at one frame: its spatial slices differ from EVA02's 2D RoPE. The `temporal_rope_*` fields apply
            to `"additive"` only. Table IV's rows: learnable + RoPE (`True`, `"additive"`), learnable (`True`,
            `"none"`), RoPE (`False`, `"additive"`). Configs saved with the older single field
            `temporal_position_encoding` (`"learnable+rope"`, `"learnable"`, `"rope"`, `"split_3d_rope"`) load as
            these pairs (`LEGACY_TEMPORAL_POSITION_ENCODINGS`).
        rope_theta (`float`): base of the spatial RoPE frequencies (EVA02: 10000).
        rope_reference_grid_size (`int`): EVA02 rescales patch coordinates so the grid spans this many
            positions whatever the input resolution (timm's `ref_feat_shape`, 16 for both EVA02-CLIP B/16 and
            L/14). Keep it when converting EVA02-CLIP weights.
        temporal_rope_theta (`float`): base of the temporal RoPE frequencies; the temporal rotation uses the
            standard 1D RoPE spectrum `theta ** (-i / (head_dim / 2))` over all `head_dim / 2` rotary pairs.
        temporal_rope_positions (`str`): the temporal coordinate of frame t of a T-frame clip.
            `"index"` (default): t itself, so RoPE extrapolates to longer clips and frame spacing is the unit
            of relative time; `"rescaled"`: `t * T_ref / T` with `T_ref = temporal_rope_reference_frames`, so a
            clip spans the same temporal range as in training whatever its frame count (the same scheme EVA02
            uses for spatial resolution). With one frame both give t = 0, i.e. exactly the image model.
        temporal_rope_reference_frames (`int`, *optional*): T_ref of `"rescaled"` positions, the frame count
            the model was trained at; `None` (default) means `num_frames`. `resize_position_embeddings` and
            `from_pretrained(num_frames=...)` set it to the checkpoint's frame count before changing
            `num_frames`, so a model trained at 4 frames and loaded at 16 keeps the trained temporal range.
    """

    model_type = "eva02at_vision_model"

    temporal_embedding_init: str = "zeros"
    use_temporal_embedding: bool = True
    temporal_rope: TemporalRope = "additive"
    rope_theta: float = 10000.0
    rope_reference_grid_size: int = 16
    temporal_rope_theta: float = 10000.0
    temporal_rope_positions: str = "index"
    temporal_rope_reference_frames: int | None = None

    def validate_architecture(self) -> None:
        """Reject unknown option values and shapes RoPE cannot use, naming the offending field."""
        validate_video_tower(self)
        head_dim = self.hidden_size // self.num_attention_heads
        if head_dim % 4 != 0:
            raise ValueError(f"The head dimension ({head_dim}) must be divisible by 4 for the 2D RoPE.")
        if not isinstance(self.use_temporal_embedding, bool):
            raise ValueError(
                f"use_temporal_embedding must be True or False, got {self.use_temporal_embedding!r}."
            )
        if self.temporal_rope not in TEMPORAL_ROPES:
            raise ValueError(f"temporal_rope={self.temporal_rope!r} is not one of {TEMPORAL_ROPES}.")
        if self.temporal_rope == "split_3d" and head_dim % 16 != 0:
            raise ValueError(
                f"temporal_rope='split_3d' needs a head dimension divisible by 16, got {head_dim}."
            )
        if self.temporal_embedding_init not in TEMPORAL_EMBEDDING_INITS:
            raise ValueError(
                f"temporal_embedding_init={self.temporal_embedding_init!r} is not one of {TEMPORAL_EMBEDDING_INITS}."
            )
        if self.temporal_rope_positions not in TEMPORAL_ROPE_POSITIONS:
            raise ValueError(
                f"temporal_rope_positions={self.temporal_rope_positions!r} is not one of {TEMPORAL_ROPE_POSITIONS}."
            )
        if self.temporal_rope_reference_frames is not None and self.temporal_rope_reference_frames < 1:
            raise ValueError(
                f"temporal_rope_reference_frames must be >= 1 or None, got {self.temporal_rope_reference_frames}."
            )

    @property
    def temporal_position_encoding(self) -> str:
        """Gone: split into `use_temporal_embedding` and `temporal_rope`. Reading it is an error; assigning a legacy
        value sets the two fields, so older scripts that assign it do not silently build the default model."""
        raise AttributeError(
            "temporal_position_encoding was split into use_temporal_embedding and temporal_rope; read those."
        )

    @temporal_position_encoding.setter
    def temporal_position_encoding(self, value: str) -> None:
        for name, field_value in temporal_fields_from_legacy({"temporal_position_encoding": value}).items():
            setattr(self, name, field_value)


@strict
class EVA02ATViTVisionConfig(EVA02ATVideoTowerConfig):
    r"""Configuration of [`EVA02ATViTVisionModel`], the CLIP ViT video encoder of AVION: the paper's ViT baseline
    (Tables I, III, IV and V) and the backbone of the authors' AVION starting checkpoints.

    Per-frame (1 x p x p) patch embedding without bias, learnable spatial positions P_xy plus a zero-initialised
    learnable temporal embedding P_t (resampled to other frame counts like EVA02-AT's), `ln_pre`, pre-LN CLIP
    blocks (fused q/k/v of the checkpoints split into biased `q_proj` / `k_proj` / `v_proj`, a 4x MLP, no RoPE)
    with joint attention over all frames, `ln_post` on the CLS token. Defaults are AVION's `CLIP_VITB16`.

    The second backbone is a sibling vision model class with its own config (not a `backbone` field of
    [`EVA02ATVisionConfig`]): the two towers share no block, so one class with a switch would carry fields that
    mean nothing for the other (RoPE, SwiGLU sizes) and a forward pass with two paths. [`EVA02ATConfig`] picks the
    tower from `vision_config["model_type"]`.

    Args:
        hidden_size (`int`): width D (768 for ViT-B/16, 1024 for ViT-L/14).
        intermediate_size (`int`): MLP hidden width (4 D).
        num_hidden_layers (`int`): number of blocks.
        num_attention_heads (`int`): attention heads (head size 64 in CLIP and AVION).
        num_channels (`int`): input channels.
        image_size (`int`): square input resolution in pixels.
        patch_size (`int`): side p of the 1 x p x p patch embedding.
        num_frames (`int`): T, the number of frames P_t is sized for; other frame counts interpolate P_t.
        hidden_act (`str`): MLP activation. `"gelu"` (default) for checkpoints trained with AVION's code (its
            `VisionTransformer` and `TextTransformer` use `nn.GELU`, also when they start from OpenAI weights),
            and for open_clip's `ViT-B-16` / `ViT-L-14` models trained by LAION; `"quick_gelu"` for OpenAI's
            CLIP weights (OpenAI's `clip/model.py`, open_clip's `*-quickgelu` models and `pretrained="openai"`).
        layer_norm_eps (`float`): epsilon of every LayerNorm: 1e-6 in AVION's vision tower, 1e-5 in OpenAI CLIP and
            open_clip.
        attention_dropout (`float`): dropout on attention probabilities.
        initializer_range (`float`): std of the truncated-normal weight initialisation.
    """

    model_type = "eva02at_vit_vision_model"

    intermediate_size: int = 3072
    hidden_act: str = "gelu"

    def validate_architecture(self) -> None:
        """Reject shapes the tower cannot build and unknown activations, naming the offending field."""
        validate_video_tower(self)
        if self.hidden_act not in ACT2FN:
            raise ValueError(f"hidden_act={self.hidden_act!r} is not a transformers activation (ACT2FN).")


@strict
class EVA02ATTextConfig(CLIPTextConfig):
    r"""Configuration of the CLIP text transformer of EVA02-AT (causal, pooled at the end-of-text token).

    The tower is transformers' `CLIPTextModel`, so every [`CLIPTextConfig`] field applies. Defaults reproduce
    open_clip's `EVA02-B-16` text tower: 512 wide, 12 layers, 8 heads, context 77, vocabulary 49408, GELU
    (open_clip's EVA02 models do not use QuickGELU), LayerNorm epsilon 1e-5, padding id 0 (open_clip pads with
    0), `<|startoftext|>` 49406 and `<|endoftext|>` 49407; the pooled output is taken at the first
    `eos_token_id`, which for open_clip's tokens is the arg-max token as in open_clip.
    """

    model_type = "eva02at_text_model"
    base_config_key = "text_config"

    projection_dim: int | None = None
    hidden_act: str = "gelu"
    pad_token_id: int | None = 0


def _field_names(config_class: type[PreTrainedConfig]) -> set[str]:
    return {field.name for field in dataclasses.fields(config_class)}


@strict
class EVA02ATConfig(PreTrainedConfig):
    r"""Configuration of [`EVA02ATForVideoTextRetrieval`]: video tower + text tower + projections.

    Args:
        vision_config (`dict`, [`EVA02ATVisionConfig`] or [`EVA02ATViTVisionConfig`]): the video encoder. A dict
            builds the EVA02-AT tower unless its `model_type` is `"eva02at_vit_vision_model"` (the CLIP ViT
            baseline). The video projection has a bias with the EVA02 tower (EVA02-CLIP's timm `head` and the
            authors' `head`) and none with the ViT (CLIP's `proj`, AVION's `image_projection`).
        text_config (`dict` or [`EVA02ATTextConfig`]): the text encoder.
        projection_dim (`int`): dimension of the joint embedding space. The paper uses 256 (Sec. V-A); a
            checkpoint converted from EVA02-CLIP keeps the CLIP projection (512 for B, 768 for L) so that it
            starts exactly at the image model.
        logit_scale_init_value (`float`): initial log of the inverse temperature of the logits returned by the
            forward pass (CLIP's log(1 / 0.07)). The training objectives in `eva02at_hf.objectives.losses` use their own
            fixed temperature or margins (InfoNCE at 0.05 in the paper) on the cosine similarities.
        head_init_scale (`float`): factor on the truncated-normal (std `initializer_range`) initialisation of a
            newly created `visual_projection` (e.g. converting to the paper's 256-d space). 1.0 (default) is the
            plain initialisation; 0.001 is the authors' small head (their `head`, trunc-normal 0.02 x 0.001, as
            timm's EVA `head_init_scale`). The embeddings are L2-normalised, so the scale changes only the
            optimisation (the relative size of the first updates), not the initial similarities. The text
            projection keeps CLIP's normal(std = width ** -0.5).
    """

    model_type = "eva02at"
    sub_configs_defaults = {"vision_config": EVA02ATVisionConfig, "text_config": EVA02ATTextConfig}

    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    projection_dim: int = 256
    logit_scale_init_value: float = math.log(1 / 0.07)
    head_init_scale: float = 1.0

    def validate_head_init_scale(self) -> None:
        """Reject a non-positive `head_init_scale`."""
        if not self.head_init_scale > 0:
            raise ValueError(f"head_init_scale must be positive, got {self.head_init_scale}.")

    def __post_init__(self, **kwargs: Any) -> None:
        custom_pipelines = pipelines_not_registered(kwargs.pop("custom_pipelines", None))
        if custom_pipelines:
            kwargs["custom_pipelines"] = custom_pipelines
        if (
            isinstance(self.vision_config, dict)
            and self.vision_config.get("model_type") == EVA02ATViTVisionConfig.model_type
        ):
            eva02_only = sorted(
                set(self.vision_config)
                & (
                    _field_names(EVA02ATVisionConfig) - _field_names(EVA02ATViTVisionConfig)
                    | {"temporal_position_encoding"}
                )
            )
            if eva02_only:
                raise ValueError(
                    f"{eva02_only} configure the EVA02-AT tower; the CLIP ViT tower has no RoPE or SwiGLU options."
                )
            self.vision_config = EVA02ATViTVisionConfig(**self.vision_config)
        super().__post_init__(**kwargs)

    @property
    def uses_vit_backbone(self) -> bool:
        """Whether the video tower is the CLIP ViT baseline (AVION) rather than EVA02-AT."""
        return isinstance(self.vision_config, EVA02ATViTVisionConfig)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> EVA02ATConfig:
        """Build a named configuration offline: `"eva02at-b"`, `"eva02at-l"` (the paper's sizes), the CLIP ViT
        baselines `"vit-b"` (ViT-B/16) and `"vit-l"` (ViT-L/14), or `"eva02at-tiny"` / `"vit-tiny"` (a
        few-hundred-thousand-parameter model for tests, demos and CPU runs).

        `overrides` replace top-level fields; `vision_config` / `text_config` dicts update the preset's.
        """
        if name not in PRESETS:
            raise ValueError(f"Unknown preset {name!r}; available presets: {sorted(PRESETS)}.")
        preset = PRESETS[name]
        vision = {**preset["vision_config"], **overrides.pop("vision_config", {})}
        text = {**preset["text_config"], **overrides.pop("text_config", {})}
        fields = {key: value for key, value in preset.items() if key not in ("vision_config", "text_config")}
        return cls(vision_config=vision, text_config=text, **{**fields, **overrides})


# Tower shapes by size. The EVA02-CLIP and CLIP ViT presets of a size share the transformer's shape (their MLP width
# differs) and the text tower (open_clip's EVA02-B-16 / ViT-B-16 and EVA02-L-14 / ViT-L-14).
_VISION_SHAPES: dict[str, dict[str, int]] = {
    "b": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "patch_size": 16},
    "l": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "patch_size": 14},
    "tiny": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "patch_size": 8},
}
_TEXT_TOWERS: dict[str, dict[str, int]] = {
    "b": {"hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12, "num_attention_heads": 8},
    "l": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12},
    "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2},
}
_VIT = {"model_type": EVA02ATViTVisionConfig.model_type}
_CLIPS = {"image_size": 224, "num_frames": 16}
_TINY_CLIPS = {"image_size": 32, "num_frames": 8}

PRESETS: dict[str, dict[str, Any]] = {
    # EVA02-CLIP-B/16 (timm `eva02_base_patch16_clip_224`, open_clip `EVA02-B-16`): 86M vision + 63M text.
    "eva02at-b": {
        "vision_config": {**_VISION_SHAPES["b"], "intermediate_size": 2048, **_CLIPS},
        "text_config": _TEXT_TOWERS["b"],
        "projection_dim": 256,
    },
    # EVA02-CLIP-L/14 (timm `eva02_large_patch14_clip_224`, open_clip `EVA02-L-14`): 304M vision + 124M text.
    "eva02at-l": {
        "vision_config": {**_VISION_SHAPES["l"], "intermediate_size": 2730, **_CLIPS},
        "text_config": _TEXT_TOWERS["l"],
        "projection_dim": 256,
    },
    # A small model with the same architecture, for tests, the quickstart and CPU benchmarks.
    "eva02at-tiny": {
        "vision_config": {
            **_VISION_SHAPES["tiny"],
            "intermediate_size": 128,
            **_TINY_CLIPS,
            "rope_reference_grid_size": 4,
        },
        "text_config": _TEXT_TOWERS["tiny"],
        "projection_dim": 32,
    },
    # The paper's CLIP ViT baselines (AVION's CLIP_VITB16 / CLIP_VITL14 with 256-d projections): open_clip's
    # ViT-B-16 (86M vision + 63M text) and ViT-L-14 (304M + 124M) towers.
    "vit-b": {
        "vision_config": {**_VIT, **_VISION_SHAPES["b"], "intermediate_size": 3072, **_CLIPS},
        "text_config": _TEXT_TOWERS["b"],
        "projection_dim": 256,
    },
    "vit-l": {
        "vision_config": {**_VIT, **_VISION_SHAPES["l"], "intermediate_size": 4096, **_CLIPS},
        "text_config": _TEXT_TOWERS["l"],
        "projection_dim": 256,
    },
    "vit-tiny": {
        "vision_config": {**_VIT, **_VISION_SHAPES["tiny"], "intermediate_size": 256, **_TINY_CLIPS},
        "text_config": _TEXT_TOWERS["tiny"],
        "projection_dim": 32,
    },
}

__all__ = ["EVA02ATConfig", "EVA02ATTextConfig", "EVA02ATViTVisionConfig", "EVA02ATVisionConfig", "PRESETS"]
