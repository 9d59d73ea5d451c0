"""Conversion parity with randomly initialised timm / open_clip EVA02-CLIP models (pretrained=False)."""

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from eva02at_hf.apps.conversion import (
    ConversionError,
    convert_checkpoint,
    convert_state_dict,
    load_checkpoint,
)


@pytest.fixture(scope="module")
def timm_model():
    import timm

    torch.manual_seed(0)
    # 112 px (a 7 x 7 grid, RoPE still referenced to 16 x 16 as in EVA02) keeps the B-size check fast on CPU.
    model = timm.create_model("eva02_base_patch16_clip_224", pretrained=False, img_size=112).eval()
    with (
        torch.no_grad()
    ):  # timm initialises its head at 1e-3 scale; use a unit-scale head for a sharper check
        model.head.weight.normal_(std=0.02)
    return model


@pytest.fixture(scope="module")
def open_clip_model():
    import open_clip

    torch.manual_seed(1)
    return open_clip.create_model("EVA02-B-16", pretrained=None, force_image_size=112).eval()


@pytest.fixture(scope="module")
def converted_timm(timm_model):
    return convert_checkpoint(timm_model.state_dict(), num_frames=16).eval()


@pytest.fixture(scope="module")
def converted_open_clip(open_clip_model):
    return convert_checkpoint(open_clip_model.state_dict(), num_frames=4).eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(2, 3, 112, 112, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_timm_parity_at_one_frame(timm_model, converted_timm, images, attn_implementation: str) -> None:
    model = converted_timm
    model.set_attn_implementation(attn_implementation)
    with torch.no_grad():
        expected_tokens = timm_model.forward_features(images)
        expected = timm_model(images)
        ours = model.vision_model(pixel_values=images[:, None])
        projected = model.get_video_features(images[:, None]).pooler_output
    assert torch.allclose(ours.last_hidden_state, expected_tokens, atol=1e-5)
    assert torch.allclose(projected, expected, atol=1e-5)


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_open_clip_parity_image_and_text(
    open_clip_model, converted_open_clip, images, attn_implementation: str
) -> None:
    """The converted model at one frame (temporal RoPE and P_t included) is exactly the image CLIP model."""
    import open_clip

    model = converted_open_clip
    model.set_attn_implementation(attn_implementation)
    tokens = open_clip.get_tokenizer("EVA02-B-16")(
        ["open the fridge", "cut the red onion into small pieces", ""]
    )
    with torch.no_grad():
        image_ref = open_clip_model.encode_image(images, normalize=True)
        text_ref = open_clip_model.encode_text(tokens, normalize=True)
        video = F.normalize(model.get_video_features(images[:, None]).pooler_output, dim=-1)
        text = F.normalize(
            model.get_text_features(tokens, attention_mask=(tokens != 0).long()).pooler_output, dim=-1
        )
    assert torch.allclose(video, image_ref, atol=1e-5)
    assert torch.allclose(text, text_ref, atol=1e-5)
    assert torch.allclose(model.logit_scale, open_clip_model.logit_scale)


def _to_baai_layout(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename open_clip keys into BAAI EVA-CLIP's layout, by hand, as an independent path."""
    out = {}
    for key, value in state_dict.items():
        if key.startswith("visual.trunk."):
            key = "visual." + key[len("visual.trunk.") :]
            key = key.replace("attn.norm.", "attn.inner_attn_ln.").replace("mlp.norm.", "mlp.ffn_ln.")
            key = (
                key.replace("mlp.fc1_g.", "mlp.w1.")
                .replace("mlp.fc1_x.", "mlp.w2.")
                .replace("mlp.fc2.", "mlp.w3.")
            )
            key = key.replace("attn.q_proj.bias", "attn.q_bias").replace("attn.v_proj.bias", "attn.v_bias")
        out[key] = value
    out["visual.rope.freqs_cos"] = torch.zeros(196, 64)
    return out


def test_baai_layout_converts_to_the_same_model(open_clip_model, images) -> None:
    reference = convert_state_dict(open_clip_model.state_dict())
    baai = convert_state_dict(_to_baai_layout(open_clip_model.state_dict()))
    assert reference.keys() == baai.keys()
    for key in reference:
        assert torch.equal(reference[key], baai[key]), key


def test_unmapped_keys_are_an_error_listing_them(open_clip_model) -> None:
    state_dict = dict(open_clip_model.state_dict())
    state_dict["visual.trunk.blocks.0.attn.gate.weight"] = torch.zeros(1)
    state_dict["mystery"] = torch.zeros(1)
    with pytest.raises(ConversionError, match="2 checkpoint keys") as error:
        convert_checkpoint(state_dict)
    assert "visual:blocks.0.attn.gate.weight" in str(error.value) and "mystery" in str(error.value)


def test_missing_weights_are_an_error(open_clip_model) -> None:
    state_dict = {k: v for k, v in open_clip_model.state_dict().items() if "blocks.3.mlp.fc2" not in k}
    with pytest.raises(ConversionError, match=r"layers\.3\.mlp\.down_proj"):
        convert_checkpoint(state_dict)


def test_checkpoint_files_load_without_pickled_code(timm_model, tmp_path) -> None:
    state_dict = {k: v.contiguous() for k, v in timm_model.state_dict().items()}
    save_file(state_dict, tmp_path / "model.safetensors")
    torch.save({"state_dict": state_dict, "epoch": 3}, tmp_path / "model.pt")
    for name in ("model.safetensors", "model.pt"):
        loaded = load_checkpoint(tmp_path / name)
        assert loaded.keys() == state_dict.keys()

    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"payload": Exploit()}, tmp_path / "evil.pt")
    with pytest.raises(ConversionError, match="evil.pt"):
        load_checkpoint(tmp_path / "evil.pt")
    with pytest.raises(FileNotFoundError, match="absent.pt"):
        load_checkpoint(tmp_path / "absent.pt")


def test_new_projection_dim_reinitialises_projections(open_clip_model) -> None:
    model = convert_checkpoint(open_clip_model.state_dict(), projection_dim=256)
    assert model.visual_projection.out_features == 256 and model.text_projection.out_features == 256
    assert torch.equal(
        model.vision_model.layers[0].self_attn.k_proj.weight,
        open_clip_model.state_dict()["visual.trunk.blocks.0.attn.k_proj.weight"],
    )
