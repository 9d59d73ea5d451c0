"""LoRA through peft: which layers get adapters, that the adapted model starts as the base model, gradient flow,
and adapters that save, load (peft and transformers) and merge into W + (alpha / r) B A.
The fine-tuning run with `--lora_r` is in tests/test_examples_e2e.py."""

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file

from eva02at_hf import EVA02ATForVideoTextRetrieval
from eva02at_hf.training import LORA_TARGET_MODULES, add_lora, merged_copy


def outputs(model, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        out = model(**inputs)
    return out.video_embeds, out.text_embeds


def randomise_adapters(model: PeftModel) -> None:
    """B starts at zero (a no-op adapter): give it values so that merging has something to merge."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)


def test_adapters_cover_attention_and_mlp_projections_of_both_towers(tiny_model, tiny_inputs) -> None:
    config = tiny_model.config
    base_outputs = outputs(tiny_model, tiny_inputs)
    model = add_lora(tiny_model, r=4)
    # Hand count, r (in + out) per adapted layer: vision q, k, v, out (D -> D), gate, up (D -> F), down (F -> D);
    # text q, k, v, out (d -> d), fc1 (d -> f), fc2 (f -> d).
    vision, text = config.vision_config, config.text_config
    hidden, inner = vision.hidden_size, vision.intermediate_size
    per_vision_layer = 4 * 4 * (2 * hidden) + 3 * 4 * (hidden + inner)
    per_text_layer = 4 * 4 * (2 * text.hidden_size) + 2 * 4 * (text.hidden_size + text.intermediate_size)
    expected = vision.num_hidden_layers * per_vision_layer + text.num_hidden_layers * per_text_layer
    trainable = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    assert sum(trainable.values()) == expected == model.get_nb_trainable_parameters()[0]
    assert all(".lora_A." in n or ".lora_B." in n for n in trainable)
    adapted = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in trainable}
    assert adapted == set(LORA_TARGET_MODULES)
    # B = 0 at initialisation: the adapted model is the base model.
    for got, want in zip(outputs(model.eval(), tiny_inputs), base_outputs, strict=True):
        torch.testing.assert_close(got, want, atol=0, rtol=0)


def test_gradients_reach_only_the_adapters_with_and_without_checkpointing(tiny_model, tiny_inputs) -> None:
    model = add_lora(tiny_model, r=2, target_modules=["q_proj", "fc1"]).train()
    randomise_adapters(model)
    pairs = {name: value[:2] for name, value in tiny_inputs.items()}  # one caption per clip
    losses, grads = [], []
    for checkpointing in (False, True):
        if checkpointing:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        model.zero_grad(set_to_none=True)
        out = model(**pairs, return_loss=True)
        out.loss.backward()
        losses.append(out.loss.detach())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert set(grads[0]) == {n for n, p in model.named_parameters() if p.requires_grad}
    assert all(("q_proj.lora_" in n or "fc1.lora_" in n) and g.abs().sum() > 0 for n, g in grads[0].items())
    torch.testing.assert_close(losses[1], losses[0])
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-6, rtol=1e-5)


def test_unknown_target_module_is_named(tiny_model) -> None:
    with pytest.raises(ValueError, match=r"\['qkv'\] name no layer"):
        add_lora(tiny_model, r=4, target_modules=["q_proj", "qkv"])


def test_adapters_save_load_and_merge(tiny_model, tiny_inputs, tmp_path) -> None:
    tiny_model.save_pretrained(tmp_path / "base")
    model = add_lora(tiny_model, r=4, alpha=12).eval()
    randomise_adapters(model)
    adapted = outputs(model, tiny_inputs)
    model.save_pretrained(tmp_path / "adapter")

    base = EVA02ATForVideoTextRetrieval.from_pretrained(tmp_path / "base").eval()
    assert outputs(base, tiny_inputs)[0].sub(adapted[0]).abs().max() > 1e-3  # the adapters change the model
    for loaded in (
        PeftModel.from_pretrained(
            EVA02ATForVideoTextRetrieval.from_pretrained(tmp_path / "base"), tmp_path / "adapter"
        ),
        EVA02ATForVideoTextRetrieval.from_pretrained(tmp_path / "base"),
    ):
        if not isinstance(loaded, PeftModel):
            loaded.load_adapter(str(tmp_path / "adapter"))  # transformers' own PEFT integration
        for got, want in zip(outputs(loaded.eval(), tiny_inputs), adapted, strict=True):
            torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)

    merged = merged_copy(model)
    assert type(merged) is EVA02ATForVideoTextRetrieval
    assert not any("lora" in name for name, _ in merged.named_parameters())
    assert any("lora" in name for name, _ in model.named_parameters())  # the adapter model is left as it was
    for got, want in zip(outputs(merged, tiny_inputs), adapted, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    # The merge is W + (alpha / r) B A, from the saved adapter's tensors.
    adapter = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    layer = "vision_model.layers.1.mlp.down_proj"
    lora_a, lora_b = (adapter[f"base_model.model.{layer}.lora_{x}.weight"] for x in "AB")
    expected = base.get_submodule(layer).weight + 12 / 4 * lora_b @ lora_a
    torch.testing.assert_close(merged.get_submodule(layer).weight, expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(merged.visual_projection.weight, base.visual_projection.weight, atol=0, rtol=0)
