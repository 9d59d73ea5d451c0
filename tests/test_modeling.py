"""EVA02-AT model behaviour: shapes, attention back-ends, serialisation, resizing, checkpointing, presets."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from _helpers import remote_code_logits
from huggingface_hub.errors import StrictDataclassClassValidationError
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModel
from transformers.testing_utils import CaptureLogger
from transformers.utils import logging

from eva02at_hf import EVA02ATConfig, EVA02ATForVideoTextRetrieval, EVA02ATVisionConfig, EVA02ATVisionModel


def test_forward_shapes_and_normalised_embeddings(tiny_model, tiny_inputs) -> None:
    pixel_values = tiny_inputs["pixel_values"]
    with torch.no_grad():
        out = tiny_model(**tiny_inputs, output_hidden_states=True)
    assert out.logits_per_video.shape == (2, 3) and out.logits_per_text.shape == (3, 2)
    assert torch.allclose(out.video_embeds.norm(dim=-1), torch.ones(2), atol=1e-6)
    assert torch.allclose(out.text_embeds.norm(dim=-1), torch.ones(3), atol=1e-6)
    scale = tiny_model.logit_scale.exp()
    assert torch.allclose(out.logits_per_video, scale * out.video_embeds @ out.text_embeds.t(), atol=1e-5)
    tokens = 1 + pixel_values.shape[1] * (32 // 8) ** 2
    vision = out.vision_model_output
    assert vision.last_hidden_state.shape == (2, tokens, 64)
    # pooler_output is the projected CLS token (transformers' CLIP convention), before normalisation.
    expected = tiny_model.visual_projection(vision.last_hidden_state[:, 0])
    assert torch.allclose(vision.pooler_output, expected, atol=1e-6)
    assert torch.allclose(out.video_embeds, F.normalize(expected, dim=-1), atol=1e-6)
    assert len(vision.hidden_states) == 3  # embeddings + 2 layers
    with pytest.raises(ValueError, match="one caption per clip"):
        tiny_model(**tiny_inputs, return_loss=True)


def test_eager_attention_weights_are_returned(tiny_model, tiny_inputs) -> None:
    tiny_model.set_attn_implementation("eager")
    with torch.no_grad():
        out = tiny_model.vision_model(pixel_values=tiny_inputs["pixel_values"], output_attentions=True)
    tokens = 1 + 8 * 16
    assert len(out.attentions) == 2 and out.attentions[0].shape == (2, 2, tokens, tokens)
    assert torch.allclose(out.attentions[0].sum(-1), torch.ones(2, 2, tokens), atol=1e-5)


def test_loss_matches_hand_computed_infonce(tiny_model, tiny_inputs) -> None:
    inputs = {
        **tiny_inputs,
        "input_ids": tiny_inputs["input_ids"][:2],
        "attention_mask": tiny_inputs["attention_mask"][:2],
    }
    with torch.no_grad():
        out = tiny_model(**inputs, return_loss=True)
    logits = out.logits_per_video
    row = -(torch.log_softmax(logits, 1)[0, 0] + torch.log_softmax(logits, 1)[1, 1]) / 2
    col = -(torch.log_softmax(logits, 0)[0, 0] + torch.log_softmax(logits, 0)[1, 1]) / 2
    assert torch.allclose(out.loss, (row + col) / 2, atol=1e-6)


@pytest.mark.parametrize("attn_implementation", ["sdpa", "flex_attention"])
def test_fused_attention_agrees_with_eager(tiny_model, tiny_inputs, attn_implementation: str) -> None:
    with torch.no_grad():
        tiny_model.set_attn_implementation("eager")
        eager = tiny_model(**tiny_inputs)
        tiny_model.set_attn_implementation(attn_implementation)
        fused = tiny_model(**tiny_inputs)
    assert torch.allclose(eager.logits_per_video, fused.logits_per_video, atol=1e-5)
    assert torch.allclose(
        eager.vision_model_output.last_hidden_state, fused.vision_model_output.last_hidden_state, atol=1e-5
    )
    assert torch.allclose(eager.text_embeds, fused.text_embeds, atol=1e-5)


def test_joint_attention_mixes_frames(tiny_model, tiny_inputs) -> None:
    """Changing only the last frame changes the CLS output, and reversing time changes it too."""
    pixel_values = tiny_inputs["pixel_values"]
    edited = pixel_values.clone()
    edited[:, -1] = torch.randn_like(edited[:, -1])
    with torch.no_grad():
        base = tiny_model.get_video_features(pixel_values).pooler_output
        changed = tiny_model.get_video_features(edited).pooler_output
        reversed_time = tiny_model.get_video_features(pixel_values.flip(1)).pooler_output
    assert not torch.allclose(base, changed, atol=1e-4)
    assert not torch.allclose(base, reversed_time, atol=1e-4)


def test_images_are_one_frame_clips(tiny_model, tiny_inputs) -> None:
    image = tiny_inputs["pixel_values"][:, 0]
    with torch.no_grad():
        as_image = tiny_model.vision_model(pixel_values=image).pooler_output
        as_clip = tiny_model.vision_model(pixel_values=image[:, None]).pooler_output
    assert torch.equal(as_image, as_clip)


def test_bad_pixel_values_shape_is_a_clear_error(tiny_model) -> None:
    with pytest.raises(ValueError, match="pixel_values must have shape"):
        tiny_model.vision_model(pixel_values=torch.randn(2, 8, 4, 32, 32))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temporal_position_encoding", "sinusoidal"),
        ("temporal_rope", "sinusoidal"),
        ("use_temporal_embedding", "yes"),
        ("temporal_rope_positions", "seconds"),
        ("num_attention_heads", 5),
    ],
)
def test_unknown_config_values_are_rejected(field: str, value) -> None:
    with pytest.raises((ValueError, StrictDataclassClassValidationError), match=field):
        EVA02ATVisionConfig(**{field: value})


def test_unknown_preset_is_rejected() -> None:
    with pytest.raises(ValueError, match="eva02at-xl"):
        EVA02ATConfig.from_preset("eva02at-xl")


@pytest.mark.parametrize("use_temporal_embedding", [True, False])
@pytest.mark.parametrize("temporal_rope", ["none", "additive", "split_3d"])
def test_every_temporal_encoding_runs(
    tiny_config, tiny_inputs, use_temporal_embedding: bool, temporal_rope: str
) -> None:
    config = EVA02ATConfig.from_preset(
        "eva02at-tiny",
        vision_config={"use_temporal_embedding": use_temporal_embedding, "temporal_rope": temporal_rope},
    )
    model = EVA02ATVisionModel(config.vision_config).eval()
    has_pt = model.embeddings.temporal_embedding is not None
    assert has_pt == use_temporal_embedding
    with torch.no_grad():
        out = model(pixel_values=tiny_inputs["pixel_values"])
    assert torch.isfinite(out.pooler_output).all()


def test_save_and_load_round_trip_through_auto_classes(tiny_model, tiny_inputs, tmp_path: Path) -> None:
    tiny_model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, EVA02ATConfig) and config.auto_map["AutoModel"].endswith(
        "EVA02ATForVideoTextRetrieval"
    )
    for loader in (AutoModel, EVA02ATForVideoTextRetrieval):
        reloaded = loader.from_pretrained(tmp_path).eval()
        assert isinstance(reloaded, EVA02ATForVideoTextRetrieval)
        with torch.no_grad():
            assert torch.allclose(
                reloaded(**tiny_inputs).logits_per_video, tiny_model(**tiny_inputs).logits_per_video
            )
    vision_dir = tmp_path / "vision"
    tiny_model.vision_model.save_pretrained(vision_dir)
    vision = AutoModel.from_pretrained(vision_dir)
    assert isinstance(vision, EVA02ATVisionModel)


def test_trust_remote_code_without_the_package(tiny_model, tiny_inputs, tmp_path: Path) -> None:
    folder = tmp_path / "checkpoint"
    tiny_model.save_pretrained(folder)
    assert (folder / "modeling_eva02at.py").is_file() and (folder / "rope.py").is_file()
    with torch.no_grad():
        expected = tiny_model(**tiny_inputs).logits_per_video
    assert torch.allclose(remote_code_logits(folder, tiny_inputs, tmp_path), expected, atol=1e-6)


def test_loading_at_another_frame_count_and_image_size_interpolates(tiny_model, tmp_path: Path) -> None:
    tiny_model.save_pretrained(tmp_path)
    saved_pt = tiny_model.vision_model.embeddings.temporal_embedding.detach()
    model = AutoModel.from_pretrained(tmp_path, num_frames=4, image_size=48)
    assert model.config.vision_config.num_frames == 4 and model.config.vision_config.image_size == 48
    embeddings = model.vision_model.embeddings
    assert embeddings.temporal_embedding.shape == (1, 4, 64)
    # Linear interpolation with aligned corners keeps the first and last frame embeddings.
    assert torch.allclose(embeddings.temporal_embedding[0, 0], saved_pt[0, 0])
    assert torch.allclose(embeddings.temporal_embedding[0, -1], saved_pt[0, -1])
    assert embeddings.position_embedding.shape == (1, 1 + 6 * 6, 64)
    with torch.no_grad():
        out = model.vision_model(pixel_values=torch.randn(1, 4, 3, 48, 48))
    assert out.last_hidden_state.shape == (1, 1 + 4 * 36, 64)


def test_resizing_keeps_the_trained_range_of_rescaled_rope(tiny_config) -> None:
    # Trained at 8 frames with `rescaled` positions, then resized to 4 after a forward (which cached a table):
    # the model must behave as one configured for 4 frames whose RoPE still refers to 8.
    tiny_config.vision_config.temporal_rope_positions = "rescaled"
    tiny_config.vision_config.num_frames = 8
    torch.manual_seed(0)
    model = EVA02ATVisionModel(tiny_config.vision_config).eval()
    pixel_values = torch.randn(1, 4, 3, 32, 32)
    with torch.no_grad():
        model(pixel_values=pixel_values)
        model.resize_position_embeddings(num_frames=4)
        resized = model(pixel_values=pixel_values).last_hidden_state
    assert model.config.num_frames == 4 and model.config.temporal_rope_reference_frames == 8
    config = {**tiny_config.vision_config.to_dict(), "num_frames": 4, "temporal_rope_reference_frames": 8}
    fresh = EVA02ATVisionModel(EVA02ATVisionConfig(**config))
    fresh.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.allclose(resized, fresh.eval()(pixel_values=pixel_values).last_hidden_state, atol=1e-6)

    # Loaded at 16 frames, frame 2k of a 16-frame clip sits where frame k of an 8-frame clip sat in training.
    model.resize_position_embeddings(num_frames=16)
    rotary, patches = model.rotary_embedding, 16
    long_clip, trained = rotary.angles(16, (4, 4)), rotary.angles(8, (4, 4))
    for k in range(4):
        assert torch.allclose(
            long_clip[2 * k * patches : (2 * k + 1) * patches], trained[k * patches : (k + 1) * patches]
        )


@pytest.mark.parametrize(
    ("override", "message"),
    [({"num_frames": 0}, "num_frames must be >= 1"), ({"image_size": 36}, "multiple of patch_size \\(8\\)")],
)
def test_loading_at_an_impossible_size_is_refused(tiny_model, tmp_path: Path, override, message) -> None:
    tiny_model.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=message):
        AutoModel.from_pretrained(tmp_path, **override)


def test_other_frame_counts_at_inference_use_interpolated_temporal_embedding(tiny_model) -> None:
    with torch.no_grad():
        out = tiny_model.vision_model(pixel_values=torch.randn(1, 3, 3, 32, 32))
    assert out.last_hidden_state.shape == (1, 1 + 3 * 16, 64)


def test_training_at_another_frame_count_than_p_t_warns(tiny_model) -> None:
    # P_t is sized for 8 frames: a 2-frame training clip interpolates it, so only rows 0 and 7 would learn.
    logger = logging.get_logger("eva02at_hf.modeling_eva02at")
    type(logger).warning_once.cache_clear()  # logged once per process: an earlier test may have logged it
    with CaptureLogger(logger) as evaluated:
        tiny_model.vision_model(pixel_values=torch.randn(1, 2, 3, 32, 32))
    with CaptureLogger(logger) as trained_at_8:
        tiny_model.train().vision_model(pixel_values=torch.randn(1, 8, 3, 32, 32))
    with CaptureLogger(logger) as trained_at_2:
        tiny_model.vision_model(pixel_values=torch.randn(1, 2, 3, 32, 32))
    assert evaluated.out == "" and trained_at_8.out == ""
    assert "sized for 8 frames" in trained_at_2.out and "resize_position_embeddings" in trained_at_2.out


def test_gradient_checkpointing_gives_the_same_gradients(tiny_config, tiny_inputs) -> None:
    torch.manual_seed(0)
    model = EVA02ATForVideoTextRetrieval(tiny_config).train()
    inputs = {
        **tiny_inputs,
        "input_ids": tiny_inputs["input_ids"][:2],
        "attention_mask": tiny_inputs["attention_mask"][:2],
    }
    grads = []
    for checkpointing in (False, True):
        if checkpointing:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            assert model.vision_model.is_activation_checkpointing
        model.zero_grad()
        model(**inputs, return_loss=True).loss.backward()
        grads.append({name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 20
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-6), name


@pytest.mark.parametrize(("preset", "vision_m", "text_m"), [("eva02at-b", 86, 63), ("eva02at-l", 304, 124)])
def test_preset_parameter_counts_match_table_iii(preset: str, vision_m: int, text_m: int) -> None:
    config = EVA02ATConfig.from_preset(preset)
    with torch.device("meta"):
        model = EVA02ATForVideoTextRetrieval(config)
    vision = sum(p.numel() for p in model.vision_model.parameters()) + sum(
        p.numel() for p in model.visual_projection.parameters()
    )
    text = sum(p.numel() for p in model.text_model.parameters()) + model.text_projection.weight.numel()
    assert abs(vision / 1e6 - vision_m) < 1.0, vision
    assert abs(text / 1e6 - text_m) < 1.0, text


def test_presets_match_timm_and_open_clip_hyper_parameters() -> None:
    import open_clip
    import timm

    for preset, timm_name, clip_name in (
        ("eva02at-b", "eva02_base_patch16_clip_224", "EVA02-B-16"),
        ("eva02at-l", "eva02_large_patch14_clip_224", "EVA02-L-14"),
    ):
        config = EVA02ATConfig.from_preset(preset)
        with torch.device("meta"):
            reference = timm.create_model(timm_name, pretrained=False)
        vision = config.vision_config
        assert reference.embed_dim == vision.hidden_size and len(reference.blocks) == vision.num_hidden_layers
        assert reference.blocks[0].attn.num_heads == vision.num_attention_heads
        assert reference.blocks[0].mlp.fc1_g.out_features == vision.intermediate_size
        assert reference.patch_embed.patch_size == (vision.patch_size,) * 2
        assert list(reference.rope.ref_feat_shape) == [vision.rope_reference_grid_size] * 2
        text_cfg = open_clip.get_model_config(clip_name)["text_cfg"]
        text = config.text_config
        assert (text_cfg["width"], text_cfg["heads"], text_cfg["layers"]) == (
            text.hidden_size,
            text.num_attention_heads,
            text.num_hidden_layers,
        )
        assert (text_cfg["context_length"], text_cfg["vocab_size"]) == (
            text.max_position_embeddings,
            text.vocab_size,
        )


def test_weights_missing_from_a_checkpoint_get_a_new_models_initialisation(
    tiny_model, tmp_path: Path
) -> None:
    """Text-tower weights absent from a checkpoint get CLIP's initialisation, as in a freshly built model, not the
    vision tower's std 0.02. Text width 64, 2 layers: q_proj std 64^-0.5 * (2 * 2)^-0.5 = 0.0625, fc1 std
    (2 * 64)^-0.5 = 0.0884, token embedding std 0.02."""
    tiny_model.save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    save_file(
        {k: v for k, v in weights.items() if not k.startswith("text_model.")}, tmp_path / "model.safetensors"
    )
    torch.manual_seed(1)
    loaded = EVA02ATForVideoTextRetrieval.from_pretrained(tmp_path)
    layer = loaded.text_model.encoder.layers[0]
    assert layer.self_attn.q_proj.weight.std().item() == pytest.approx(0.0625, rel=0.05)
    assert layer.mlp.fc1.weight.std().item() == pytest.approx(2**-3.5, rel=0.05)
    assert loaded.text_model.embeddings.token_embedding.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert torch.equal(
        loaded.visual_projection.weight, tiny_model.visual_projection.weight
    )  # loaded as saved


def test_return_dict_false_as_argument_and_config(tiny_model, tiny_inputs) -> None:
    with torch.no_grad():
        expected = tiny_model(**tiny_inputs)
        as_tuple = tiny_model(**tiny_inputs, return_dict=False)
        video_tuple = tiny_model.get_video_features(tiny_inputs["pixel_values"], return_dict=False)
        tiny_model.config.return_dict = False
        from_config = tiny_model(**tiny_inputs)
    tiny_model.config.return_dict = True
    for outputs in (as_tuple, from_config):
        assert isinstance(outputs, tuple)
        torch.testing.assert_close(outputs[0], expected.logits_per_video)  # loss is None, so left out
    assert isinstance(video_tuple, tuple)
    torch.testing.assert_close(video_tuple[1], expected.vision_model_output.pooler_output)  # projected
