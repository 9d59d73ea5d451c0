"""The vision config's temporal fields, and configs saved with the older single `temporal_position_encoding` string."""

import json
import re
from pathlib import Path

import pytest
import timm
import torch
from huggingface_hub.errors import StrictDataclassClassValidationError
from safetensors.torch import save_file
from transformers import AutoModel

from eva02at_hf import EVA02ATConfig, EVA02ATForVideoTextRetrieval, EVA02ATVisionConfig, EVA02ATVisionModel
from eva02at_hf.apps.cli import EXIT_OK, EXIT_USAGE, main

# Each legacy value and the (use_temporal_embedding, temporal_rope) pair it stands for (the paper's Table IV rows
# and the CogVideoX baseline), written out by hand.
LEGACY = [
    ("learnable+rope", True, "additive"),
    ("learnable", True, "none"),
    ("rope", False, "additive"),
    ("split_3d_rope", False, "split_3d"),
]


def _all_keys(node) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {key for value in node.values() for key in _all_keys(value)}
    return set()


def test_defaults_are_the_papers_learnable_plus_additive_rope() -> None:
    config = EVA02ATVisionConfig()
    assert (config.use_temporal_embedding, config.temporal_rope) == (True, "additive")


@pytest.mark.parametrize(("legacy", "use_temporal_embedding", "temporal_rope"), LEGACY)
def test_legacy_keyword_maps_to_the_two_fields(
    legacy: str, use_temporal_embedding: bool, temporal_rope: str
) -> None:
    direct = EVA02ATVisionConfig(temporal_position_encoding=legacy)
    nested = EVA02ATConfig.from_preset("eva02at-tiny", vision_config={"temporal_position_encoding": legacy})
    for config in (direct, nested.vision_config):
        assert (config.use_temporal_embedding, config.temporal_rope) == (
            use_temporal_embedding,
            temporal_rope,
        )
    assert "temporal_position_encoding" not in _all_keys(nested.to_dict())
    # Repeating what the legacy value says is not a contradiction.
    agreeing = EVA02ATVisionConfig(
        temporal_position_encoding=legacy,
        use_temporal_embedding=use_temporal_embedding,
        temporal_rope=temporal_rope,
    )
    assert agreeing.to_dict() == direct.to_dict()


@pytest.mark.parametrize(("legacy", "use_temporal_embedding", "temporal_rope"), LEGACY)
def test_old_config_json_loads_and_saves_without_the_old_key(
    tmp_path: Path, legacy: str, use_temporal_embedding: bool, temporal_rope: str
) -> None:
    old = {"model_type": "eva02at_vision_model", "hidden_size": 64, "num_attention_heads": 2}
    old["temporal_position_encoding"] = legacy
    (tmp_path / "config.json").write_text(json.dumps(old))
    config = EVA02ATVisionConfig.from_pretrained(tmp_path)
    assert (config.use_temporal_embedding, config.temporal_rope) == (use_temporal_embedding, temporal_rope)
    config.save_pretrained(tmp_path / "resaved")
    saved = json.loads((tmp_path / "resaved" / "config.json").read_text())
    assert "temporal_position_encoding" not in saved
    assert (saved["use_temporal_embedding"], saved["temporal_rope"]) == (
        use_temporal_embedding,
        temporal_rope,
    )


def test_old_model_folder_loads_through_automodel(tmp_path: Path, tiny_inputs) -> None:
    """A model saved before the split: same weights, same outputs, and saving it again writes the new fields."""
    config = EVA02ATConfig.from_preset("eva02at-tiny", vision_config={"temporal_rope": "none"})
    torch.manual_seed(0)
    model = EVA02ATForVideoTextRetrieval(config).eval()
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    vision = saved["vision_config"]
    vision.pop("use_temporal_embedding", None)
    vision.pop("temporal_rope")
    vision["temporal_position_encoding"] = "learnable"
    (tmp_path / "config.json").write_text(json.dumps(saved))

    reloaded = AutoModel.from_pretrained(tmp_path).eval()
    assert reloaded.config.vision_config.temporal_rope == "none"
    with torch.no_grad():
        expected = model.get_video_features(tiny_inputs["pixel_values"]).pooler_output
        actual = reloaded.get_video_features(tiny_inputs["pixel_values"]).pooler_output
    assert torch.equal(expected, actual)
    reloaded.save_pretrained(tmp_path / "resaved")
    assert "temporal_position_encoding" not in _all_keys(
        json.loads((tmp_path / "resaved" / "config.json").read_text())
    )


