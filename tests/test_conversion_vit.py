"""The CLIP ViT baseline (AVION) and the converters for AVION, OpenAI CLIP, open_clip, transformers' CLIP and the
EVA02-AT authors' layout: parity against independent reference models with random weights.

References: a small re-implementation of AVION's `VisionTransformer` (zhaoyue-zephyrus/AVION,
`avion/models/transformer.py`: B C T H W input, conv or `use_fast_conv1` Linear patches, P_xy tiled over frames
plus P_t repeated over patches, `ln_pre`, `nn.MultiheadAttention` or flash-attn's `Wqkv` blocks, `ln_post` on CLS,
`image_projection`), open_clip's own models and text tower, transformers' `CLIPModel`, and timm's `Eva`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections import OrderedDict
from pathlib import Path

import open_clip
import pytest
import torch
import torch.nn.functional as F
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
from open_clip.transformer import TextTransformer
from safetensors.torch import save_file
from torch import nn
from transformers import AutoModel

from eva02at_hf import EVA02ATConfig, EVA02ATForVideoTextRetrieval, EVA02ATVisionModel
from eva02at_hf.apps.cli import EXIT_OK, EXIT_USAGE, main
from eva02at_hf.apps.conversion import (
    ConversionError,
    convert_checkpoint,
    convert_state_dict,
    detect_format,
    infer_config,
    load_checkpoint,
)

TOKENS = torch.tensor([[49406, 320, 1125, 539, 49407, 0, 0], [49406, 1215, 49407, 0, 0, 0, 0]])


def _text_features(model: EVA02ATForVideoTextRetrieval, tokens: torch.Tensor) -> torch.Tensor:
    return model.get_text_features(tokens, attention_mask=(tokens != 0).long()).pooler_output


# ------------------------------------------------------------------------------------ AVION reference model


class FlashStyleAttention(nn.Module):
    """flash-attn's `MHA` parameter layout: one `Wqkv` Linear (q, k, v stacked, heads inside) and `out_proj`."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.Wqkv = nn.Linear(width, 3 * width)
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        qkv = self.Wqkv(x).reshape(batch, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, width))


class AvionBlock(nn.Module):
    def __init__(self, width: int, heads: int, flash: bool) -> None:
        super().__init__()
        self.flash = flash
        self.ln_1 = nn.LayerNorm(width, eps=1e-6)
        self.attn = FlashStyleAttention(width, heads) if flash else nn.MultiheadAttention(width, heads)
        self.ln_2 = nn.LayerNorm(width, eps=1e-6)
        names = ("fc1", "fc2") if flash else ("c_fc", "c_proj")
        self.mlp = nn.Sequential(
            OrderedDict(
                [
                    (names[0], nn.Linear(width, 4 * width)),
                    ("gelu", nn.GELU()),
                    (names[1], nn.Linear(4 * width, width)),
                ]
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (L, N, D) plain, (N, L, D) flash, as in AVION
        y = self.ln_1(x)
        x = x + (self.attn(y) if self.flash else self.attn(y, y, y, need_weights=False)[0])
        return x + self.mlp(self.ln_2(x))


class AvionVisionTransformer(nn.Module):
    def __init__(self, image_size, patch, width, layers, heads, num_frames, output_dim, fast_conv1, flash):
        super().__init__()
        self.patch, self.width, self.num_frames = patch, width, num_frames
        self.fast_conv1, self.flash = fast_conv1, flash
        grid = image_size // patch
        self.conv1 = (
            nn.Linear(3 * patch * patch, width, bias=False)
            if fast_conv1
            else nn.Conv2d(3, width, patch, patch, bias=False)
        )
        self.class_embedding = nn.Parameter(torch.randn(width) * 0.5)
        self.positional_embedding = nn.Parameter(torch.randn(grid * grid + 1, width) * 0.5)
        if num_frames > 1:
            self.temporal_embedding = nn.Parameter(torch.randn(num_frames, width) * 0.5)  # trained: non-zero
        self.ln_pre = nn.LayerNorm(width, eps=1e-6)
        self.transformer = nn.Module()
        self.transformer.resblocks = nn.ModuleList([AvionBlock(width, heads, flash) for _ in range(layers)])
        self.ln_post = nn.LayerNorm(width, eps=1e-6)
        self.image_projection = nn.Parameter(torch.randn(width, output_dim) * width**-0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, T, H, W) for video models, (B, C, H, W) for one-frame models."""
        if x.ndim == 4:
            x = x.unsqueeze(2)
        batch, channels, frames, height, width = x.shape
        p = self.patch
        if self.fast_conv1:
            patches = x.reshape(batch, channels, frames, height // p, p, width // p, p)
            patches = patches.permute(0, 2, 3, 5, 1, 4, 6).reshape(batch, -1, channels * p * p)
            x = self.conv1(patches)
        else:
            x = (
                self.conv1(x.transpose(1, 2).flatten(0, 1))
                .flatten(2)
                .transpose(1, 2)
                .reshape(batch, -1, self.width)
            )
        x = torch.cat([self.class_embedding.expand(batch, 1, -1), x], dim=1)
        positions = self.positional_embedding[1:].repeat(frames, 1)
        if frames > 1:
            positions = positions + self.temporal_embedding.repeat_interleave(
                self.positional_embedding.shape[0] - 1, 0
            )
        x = x + torch.cat([self.positional_embedding[:1], positions])
        x = self.ln_pre(x)
        if not self.flash:
            x = x.transpose(0, 1)
        for block in self.transformer.resblocks:
            x = block(x)
        if not self.flash:
            x = x.transpose(0, 1)
        return self.ln_post(x[:, 0]) @ self.image_projection


class AvionCLIP(nn.Module):
    """AVION's `CLIP` wrapper: `visual`, `textual` (open_clip's TextTransformer, as AVION's is), `logit_scale`."""

    def __init__(
        self, width=64, heads=2, num_frames=4, fast_conv1=False, flash=False, embed_dim=16, context_length=7
    ):
        super().__init__()
        self.visual = AvionVisionTransformer(32, 8, width, 2, heads, num_frames, embed_dim, fast_conv1, flash)
        self.textual = TextTransformer(
            context_length=context_length, vocab_size=49408, width=48, heads=2, layers=1, output_dim=embed_dim
        )
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))


