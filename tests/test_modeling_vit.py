"""The CLIP ViT baseline tower (AVION design) inside the package: auto classes, attention back-ends, outputs, P_t,
resizing, remote code. Parity with AVION / OpenAI / open_clip weights is in test_conversion_vit.py."""

from pathlib import Path

import pytest
import torch
from _helpers import remote_code_logits
from huggingface_hub.errors import StrictDataclassClassValidationError
from transformers import AutoConfig, AutoModel

from eva02at_hf import (
    EVA02ATConfig,
    EVA02ATForVideoTextRetrieval,
    EVA02ATViTVisionConfig,
    EVA02ATViTVisionModel,
)


@pytest.fixture
def vit_model() -> EVA02ATForVideoTextRetrieval:
    torch.manual_seed(0)
    model = EVA02ATForVideoTextRetrieval(EVA02ATConfig.from_preset("vit-tiny")).eval()
    with torch.no_grad():
        model.vision_model.embeddings.temporal_embedding.normal_(std=0.02)
    return model


def test_vit_preset_builds_the_vit_tower_with_zero_temporal_embedding() -> None:
    config = EVA02ATConfig.from_preset("vit-tiny")
    assert isinstance(config.vision_config, EVA02ATViTVisionConfig) and config.uses_vit_backbone
    model = EVA02ATForVideoTextRetrieval(config)
    assert isinstance(model.vision_model, EVA02ATViTVisionModel)
    assert torch.count_nonzero(model.vision_model.embeddings.temporal_embedding) == 0
    assert model.vision_model.embeddings.patch_embedding.bias is None and model.visual_projection.bias is None
    with pytest.raises(StrictDataclassClassValidationError, match="hidden_act='swish_glu'"):
        EVA02ATConfig.from_preset("vit-tiny", vision_config={"hidden_act": "swish_glu"})
    with pytest.raises(ValueError, match=r"\['temporal_position_encoding'\] configure the EVA02-AT tower"):
        EVA02ATConfig.from_preset("vit-tiny", vision_config={"temporal_position_encoding": "rope"})


def test_vit_outputs_and_attention_backends(vit_model, tiny_inputs) -> None:
    vit_model.set_attn_implementation("eager")
    with torch.no_grad():
        eager = vit_model(**tiny_inputs, output_hidden_states=True, output_attentions=True)
        vit_model.set_attn_implementation("sdpa")
        sdpa = vit_model(**tiny_inputs)
    vision = eager.vision_model_output
    tokens = 1 + 8 * 16
    assert vision.last_hidden_state.shape == (2, tokens, 64) and vision.pooler_output.shape == (2, 32)
    assert len(vision.hidden_states) == 3 and vision.attentions[0].shape == (2, 2, tokens, tokens)
    torch.testing.assert_close(vision.attentions[0].sum(-1), torch.ones(2, 2, tokens))
    # pooled = ln_post(CLS of the last block), the CLIP convention, then projected (transformers' CLIPModel)
    post = vit_model.vision_model.post_layernorm
    projected = vit_model.visual_projection(post(vision.last_hidden_state[:, 0]))
    torch.testing.assert_close(vision.pooler_output, projected)
    torch.testing.assert_close(eager.logits_per_video, sdpa.logits_per_video, atol=1e-5, rtol=1e-5)


def test_vit_joint_attention_uses_time_and_images_are_one_frame(vit_model, tiny_inputs) -> None:
    clips = tiny_inputs["pixel_values"]
    with torch.no_grad():
        vit_model.vision_model.embeddings.temporal_embedding.normal_(std=1.0)  # P_t is the ViT's only clock
        base = vit_model.get_video_features(clips).pooler_output
        reversed_time = vit_model.get_video_features(clips.flip(1)).pooler_output
        # near-uniform attention at random init averages tokens, so order shows only through the non-linearities
        assert (base - reversed_time).abs().max() > 1e-5
        torch.testing.assert_close(
            vit_model.get_video_features(clips[:, 0]).pooler_output,
            vit_model.get_video_features(clips[:, :1]).pooler_output,
        )


def test_vit_round_trip_resize_and_vision_only_auto_model(vit_model, tiny_inputs, tmp_path: Path) -> None:
    vit_model.save_pretrained(tmp_path)
    assert AutoConfig.from_pretrained(tmp_path).vision_config.model_type == "eva02at_vit_vision_model"
    reloaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(reloaded.vision_model, EVA02ATViTVisionModel)
    with torch.no_grad():
        torch.testing.assert_close(
            reloaded(**tiny_inputs).logits_per_video, vit_model(**tiny_inputs).logits_per_video
        )
    resized = AutoModel.from_pretrained(tmp_path, num_frames=4, image_size=48)
    assert resized.vision_model.embeddings.temporal_embedding.shape == (1, 4, 64)
    assert resized.vision_model.embeddings.position_embedding.shape == (1, 1 + 36, 64)
    assert resized.config.vision_config.num_frames == 4
    vit_model.vision_model.save_pretrained(tmp_path / "vision")
    assert isinstance(AutoModel.from_pretrained(tmp_path / "vision"), EVA02ATViTVisionModel)


def test_vit_gradient_checkpointing_gives_the_same_gradients(tiny_inputs) -> None:
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = EVA02ATForVideoTextRetrieval(EVA02ATConfig.from_preset("vit-tiny")).train()
        if checkpointing:
            model.gradient_checkpointing_enable()
        model.get_video_features(tiny_inputs["pixel_values"]).pooler_output.sum().backward()
        grads.append(model.vision_model.layers[0].self_attn.q_proj.weight.grad)
    torch.testing.assert_close(grads[0], grads[1])


def test_vit_trust_remote_code_without_the_package(vit_model, tiny_inputs, tmp_path: Path) -> None:
    folder = tmp_path / "checkpoint"
    vit_model.save_pretrained(folder)
    with torch.no_grad():
        expected = vit_model(**tiny_inputs).logits_per_video
    checks = """
from huggingface_hub.errors import StrictDataclassClassValidationError
assert type(model.vision_model).__name__ == "EVA02ATViTVisionModel", type(model.vision_model)
"""
    found = remote_code_logits(folder, tiny_inputs, tmp_path, checks)
    torch.testing.assert_close(found, expected, atol=1e-6, rtol=1e-6)


def test_vit_model_card_describes_the_vit_tower() -> None:
    from eva02at_hf.apps.hub import render_model_card

    card = render_model_card(EVA02ATConfig.from_preset("vit-tiny"), None, "me/vit-tiny")
    assert (
        "the EVA02-AT paper's ViT baseline" in card.text
        and "rotary position embeddings (RoPE) whose" not in card.text
    )
    assert "**Initialisation**: CLIP ViT (AVION)" in card.text