@pytest.mark.parametrize(
    ("legacy", "contradiction"),
    [
        ("rope", {"use_temporal_embedding": True}),
        ("learnable", {"temporal_rope": "additive"}),
        ("learnable+rope", {"use_temporal_embedding": False, "temporal_rope": "additive"}),
        ("split_3d_rope", {"temporal_rope": "none"}),
    ],
)
def test_legacy_key_contradicted_by_a_new_field_is_an_error(legacy: str, contradiction: dict) -> None:
    with pytest.raises(ValueError, match=rf"temporal_position_encoding='{re.escape(legacy)}'.*contradicts"):
        EVA02ATVisionConfig(temporal_position_encoding=legacy, **contradiction)
    with pytest.raises(ValueError, match="contradicts"):
        EVA02ATConfig.from_preset(
            "eva02at-tiny", vision_config={"temporal_position_encoding": legacy, **contradiction}
        )


def test_assigning_the_legacy_attribute_sets_the_fields_and_reading_it_is_an_error() -> None:
    config = EVA02ATVisionConfig(hidden_size=64, num_attention_heads=2, num_hidden_layers=1)
    config.temporal_position_encoding = "rope"
    assert (config.use_temporal_embedding, config.temporal_rope) == (False, "additive")
    assert EVA02ATVisionModel(config).embeddings.temporal_embedding is None
    with pytest.raises(AttributeError, match="use_temporal_embedding and temporal_rope"):
        config.temporal_position_encoding  # noqa: B018
    with pytest.raises(ValueError, match="temporal_position_encoding='rope3d'"):
        config.temporal_position_encoding = "rope3d"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("temporal_rope", "additive_3d", "temporal_rope='additive_3d' is not one of"),
        ("use_temporal_embedding", "yes", "use_temporal_embedding must be True or False"),
    ],
)
def test_bad_temporal_field_values_name_the_field(field: str, value, message: str) -> None:
    with pytest.raises(StrictDataclassClassValidationError, match=message):
        EVA02ATVisionConfig(**{field: value})


def test_split_3d_needs_a_head_dimension_divisible_by_16() -> None:
    with pytest.raises(
        StrictDataclassClassValidationError, match="temporal_rope='split_3d' needs a head dimension"
    ):
        EVA02ATVisionConfig(hidden_size=96, num_attention_heads=4, temporal_rope="split_3d")  # head_dim 24


@pytest.mark.parametrize("field", ["use_temporal_embedding", "temporal_rope"])
def test_vit_tower_rejects_the_temporal_fields(field: str) -> None:
    with pytest.raises(ValueError, match=rf"\['{field}'\] configure the EVA02-AT tower"):
        EVA02ATConfig.from_preset("vit-tiny", vision_config={field: EVA02ATVisionConfig().to_dict()[field]})


@pytest.fixture(scope="module")
def eva02_clip_checkpoint(tmp_path_factory) -> Path:
    """A 1-layer, 64-wide timm EVA02-CLIP vision tower and open_clip text tower (one head each), in safetensors."""
    from open_clip.transformer import TextTransformer

    torch.manual_seed(0)
    vision = timm.create_model(
        "eva02_base_patch16_clip_224", depth=1, embed_dim=64, num_heads=1, img_size=32, num_classes=16
    )
    text = TextTransformer(width=64, heads=1, layers=1, output_dim=16)
    state = {**vision.state_dict(), **text.state_dict(), "logit_scale": torch.tensor(4.6)}
    path = tmp_path_factory.mktemp("checkpoint") / "clip.safetensors"
    save_file({key: value.contiguous() for key, value in state.items() if key != "attn_mask"}, str(path))
    return path


def _convert(checkpoint: Path, output_dir: Path, *flags: str) -> int:
    heads = ["--num_heads", "1", "--text_num_heads", "1", "--no-processor"]
    return main(["convert", "--checkpoint", str(checkpoint), "--output_dir", str(output_dir), *heads, *flags])


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ([], (True, "additive")),
        (["--no-temporal_embedding", "--temporal_rope", "split_3d"], (False, "split_3d")),
        (["--temporal_rope", "none"], (True, "none")),
        (["--temporal_position_encoding", "rope"], (False, "additive")),
    ],
)
def test_convert_flags_set_the_temporal_fields(
    eva02_clip_checkpoint: Path, tmp_path: Path, flags: list[str], expected: tuple[bool, str]
) -> None:
    assert _convert(eva02_clip_checkpoint, tmp_path / "out", *flags) == EXIT_OK
    vision = json.loads((tmp_path / "out" / "config.json").read_text())["vision_config"]
    assert "temporal_position_encoding" not in vision
    assert (vision.get("use_temporal_embedding", True), vision.get("temporal_rope", "additive")) == expected


def test_contradicting_convert_flags_are_a_usage_error(eva02_clip_checkpoint: Path, tmp_path: Path) -> None:
    flags = ["--temporal_position_encoding", "rope", "--temporal_embedding"]
    assert _convert(eva02_clip_checkpoint, tmp_path / "out", *flags) == EXIT_USAGE
    assert not (tmp_path / "out").exists()


def test_unused_fields_are_gone() -> None:
    assert "initializer_factor" not in EVA02ATConfig().to_dict()