def save_avion_checkpoint(reference: AvionCLIP, path: Path) -> None:
    """Saved as AVION's training script does: `{"state_dict": ...}` from a DDP model (`module.` prefix)."""
    state = {f"module.{k}": v for k, v in reference.state_dict().items() if not k.endswith("attn_mask")}
    torch.save({"epoch": 3, "state_dict": state, "best_acc1": 0.5}, path)


@pytest.mark.parametrize("fast_conv1", [False, True], ids=["conv1", "fast_conv1"])
@pytest.mark.parametrize("flash", [False, True], ids=["in_proj", "Wqkv"])
def test_avion_parity_at_one_and_four_frames(tmp_path: Path, flash: bool, fast_conv1: bool) -> None:
    torch.manual_seed(0)
    reference = AvionCLIP(num_frames=4, fast_conv1=fast_conv1, flash=flash).eval()
    save_avion_checkpoint(reference, tmp_path / "avion.pt")
    state_dict = load_checkpoint(tmp_path / "avion.pt")
    assert detect_format(state_dict) == "avion"
    with pytest.raises(ConversionError, match="64-wide vision tower.*--num_heads"):
        convert_checkpoint(state_dict)
    model = convert_checkpoint(state_dict, num_heads=2, text_num_heads=2).eval()
    config = model.config
    assert config.uses_vit_backbone and config.vision_config.num_frames == 4
    assert config.vision_config.hidden_act == "gelu" and config.vision_config.layer_norm_eps == 1e-6
    assert model.visual_projection.bias is None
    clips = torch.randn(2, 4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference.visual(clips.transpose(1, 2))
        ours = model.get_video_features(clips).pooler_output
        expected_text = reference.textual(TOKENS)
        ours_text = _text_features(model, TOKENS)
    torch.testing.assert_close(ours, expected, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(ours_text, expected_text, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(model.logit_scale, reference.logit_scale)

    one_frame = AvionCLIP(num_frames=1, fast_conv1=fast_conv1, flash=flash).eval()
    image_model = convert_checkpoint(
        {k: v for k, v in one_frame.state_dict().items() if not k.endswith("attn_mask")},
        num_frames=4,
        num_heads=2,
        text_num_heads=2,
    ).eval()
    assert torch.count_nonzero(image_model.vision_model.embeddings.temporal_embedding) == 0
    with torch.no_grad():
        expected = one_frame.visual(clips[:, 0])
        ours = image_model.get_video_features(clips[:, :1]).pooler_output
    torch.testing.assert_close(ours, expected, atol=2e-5, rtol=1e-4)


def test_avion_temporal_embedding_is_resampled_on_load(tmp_path: Path) -> None:
    torch.manual_seed(0)
    reference = AvionCLIP(num_frames=4)
    state_dict = {k: v for k, v in reference.state_dict().items() if not k.endswith("attn_mask")}
    model = convert_checkpoint(state_dict, num_frames=7, num_heads=2, text_num_heads=2)
    temporal = model.vision_model.embeddings.temporal_embedding[0]
    source = reference.visual.temporal_embedding.detach()
    assert temporal.shape == (7, 64) and model.config.vision_config.num_frames == 7
    torch.testing.assert_close(temporal[0], source[0])  # linear, end frames kept
    torch.testing.assert_close(temporal[-1], source[-1])
    torch.testing.assert_close(temporal[2], source[1])  # 7 frames over 4: frame 2 lands on source frame 1
    torch.testing.assert_close(temporal[1], (source[0] + source[1]) / 2)


# --------------------------------------------------------------------------- OpenAI CLIP / open_clip ViTs


def _tiny_open_clip(quick_gelu: bool, width: int = 64, head_width: int = 32, seed: int = 0) -> CLIP:
    torch.manual_seed(seed)
    return CLIP(
        embed_dim=16,
        vision_cfg=CLIPVisionCfg(layers=2, width=width, head_width=head_width, patch_size=8, image_size=32),
        text_cfg=CLIPTextCfg(context_length=7, width=48, heads=2, layers=1),
        quick_gelu=quick_gelu,
    ).eval()


@pytest.mark.parametrize("quick_gelu", [True, False], ids=["openai_clip", "open_clip"])
def test_openai_and_open_clip_parity_at_one_frame(quick_gelu: bool) -> None:
    reference = _tiny_open_clip(quick_gelu)
    state_dict = reference.state_dict()
    with pytest.raises(ConversionError, match="--format openai_clip"):
        detect_format(state_dict)
    format = "openai_clip" if quick_gelu else "open_clip"
    model = convert_checkpoint(state_dict, format=format, num_frames=4, num_heads=2, text_num_heads=2).eval()
    assert model.config.vision_config.hidden_act == ("quick_gelu" if quick_gelu else "gelu")
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = reference.encode_image(images)
        ours = model.get_video_features(images[:, None]).pooler_output
        expected_text = reference.encode_text(TOKENS)
        ours_text = _text_features(model, TOKENS)
    torch.testing.assert_close(ours, expected, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(ours_text, expected_text, atol=2e-5, rtol=1e-4)


RELEASED_WIDTHS = {  # open_clip's ViT-B-16 / ViT-L-14 configs: (embed_dim, vision width, patch, text width, heads)
    "ViT-B-16": (512, 768, 16, 512, 12, 8),
    "ViT-L-14": (768, 1024, 14, 768, 16, 12),
}


@pytest.mark.parametrize("quick_gelu", [True, False], ids=["openai_clip", "open_clip"])
@pytest.mark.parametrize("name", sorted(RELEASED_WIDTHS))
def test_released_vit_widths_convert_with_parity(name: str, quick_gelu: bool) -> None:
    """OpenAI / open_clip ViT-B/16 and ViT-L/14 at their released widths, patch sizes and head counts (2 layers per
    tower and 8 x 8 patches to stay fast): the heads are inferred from the widths, and image and text features
    match open_clip's reference model."""
    embed_dim, width, patch, text_width, heads, text_heads = RELEASED_WIDTHS[name]
    torch.manual_seed(0)
    reference = CLIP(
        embed_dim=embed_dim,
        vision_cfg=CLIPVisionCfg(layers=2, width=width, patch_size=patch, image_size=8 * patch),
        text_cfg=CLIPTextCfg(width=text_width, heads=text_heads, layers=2),
        quick_gelu=quick_gelu,
    ).eval()
    model = convert_checkpoint(
        reference.state_dict(), format="openai_clip" if quick_gelu else "open_clip"
    ).eval()
    vision, text = model.config.vision_config, model.config.text_config
    assert (vision.num_attention_heads, text.num_attention_heads) == (heads, text_heads)
    assert (vision.patch_size, vision.hidden_act) == (patch, "quick_gelu" if quick_gelu else "gelu")
    images = torch.randn(1, 3, 8 * patch, 8 * patch, generator=torch.Generator().manual_seed(3))
    tokens = open_clip.get_tokenizer(name)(["open the fridge", "cut the red onion"])
    with torch.no_grad():
        torch.testing.assert_close(
            F.normalize(model.get_video_features(images[:, None]).pooler_output, dim=-1),
            reference.encode_image(images, normalize=True),
            atol=1e-5,
            rtol=1e-4,
        )
        torch.testing.assert_close(
            F.normalize(_text_features(model, tokens), dim=-1),
            reference.encode_text(tokens, normalize=True),
            atol=1e-5,
            rtol=1e-4,
        )


@pytest.mark.parametrize(("name", "preset"), [("ViT-B-16", "vit-b"), ("ViT-L-14", "vit-l")])
def test_presets_match_open_clip_architectures(name: str, preset: str) -> None:
    """Built on the meta device: the converted architecture is the preset's, and the parameter counts agree with
    open_clip's model up to the 256-d projections and the temporal embedding."""
    reference = open_clip.create_model(name, pretrained=None, device="meta")
    converted = convert_state_dict(reference.state_dict(), format="open_clip")
    inferred = infer_config(converted, "open_clip", projection_dim=256)
    config = EVA02ATConfig.from_preset(preset)
    for tower in ("vision_config", "text_config"):
        for field in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"):
            assert getattr(getattr(inferred, tower), field) == getattr(getattr(config, tower), field), (
                tower,
                field,
            )
    assert (inferred.vision_config.patch_size, inferred.vision_config.image_size) == (
        config.vision_config.patch_size,
        config.vision_config.image_size,
    )
    with torch.device("meta"):
        ours = EVA02ATForVideoTextRetrieval(config)
    open_clip_count = sum(p.numel() for p in reference.parameters())
    vision_width, text_width = config.vision_config.hidden_size, config.text_config.hidden_size
    embed_dim = reference.text_projection.shape[1]
    expected = (
        open_clip_count
        - (vision_width + text_width) * embed_dim
        + (vision_width + text_width) * 256
        + config.vision_config.num_frames * vision_width
    )
    assert sum(p.numel() for p in ours.parameters()) == expected


# ---------------------------------------------------------------------------------- attention-head inference


def test_non_standard_width_needs_the_head_count(tmp_path: Path) -> None:
    """A 128-wide, 4-head tower is not converted as 2 heads (head size 64): the heads come from the caller or
    the open_clip_config.json beside the weights."""
    reference = _tiny_open_clip(quick_gelu=False, width=128, head_width=32)
    state = {k: v.contiguous() for k, v in reference.state_dict().items() if k != "attn_mask"}
    save_file(state, tmp_path / "open_clip_model.safetensors")
    argv = ["convert", "--checkpoint", str(tmp_path), "--output_dir", str(tmp_path / "out"), "--no-processor"]
    assert main([*argv, "--format", "open_clip"]) == EXIT_USAGE
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = reference.encode_image(images)
    wrong = convert_checkpoint(state, format="open_clip", num_heads=2, text_num_heads=2).eval()
    with torch.no_grad():
        assert not torch.allclose(
            wrong.get_video_features(images[:, None]).pooler_output, expected, atol=1e-3
        )
    (tmp_path / "open_clip_config.json").write_text(
        json.dumps(
            {
                "model_cfg": {
                    "embed_dim": 16,
                    "quick_gelu": False,
                    "vision_cfg": {
                        "width": 128,
                        "head_width": 32,
                        "layers": 2,
                        "patch_size": 8,
                        "image_size": 32,
                    },
                    "text_cfg": {"width": 48, "heads": 2, "layers": 1, "context_length": 7},
                }
            }
        )
    )
    assert main(argv) == EXIT_OK  # format (GELU) and heads from the config file
    model = AutoModel.from_pretrained(tmp_path / "out").eval()
    assert model.config.vision_config.num_attention_heads == 4
    with torch.no_grad():
        torch.testing.assert_close(
            model.get_video_features(images[:, None]).pooler_output, expected, atol=2e-5, rtol=1e-4
        )
    assert main([*argv, "--num_heads", "3"]) == EXIT_USAGE  # does not divide 128


# ------------------------------------------------------------------------------------- transformers CLIPModel


def test_transformers_clip_parity(tmp_path: Path) -> None:
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={
            "hidden_size": 48,
            "intermediate_size": 96,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": 7,
        },
        vision_config={
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    reference = CLIPModel(config).eval()
    reference.save_pretrained(tmp_path / "clip")
    out = tmp_path / "out"
    assert (
        main(["convert", "--checkpoint", str(tmp_path / "clip"), "--output_dir", str(out), "--no-processor"])
        == 0
    )
    model = AutoModel.from_pretrained(out).eval()
    assert model.config.vision_config.num_attention_heads == 4  # from config.json, not the width
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.testing.assert_close(
            model.get_video_features(images[:, None]).pooler_output,
            reference.get_image_features(pixel_values=images).pooler_output,
            atol=2e-5,
            rtol=1e-4,
        )
        torch.testing.assert_close(
            _text_features(model, TOKENS),
            reference.get_text_features(input_ids=TOKENS, attention_mask=(TOKENS != 0).long()).pooler_output,
            atol=2e-5,
            rtol=1e-4,
        )


# ------------------------------------------------------------------------------ the EVA02-AT authors' layout


@pytest.fixture(scope="module")
def tiny_eva():
    from timm.models.eva import Eva

    torch.manual_seed(0)
    return Eva(
        img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=2, mlp_ratio=4 * 2 / 3, swiglu_mlp=True,
        scale_mlp=True, scale_attn_inner=True, use_rot_pos_emb=True, ref_feat_shape=(4, 4), num_classes=16,
        qkv_fused=False, global_pool="token",
    ).eval()  # fmt: skip


def _authors_layout(timm_state: dict[str, torch.Tensor], temporal: torch.Tensor) -> dict[str, torch.Tensor]:
    """timm EVA02 keys -> the authors' `Eva` layout, by hand (authors-code.md): conv1 Linear, 2-D pos_embed."""
    out = {}
    for key, value in timm_state.items():
        if key.startswith("rope."):
            continue
        if key == "patch_embed.proj.weight":
            out["conv1.weight"] = value.flatten(1)
        elif key == "patch_embed.proj.bias":
            out["conv1.bias"] = value
        elif key == "pos_embed":
            out["pos_embed"] = value[0]
        else:
            out[key] = value
    out["temporal_embed"] = temporal
    return out


def test_authors_layout_with_avion_text_tower(tiny_eva) -> None:
    timm_state = tiny_eva.state_dict()
    text = TextTransformer(
        context_length=7, vocab_size=49408, width=48, heads=2, layers=1, output_dim=16
    ).eval()
    vision = _authors_layout(timm_state, torch.zeros(4, 64))
    state = {f"module.visual.{k}": v for k, v in vision.items()}
    state |= {f"module.textual.{k}": v for k, v in text.state_dict().items() if k != "attn_mask"}
    state["module.logit_scale"] = torch.tensor(2.0)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    assert detect_format(state) == "eva02at"
    model = convert_checkpoint(state, num_heads=2, text_num_heads=2).eval()
    assert isinstance(model, EVA02ATForVideoTextRetrieval) and model.config.vision_config.num_frames == 4
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        torch.testing.assert_close(
            model.get_video_features(images[:, None]).pooler_output, tiny_eva(images), atol=2e-5, rtol=1e-4
        )
        torch.testing.assert_close(_text_features(model, TOKENS), text(TOKENS), atol=2e-5, rtol=1e-4)


def test_authors_vision_only_layout_matches_the_eva02_clip_path_at_four_frames(tiny_eva) -> None:
    """At 4 frames with a trained (non-zero) P_t, the authors' layout gives the same video tower as the
    EVA02-CLIP path (timm parity) with that P_t set: the layouts differ only in names and shapes."""
    temporal = torch.randn(4, 64, generator=torch.Generator().manual_seed(7))
    authors = convert_checkpoint(_authors_layout(tiny_eva.state_dict(), temporal), num_heads=2).eval()
    assert isinstance(authors, EVA02ATVisionModel)
    via_timm = convert_checkpoint(tiny_eva.state_dict(), num_frames=4, num_heads=2, text_num_heads=8).eval()
    with torch.no_grad():
        via_timm.vision_model.embeddings.temporal_embedding.copy_(temporal[None])
    clips = torch.randn(2, 4, 3, 32, 32, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        torch.testing.assert_close(
            authors(pixel_values=clips).pooler_output, via_timm.vision_model(pixel_values=clips).pooler_output
        )
        assert not torch.allclose(
            authors(pixel_values=clips).pooler_output, authors(pixel_values=clips.flip(1)).pooler_output
        )


def test_unknown_and_missing_keys_are_listed() -> None:
    state = {k: v for k, v in AvionCLIP().state_dict().items() if not k.endswith("attn_mask")}
    extra = {
        **state,
        "visual.transformer.resblocks.0.ls_1.gamma": torch.ones(64),
        "fc_cls.weight": torch.ones(2),
    }
    with pytest.raises(ConversionError, match="2 checkpoint keys") as error:
        convert_checkpoint(extra, num_heads=2, text_num_heads=2)
    assert "visual:transformer.resblocks.0.ls_1.gamma" in str(error.value) and "fc_cls.weight" in str(
        error.value
    )
    missing = {k: v for k, v in state.items() if "resblocks.1.mlp" not in k}
    with pytest.raises(ConversionError, match=r"layers\.1\.mlp\.fc1"):
        convert_checkpoint(missing, num_heads=2, text_num_heads=2)
    with pytest.raises(ConversionError, match="Unrecognised checkpoint layout"):
        convert_checkpoint({"encoder.weight": torch.ones(2)})


def test_torchscript_archives_are_refused_by_name(tmp_path: Path) -> None:
    scripted = torch.jit.script(nn.Linear(2, 2))
    scripted.save(str(tmp_path / "ViT-B-16.pt"))
    with pytest.raises(ConversionError, match="TorchScript.*ViT-B-16.pt|ViT-B-16.pt.*TorchScript"):
        load_checkpoint(tmp_path / "ViT-B-16.pt")


# ----------------------------------------------------------------------------------------------- Hub ids


def _populate_hub_cache(cache: Path, repo_id: str, files: dict[str, bytes]) -> None:
    """Write `files` into `cache` as huggingface_hub lays out a downloaded revision: content-addressed blobs,
    a snapshot folder of links to them named by the commit, and `refs/main` naming the commit."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "blobs").mkdir()
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / name).symlink_to(os.path.relpath(blob, snapshot))


def test_hub_ids_resolve_through_the_local_cache_offline(tmp_path: Path, monkeypatch, capsys) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    reference = _tiny_open_clip(quick_gelu=True, seed=3)
    weights = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items() if k != "attn_mask"}, weights)
    open_clip_config = {
        "model_cfg": {
            "embed_dim": 16,
            "quick_gelu": True,
            "vision_cfg": {"width": 64, "head_width": 32, "layers": 2, "patch_size": 8, "image_size": 32},
            "text_cfg": {"width": 48, "heads": 2, "layers": 1, "context_length": 7},
        }
    }
    cache = tmp_path / "hub"
    _populate_hub_cache(
        cache,
        "timm/vit_tiny_clip.openai",
        {
            "open_clip_model.safetensors": weights.read_bytes(),
            "open_clip_config.json": json.dumps(open_clip_config).encode(),
        },
    )
    out = tmp_path / "out"
    argv = ["convert", "--cache_dir", str(cache), "--output_dir", str(out), "--num_frames", "4"]
    assert main([*argv, "--checkpoint", "timm/vit_tiny_clip.openai"]) == EXIT_OK
    model = AutoModel.from_pretrained(out).eval()
    assert (
        model.config.vision_config.hidden_act == "quick_gelu"
    )  # from the repository's open_clip_config.json
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        torch.testing.assert_close(
            model.get_video_features(images[:, None]).pooler_output,
            reference.encode_image(images),
            atol=2e-5,
            rtol=1e-4,
        )
    capsys.readouterr()
    assert main([*argv, "--checkpoint", "timm/not-downloaded"]) == EXIT_USAGE
    error = capsys.readouterr().err
    assert "timm/not-downloaded" in error and "offline" in error and "open_clip_model.safetensors" in error
    assert main([*argv, "--checkpoint", "timm/vit_tiny_clip.openai", "--revision", "v2"]) == EXIT_USAGE
    assert "at revision v2" in capsys.readouterr().err
