"""Properties of the spatial-temporal RoPE (Eqs. 8-10), checked on the rotation itself."""

import pytest
import torch
from timm.layers import RotaryEmbeddingCat

from eva02at_hf import EVA02ATConfig, EVA02ATVisionConfig, EVA02ATVisionModel, modeling_eva02at
from eva02at_hf.modeling_eva02at import EVA02ATRotaryEmbedding
from eva02at_hf.rope import (
    angles_to_sincos,
    apply_rope,
    rope_frequencies,
    spatial_rope_angles,
    spatial_temporal_rope_angles,
    split_3d_rope_angles,
    temporal_rope_angles,
)


def test_hand_computed_angles() -> None:
    # head_dim 4: one spatial band per axis (frequency 1), two temporal pairs (frequencies 1 and 1/100).
    assert torch.allclose(rope_frequencies(2, 10000.0), torch.tensor([1.0, 0.01]))
    spatial = spatial_rope_angles((2, 2), head_dim=4)
    assert torch.equal(spatial, torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]))
    temporal = temporal_rope_angles(torch.arange(2), head_dim=4)
    combined = spatial_temporal_rope_angles(spatial, temporal)
    # Frame 1, patch (row 1, col 0): [row + t, col + t / 100].
    assert torch.allclose(combined[4 + 2], torch.tensor([2.0, 0.01]))
    sincos = angles_to_sincos(torch.tensor([[0.5, 2.0]]))
    expected = torch.tensor([[0.5, 0.5, 2.0, 2.0]])
    assert torch.allclose(sincos, torch.cat([expected.sin(), expected.cos()], dim=-1))


def test_rotation_of_a_pair_by_hand() -> None:
    angle = torch.tensor([[torch.pi / 2, 0.0]])
    x = torch.tensor([[1.0, 0.0, 3.0, 4.0]])
    # First pair rotated by 90 degrees: (1, 0) -> (0, 1); second pair unchanged.
    assert torch.allclose(
        apply_rope(x, angles_to_sincos(angle)), torch.tensor([[0.0, 1.0, 3.0, 4.0]]), atol=1e-6
    )


@pytest.mark.parametrize(("grid", "reference"), [((14, 14), 16), ((16, 16), 16), ((7, 9), 16)])
def test_single_frame_equals_timm_image_rope(grid: tuple[int, int], reference: int) -> None:
    timm_rope = RotaryEmbeddingCat(
        dim=64, in_pixels=False, feat_shape=list(grid), ref_feat_shape=[reference] * 2
    )
    config = EVA02ATVisionConfig(hidden_size=768, num_attention_heads=12, rope_reference_grid_size=reference)
    ours = EVA02ATRotaryEmbedding(config)(1, grid, torch.device("cpu"))
    # Row 0 is the CLS token's identity rotation (sin 0, cos 1), as EVA02 leaves the CLS token unrotated.
    assert torch.equal(ours[0], torch.cat([torch.zeros(64), torch.ones(64)]))
    assert torch.allclose(ours[1:], timm_rope.get_embed(), atol=1e-6)
    # Frame 0 of a longer clip also carries exactly the image rotation (t = 0).
    clip = EVA02ATRotaryEmbedding(config)(4, grid, torch.device("cpu"))
    assert torch.allclose(clip[1 : 1 + grid[0] * grid[1]], timm_rope.get_embed(), atol=1e-6)


def _scores(angles: torch.Tensor, head_dim: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, head_dim, generator=generator, dtype=torch.float64)
    sincos = angles_to_sincos(angles.double())
    rotated_q = apply_rope(q.expand(angles.shape[0], -1), sincos)
    rotated_k = apply_rope(k.expand(angles.shape[0], -1), sincos)
    return rotated_q @ rotated_k.t()


@pytest.mark.parametrize(
    ("use_temporal_embedding", "temporal_rope"),
    [(False, "additive"), (True, "additive"), (False, "split_3d")],
)
def test_scores_depend_only_on_relative_position(use_temporal_embedding: bool, temporal_rope: str) -> None:
    frames, height, width, head_dim = 3, 4, 5, 32
    config = EVA02ATVisionConfig(
        hidden_size=64,
        num_attention_heads=2,
        num_frames=frames,
        rope_reference_grid_size=height,
        use_temporal_embedding=use_temporal_embedding,
        temporal_rope=temporal_rope,
        image_size=64,
        patch_size=16,
    )
    rope = EVA02ATRotaryEmbedding(config)
    scores = _scores(rope.angles(frames, (height, width)), head_dim).reshape(
        frames, height, width, frames, height, width
    )
    # Shift both query and key by (dt, dy, dx) = (1, 1, 2): every score is unchanged (float32 angles).
    shifted = scores[1:, 1:, 2:, 1:, 1:, 2:]
    original = scores[:-1, :-1, :-2, :-1, :-1, :-2]
    assert torch.allclose(shifted, original, atol=1e-5)
    # Scores do change with the offset itself (the encoding is not trivial).
    assert not torch.allclose(scores[0, 0, 0, 1, 0, 0], scores[0, 0, 0, 0, 0, 0])


