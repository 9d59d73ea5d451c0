"""Fast paths of the vision tower: low-precision autocast against float32, torch.compile without graph breaks,
activation checkpointing, and the activation-memory estimate against the tensors autograd actually saves."""

import pytest
import torch

from eva02at_hf import EVA02ATConfig, EVA02ATVisionConfig
from eva02at_hf.modeling_eva02at import EVA02ATVisionModel
from eva02at_hf.rope import apply_rope, prepend_identity_rotation
from eva02at_hf.utils.memory import estimate_activation_memory


def _tiny() -> EVA02ATVisionConfig:
    return EVA02ATConfig.from_preset("eva02at-tiny").vision_config


def _b_width_shallow() -> EVA02ATVisionConfig:
    # EVA02-B's width, heads and MLP, 2 layers at 64 px: the B-size matmuls at a CPU-friendly cost.
    return EVA02ATVisionConfig(num_hidden_layers=2, image_size=64, num_frames=4)


def _model(config: EVA02ATVisionConfig) -> EVA02ATVisionModel:
    torch.manual_seed(0)
    model = EVA02ATVisionModel(config).eval()
    with torch.no_grad():
        model.embeddings.temporal_embedding.normal_(std=0.02)
    return model


def _clips(config: EVA02ATVisionConfig, batch_size: int = 2, num_frames: int = 4) -> torch.Tensor:
    shape = (batch_size, num_frames, 3, config.image_size, config.image_size)
    return torch.randn(shape, generator=torch.Generator().manual_seed(0))


def test_identity_rotation_leaves_the_cls_row_unchanged() -> None:
    sincos = torch.cat([torch.full((3, 4), 0.6), torch.full((3, 4), 0.8)], dim=-1)
    table = prepend_identity_rotation(sincos)
    assert table.shape == (4, 8)
    assert torch.equal(table[0], torch.tensor([0.0, 0, 0, 0, 1, 1, 1, 1]))
    x = torch.randn(2, 4, 4)
    rotated = apply_rope(x, table)
    assert torch.equal(rotated[:, 0], x[:, 0])
    assert torch.equal(rotated[:, 1:], apply_rope(x[:, 1:], sincos))


# bf16 keeps 8 mantissa bits (relative rounding 2^-8 = 0.4%); fp16 keeps 11. After a few residual blocks the
# error compounds, so features are compared by relative error and cosine similarity to the float32 forward.
@pytest.mark.parametrize(
    ("config_fn", "dtype", "max_relative_error", "min_cosine"),
    [
        (_tiny, torch.bfloat16, 0.03, 0.999),
        (_b_width_shallow, torch.bfloat16, 0.03, 0.999),
        (_b_width_shallow, torch.float16, 0.005, 0.99999),
    ],
)
@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_autocast_matches_float32(
    config_fn, dtype: torch.dtype, max_relative_error: float, min_cosine: float, attn_implementation: str
) -> None:
    config = config_fn()
    model = _model(config)
    model.set_attn_implementation(attn_implementation)
    pixel_values = _clips(config)
    with torch.no_grad():
        reference = model(pixel_values=pixel_values).last_hidden_state
        with torch.autocast("cpu", dtype=dtype):
            low = model(pixel_values=pixel_values).last_hidden_state
    assert reference.dtype == torch.float32
    error = (low.float() - reference).norm(dim=-1) / reference.norm(dim=-1)
    assert error.max() < max_relative_error
    cosine = torch.nn.functional.cosine_similarity(low.float(), reference, dim=-1)
    assert cosine.min() > min_cosine


def test_compiled_vision_tower_has_no_graph_breaks_and_matches_eager() -> None:
    config = _tiny()
    model = _model(config)
    pixel_values = _clips(config, num_frames=8)
    explanation = torch._dynamo.explain(model)(pixel_values=pixel_values)
    assert explanation.graph_break_count == 0
    assert explanation.graph_count == 1
    compiled = torch.compile(model, backend="aot_eager")
    with torch.no_grad():
        expected = model(pixel_values=pixel_values).pooler_output
        assert torch.allclose(compiled(pixel_values=pixel_values).pooler_output, expected, atol=1e-5)


def _saved_activation_bytes(model: EVA02ATVisionModel, pixel_values: torch.Tensor) -> int:
    """Bytes of the distinct non-parameter storages autograd keeps for backward during one forward."""
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(pixel_values=pixel_values)
    return sum(nbytes for pointer, nbytes in saved.items() if pointer not in parameters)


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
@pytest.mark.parametrize("config_fn", [_tiny, _b_width_shallow])
def test_activation_estimate_matches_saved_tensors_in_float32(config_fn, attn_implementation: str) -> None:
    config = config_fn()
    model = _model(config).train()
    model.set_attn_implementation(attn_implementation)
    measured = _saved_activation_bytes(model, _clips(config, batch_size=2, num_frames=3))
    estimate = estimate_activation_memory(
        config, num_frames=3, batch_size=2, attn_implementation=attn_implementation
    )
    assert estimate == measured


def test_activation_estimate_in_bfloat16_within_one_percent() -> None:
    config = _tiny()
    model = _model(config).train().to(torch.bfloat16)
    measured = _saved_activation_bytes(model, _clips(config, num_frames=3).to(torch.bfloat16))
    estimate = estimate_activation_memory(config, num_frames=3, batch_size=2, dtype=torch.bfloat16)
    assert abs(estimate - measured) / measured < 0.01


def test_activation_estimate_scaling() -> None:
    config = EVA02ATConfig.from_preset("eva02at-b").vision_config
    one, sixteen = (estimate_activation_memory(config, frames) for frames in (1, 16))
    # SDPA state is linear in L = 1 + 196 T: 16 frames hold (1 + 3136) / (1 + 196) ~ 15.9x one frame.
    assert 15.5 < sixteen / one < 16.0
    eager = estimate_activation_memory(config, 16, attn_implementation="eager")
    # Eager adds the float32 probabilities: 12 layers x 12 heads x 3137^2 x 4 bytes.
    assert eager - sixteen == 12 * 12 * 3137 * (3137 - 1) * 4
    checkpointed = estimate_activation_memory(config, 16, gradient_checkpointing=True)
    assert checkpointed < sixteen / 3
    with pytest.raises(ValueError, match="attn_implementation"):
        estimate_activation_memory(config, 16, attn_implementation="flash")
    assert estimate_activation_memory(EVA02ATConfig.from_preset("eva02at-b"), 16) == sixteen  # full config


def test_activation_checkpointing_recomputes_and_gives_the_same_gradients() -> None:
    config = _b_width_shallow()
    model = _model(config).train()
    pixel_values = _clips(config)

    def gradients() -> tuple[dict[str, torch.Tensor], int]:
        model.zero_grad(set_to_none=True)
        saved = _saved_activation_bytes(model, pixel_values)
        model(pixel_values=pixel_values).pooler_output.pow(2).mean().backward()
        return {name: p.grad.clone() for name, p in model.named_parameters()}, saved

    reference, saved_plain = gradients()
    model.activation_checkpointing_enable({"use_reentrant": False})
    checkpointed, saved_checkpointed = gradients()
    assert model.is_activation_checkpointing
    for name, grad in reference.items():
        assert torch.allclose(checkpointed[name], grad, atol=1e-6, rtol=1e-4), name
    # Only each layer's input is kept through the forward: far less than the full activations.
    assert saved_checkpointed < saved_plain / 3
