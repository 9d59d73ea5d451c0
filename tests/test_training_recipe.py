"""The authors' training recipe: train-time crops, initialisation options, precision, recipe record, --help."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import datasets
import numpy as np
import pytest
import torch
from huggingface_hub.errors import StrictDataclassClassValidationError
from safetensors.torch import load_file, save_file

from eva02at_hf import EVA02ATConfig, EVA02ATForVideoTextRetrieval
from eva02at_hf.data import synthetic
from eva02at_hf.training import (
    ClipTextDataset,
    TrainingCollator,
    TrainingLoopConfig,
    build_accelerator,
    load_model_and_processor,
    resolve_mixed_precision,
    resolve_recipe,
    save_recipe,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def static_clip(tmp_path_factory: pytest.TempPathFactory) -> datasets.Dataset:
    """One 1 s clip of a still 48 x 64 colour gradient: every frame is the same image, so two outputs of a clip
    differ only by their crop."""
    path = tmp_path_factory.mktemp("static") / "still.mp4"
    y, x = np.mgrid[0:48, 0:64]
    image = np.stack([x * 4, y * 5, (x + y) * 2], axis=-1).astype(np.uint8)
    synthetic.write_video(str(path), np.repeat(image[None], 10, axis=0), fps=10)
    row = {"video_paths": [str(path)], "chunk_starts": [0.0], "start": 0.0, "stop": 0.95, "narration": "x"}
    return datasets.Dataset.from_list([row])


def _pixels(collator: TrainingCollator, dataset: ClipTextDataset, epoch: int) -> torch.Tensor:
    dataset.set_epoch(epoch)
    return collator([dataset[0]])["pixel_values"][0]


def test_train_crops_change_every_epoch_and_evaluation_is_deterministic(
    static_clip: datasets.Dataset,
) -> None:
    _, processor = load_model_and_processor(None, num_frames=3)
    dataset = ClipTextDataset(static_clip, ["x"], np.array([0]), seed=0)
    train = TrainingCollator(processor, 3, "segment_random", crop_scale=(0.5, 1.0))
    first, second = _pixels(train, dataset, 0), _pixels(train, dataset, 1)
    assert first.shape == (3, 3, 32, 32)
    assert (first - second).abs().max() > 0.1  # another epoch, another crop
    torch.testing.assert_close(
        _pixels(train, dataset, 0), first
    )  # the crop is a function of (seed, epoch, clip)
    for frames in (first, second):  # one box for all frames of a clip: the still frames stay equal
        torch.testing.assert_close(frames[1:], frames[:1].expand_as(frames[1:]), atol=0.05, rtol=0)

    evaluation = TrainingCollator(processor, 3)
    reference = _pixels(evaluation, dataset, 0)
    torch.testing.assert_close(_pixels(evaluation, dataset, 1), reference, atol=0, rtol=0)
    # resize + centre crop keeps the middle of the frame; a crop of at most the whole frame never equals it exactly
    assert (reference - first).abs().max() > 0.1 and (reference - second).abs().max() > 0.1
    no_crop = TrainingCollator(processor, 3, "segment_random")
    torch.testing.assert_close(_pixels(no_crop, dataset, 1), reference, atol=0.05, rtol=0)


def test_crop_scale_is_validated_and_can_be_switched_off() -> None:
    assert TrainingLoopConfig(output_dir="o").train_crop_scale == (0.5, 1.0)
    assert TrainingLoopConfig(output_dir="o", random_resized_crop=False).train_crop_scale is None
    for bad in ([0.6, 0.5], [0.5], [0.0, 1.0], [0.5, 1.5]):
        with pytest.raises(ValueError, match="--crop_scale"):
            TrainingLoopConfig(output_dir="o", crop_scale=bad)


def test_mixed_precision_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_mixed_precision("fp16") == "fp16"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_mixed_precision("auto") == "no"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve_mixed_precision("auto") == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert resolve_mixed_precision("auto") == "fp16"


def test_recipe_names_the_source_of_every_value_and_is_saved(tmp_path: Path) -> None:
    config = TrainingLoopConfig(output_dir=str(tmp_path), learning_rate=1e-4, report_to="none")
    recipe = resolve_recipe(config, criterion=("SMSLoss(...)", "resolved"))
    assert recipe["learning_rate"] == {"value": 1e-4, "source": "set"}
    assert recipe["warmup_start_lr"] == {"value": 1e-6, "source": "paper"}
    assert recipe["lr_end"] == {"value": 2e-6, "source": "authors' code"}
    assert recipe["crop_scale"] == {"value": [0.5, 1.0], "source": "authors' code"}
    assert recipe["num_workers"]["source"] == "ours" and recipe["output_dir"]["source"] == "run"
    assert recipe["criterion"] == {"value": "SMSLoss(...)", "source": "resolved"}
    saved = save_recipe(
        build_accelerator(config), str(tmp_path), config, criterion=("SMSLoss(...)", "resolved")
    )
    assert saved["mixed_precision_used"] == {"value": "no", "source": "resolved"}  # auto on CPU
    assert json.loads((tmp_path / "recipe.json").read_text()) == json.loads(json.dumps(saved))
    assert [p.name for p in tmp_path.iterdir() if "tmp" in p.name] == []


def _example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"recipe_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses need their module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "name", ["finetune_ek100", "pretrain_egoclip", "finetune_charades_ego", "evaluate_zeroshot", "quickstart"]
)
def test_help_shows_every_default(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _example(name).main(["--help"])
    text = capsys.readouterr().out
    options = text[text.index("options:") :]
    blocks = re.split(r"\n  (?=-)", options)[1:]
    assert blocks
    for block in blocks:
        flag = block.split()[0]
        if (
            flag in ("-h,", "--output_dir", "--data_dir", "--video_root")
            or "--data_dir" in block.split(",")[0]
        ):
            continue
        assert "default" in " ".join(block.split()), f"{name} {flag}: {block}"
    if name == "finetune_ek100":
        squashed = " ".join(text.split())
        assert (
            "sms 0.6" in squashed and "(default: authors_code)" in squashed and "(default: 2e-06)" in squashed
        )


def test_temporal_embedding_init_options() -> None:
    zeros = EVA02ATForVideoTextRetrieval(EVA02ATConfig.from_preset("eva02at-tiny"))
    assert zeros.vision_model.embeddings.temporal_embedding.abs().max() == 0
    config = EVA02ATConfig.from_preset(
        "eva02at-tiny", vision_config={"temporal_embedding_init": "trunc_normal"}
    )
    embedding = EVA02ATForVideoTextRetrieval(config).vision_model.embeddings.temporal_embedding
    assert 0.015 < embedding.std().item() < 0.025 and embedding.abs().max() <= 2.0
    rope_only = {"temporal_embedding_init": "trunc_normal", "use_temporal_embedding": False}
    assert (
        EVA02ATForVideoTextRetrieval(
            EVA02ATConfig.from_preset("eva02at-tiny", vision_config=rope_only)
        ).vision_model.embeddings.temporal_embedding
        is None
    )  # no P_t to initialise
    with pytest.raises(StrictDataclassClassValidationError, match="temporal_embedding_init"):
        EVA02ATConfig.from_preset("eva02at-tiny", vision_config={"temporal_embedding_init": "normal"})


def test_small_head_init_applies_to_a_newly_created_projection_only(tmp_path: Path) -> None:
    torch.manual_seed(0)
    small = EVA02ATForVideoTextRetrieval(EVA02ATConfig.from_preset("eva02at-tiny", head_init_scale=0.001))
    plain = EVA02ATForVideoTextRetrieval(EVA02ATConfig.from_preset("eva02at-tiny"))
    assert small.visual_projection.weight.std().item() == pytest.approx(2e-5, rel=0.2)
    assert plain.visual_projection.weight.std().item() == pytest.approx(0.02, rel=0.2)
    width = plain.config.text_config.hidden_size
    assert small.text_projection.weight.std().item() == pytest.approx(
        width**-0.5, rel=0.2
    )  # CLIP's, unscaled
    with pytest.raises(StrictDataclassClassValidationError, match="head_init_scale"):
        EVA02ATConfig.from_preset("eva02at-tiny", head_init_scale=0.0)

    # A checkpoint whose projection is missing (e.g. a new 256-d head) gets the small head; loaded weights stay.
    plain.save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    save_file(
        {k: v for k, v in weights.items() if not k.startswith("visual_projection")},
        tmp_path / "model.safetensors",
    )
    reloaded = EVA02ATForVideoTextRetrieval.from_pretrained(tmp_path, head_init_scale=0.001)
    assert reloaded.visual_projection.weight.std().item() == pytest.approx(2e-5, rel=0.2)
    torch.testing.assert_close(reloaded.text_projection.weight, plain.text_projection.weight)
    torch.testing.assert_close(
        reloaded.vision_model.embeddings.position_embedding, plain.vision_model.embeddings.position_embedding
    )