def test_every_rotary_pair_receives_a_temporal_angle() -> None:
    config = EVA02ATVisionConfig(hidden_size=768, num_attention_heads=12)
    angles = EVA02ATRotaryEmbedding(config).angles(2, (14, 14))
    temporal_step = angles[196:] - angles[:196]
    assert temporal_step.shape[-1] == 32
    assert (temporal_step.abs() > 0).all()
    expected = 10000.0 ** (-torch.arange(32) / 32)
    assert torch.allclose(temporal_step, expected.expand_as(temporal_step), atol=1e-5)
    # The CogVideoX baseline, by contrast, gives time only a quarter of the pairs.
    split = split_3d_rope_angles(2, (14, 14), head_dim=64)
    assert int(((split[196:] - split[:196]).abs() > 0).any(0).sum()) == 8


def test_learnable_only_has_no_temporal_rotation_and_rescaled_positions() -> None:
    learnable = EVA02ATRotaryEmbedding(EVA02ATVisionConfig(temporal_rope="none"))
    angles = learnable.angles(3, (14, 14))
    assert torch.equal(angles[:196], angles[392:])
    rescaled = EVA02ATRotaryEmbedding(EVA02ATVisionConfig(num_frames=16, temporal_rope_positions="rescaled"))
    index = EVA02ATRotaryEmbedding(EVA02ATVisionConfig(num_frames=16))
    # 8 frames rescaled to a 16-frame reference: frame 1 sits at t = 2 of the index scheme.
    assert torch.allclose(rescaled.angles(8, (14, 14))[196:392], index.angles(3, (14, 14))[392:588])


def test_rope_table_is_cached_per_shape() -> None:
    rope = EVA02ATRotaryEmbedding(EVA02ATVisionConfig())
    first = rope(4, (14, 14), torch.device("cpu"))
    assert rope(4, (14, 14), torch.device("cpu")) is first
    assert rope(8, (14, 14), torch.device("cpu")).shape == (1 + 8 * 196, 128)


def test_rope_keeps_float32_angles_for_bf16_activations() -> None:
    sincos = angles_to_sincos(
        spatial_temporal_rope_angles(
            spatial_rope_angles((4, 4), 64), temporal_rope_angles(torch.arange(16), 64)
        )
    )
    x = torch.randn(2, sincos.shape[0], 64)
    reference = apply_rope(x, sincos)
    low = apply_rope(x.bfloat16(), sincos)
    assert low.dtype == torch.bfloat16
    # Only the input/output rounding of bf16 remains (relative error ~ 2^-8), not angle error.
    assert torch.allclose(low.float(), reference, atol=0.05, rtol=0.02)


def _tiny_vision_model(temporal_rope: str) -> EVA02ATVisionModel:
    torch.manual_seed(0)
    config = EVA02ATConfig.from_preset(
        "eva02at-tiny",
        vision_config={"temporal_rope": temporal_rope, "temporal_embedding_init": "trunc_normal"},
    ).vision_config
    return EVA02ATVisionModel(config).eval()


def test_no_temporal_rope_is_timms_image_rope_on_every_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _tiny_vision_model("none")

    def no_temporal_angles(*args, **kwargs):
        raise AssertionError("temporal RoPE angles computed for temporal_rope='none'")

    monkeypatch.setattr(modeling_eva02at, "temporal_rope_angles", no_temporal_angles)
    frames, grid = 3, (4, 4)
    table = model.rotary_embedding(frames, grid, torch.device("cpu"))
    timm_image = RotaryEmbeddingCat(
        dim=32, in_pixels=False, feat_shape=list(grid), ref_feat_shape=[4, 4]
    ).get_embed()
    identity = torch.cat([torch.zeros(32), torch.ones(32)])[None]
    assert torch.allclose(table, torch.cat([identity, *[timm_image] * frames]), atol=1e-6)
    with torch.no_grad():
        model(pixel_values=torch.randn(1, frames, 3, 32, 32))
    # The patch is live: the additive RoPE does go through it.
    with pytest.raises(AssertionError, match="temporal RoPE angles computed"):
        _tiny_vision_model("additive")(pixel_values=torch.randn(1, frames, 3, 32, 32))


@pytest.mark.parametrize(("temporal_rope", "frame_order_invariant"), [("none", True), ("additive", False)])
def test_without_temporal_rope_frames_are_ordered_by_the_temporal_embedding_alone(
    temporal_rope: str, frame_order_invariant: bool
) -> None:
    """Joint attention is permutation-equivariant over tokens, so with no temporal rotation, reordering the frames
    together with the rows of P_t leaves the CLS output unchanged; a temporal rotation breaks that."""
    model = _tiny_vision_model(temporal_rope)
    clip = torch.randn(2, 8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    order = torch.tensor([3, 0, 7, 1, 6, 2, 5, 4])
    permuted = _tiny_vision_model(temporal_rope)
    with torch.no_grad():
        permuted.embeddings.temporal_embedding.copy_(model.embeddings.temporal_embedding[:, order])
        base = model(pixel_values=clip).pooler_output
        reordered = permuted(pixel_values=clip[:, order]).pooler_output
    assert torch.allclose(base, reordered, atol=1e-5) == frame_order_invariant
