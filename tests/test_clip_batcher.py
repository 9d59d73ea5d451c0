"""One clip batcher, one embedding routine: training, evaluation and extraction see the same pixels for a clip."""

import copy
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from accelerate import Accelerator

from eva02at_hf.apps.features import FeatureExtractor, VideoItem
from eva02at_hf.data import MultipleChoiceCollator, VideoTextCollator, synthetic
from eva02at_hf.training import (
    ClipTextDataset,
    TrainingCollator,
    embed_clips,
    evaluate_egomcq,
    example_seed,
    load_model_and_processor,
)
from eva02at_hf.video_io import read_clip

FRAMES = 4
STOP = 2.9  # seconds: the window [0, STOP] of a 3 s, 10 fps file


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> str:
    """30 frames whose colours change every frame (frame k is identifiable), 40 x 56."""
    path = tmp_path_factory.mktemp("batcher") / "clip.mp4"
    y, x = np.mgrid[0:40, 0:56]
    frames = [np.stack([x * 4 + 6 * k, y * 5, (x + y + 8 * k) % 256], axis=-1) for k in range(30)]
    synthetic.write_video(str(path), np.asarray(frames).clip(0, 255).astype(np.uint8), fps=10)
    return str(path)


@pytest.fixture(scope="module")
def model_and_processor():
    torch.manual_seed(0)
    model, processor = load_model_and_processor(None, num_frames=FRAMES)
    return model.eval(), processor


def _row(video: str, **extra) -> dict:
    return {"video_paths": [video], "chunk_starts": [0.0], "start": 0.0, "stop": STOP, **extra}


def _recorded(model: torch.nn.Module, monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    """Record the pixel batches ``model.get_video_features`` receives."""
    seen: list[torch.Tensor] = []
    forward = model.get_video_features

    def record(pixel_values: torch.Tensor, *args, **kwargs):
        seen.append(pixel_values.detach().clone())
        return forward(pixel_values, *args, **kwargs)

    monkeypatch.setattr(model, "get_video_features", record)
    return seen


def test_training_evaluation_and_extraction_feed_the_same_pixels(
    model_and_processor, video: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    model, processor = model_and_processor
    # The video processor decoding the file itself: the reference every path must reproduce exactly.
    expected = processor(
        videos=[video], start_time=0.0, end_time=STOP, num_frames=FRAMES, return_tensors="pt"
    )["pixel_values"]
    assert expected.shape == (1, FRAMES, 3, 32, 32)

    training = TrainingCollator(processor, FRAMES)([_row(video, text="x", clip_index=0)])["pixel_values"]
    assert torch.equal(training, expected)

    seen = _recorded(model, monkeypatch)
    accelerator = Accelerator(cpu=True)
    evaluation = embed_clips(model, processor, datasets.Dataset.from_list([_row(video)]), accelerator, FRAMES)
    choice = {"video_uid": "v", "narration": "x", **_row(video)}
    question = {"question_id": "0", "query": "x", "answer": 0, "types": 1, "choices": [choice, choice]}
    evaluate_egomcq(model, processor, datasets.Dataset.from_list([question]), accelerator, FRAMES)
    extractor = FeatureExtractor(model, processor, FRAMES, progress=False)
    extracted, kept, failures = extractor.embed_videos([VideoItem("clip", video, 0.0, STOP)], [0])
    assert (kept, failures) == ([0], [])

    embedded_clips, egomcq_choices, extraction = seen
    assert torch.equal(embedded_clips, expected)
    assert torch.equal(egomcq_choices, torch.cat([expected, expected]))  # (questions x choices) flattened
    assert torch.equal(extraction, expected)
    torch.testing.assert_close(evaluation.embeddings, extracted, atol=0, rtol=0)  # the same embeddings


def test_train_crop_is_a_function_of_the_clip_seed(model_and_processor, video: str) -> None:
    """Train-time pixels = the clip's segment-random frames (seeded by ``frame_seed``) with one random-resized
    crop seeded by ``example_seed(frame_seed, 0, 1)``, through the video processor's crop."""
    _, processor = model_and_processor
    dataset = ClipTextDataset(datasets.Dataset.from_list([_row(video)]), ["x"], np.array([0]), seed=3)
    row = dataset[0]
    batch = TrainingCollator(processor, FRAMES, "segment_random", crop_scale=(0.5, 1.0))([row])
    seed = row["frame_seed"]
    frames = read_clip(video, 0.0, STOP, FRAMES, "segment_random", torch.Generator().manual_seed(seed))
    expected = processor.video_processor(
        videos=[frames],
        do_sample_frames=False,
        do_random_resized_crop=True,
        crop_scale=(0.5, 1.0),
        seed=example_seed(seed, 0, 1),
        return_tensors="pt",
    )["pixel_values"]
    assert torch.equal(batch["pixel_values"], expected)


def test_collators_leave_their_rows_and_their_sampling_unchanged(
    model_and_processor, video: str, tmp_path: Path
) -> None:
    _, processor = model_and_processor
    seeded = _row(video, text="a", clip_index=0, frame_seed=11)
    rows = [
        seeded,
        _row(str(tmp_path / "gone.mp4"), text="b", clip_index=1, frame_seed=12),
        _row(video, text="c", clip_index=2, frame_seed=13, unusable="unparsable line 7"),
    ]
    snapshot = copy.deepcopy(rows)
    collator = TrainingCollator(
        processor, FRAMES, "segment_random", crop_scale=(0.5, 1.0), keep_columns=("clip_index",)
    )
    first = collator(rows)
    assert rows == snapshot
    assert first["valid"].tolist() == [True, False, False] and first["clip_index"].tolist() == [0, 1, 2]
    assert torch.equal(collator(rows)["pixel_values"], first["pixel_values"])
    assert collator.skipped_ids == ["1", "2", "1", "2"]
    lone = collator(rows[1:])  # nothing decodes: the batch still has the processor's crop shape
    assert lone["pixel_values"].shape == (2, FRAMES, 3, 32, 32) and not lone["pixel_values"].any()

    # A seeded row does not leak its seed into the next call: rows without one draw from the collator's generator.
    plain = _row(video, text="d", clip_index=3)
    fresh = TrainingCollator(processor, FRAMES, "segment_random", generator=torch.Generator().manual_seed(7))
    used = TrainingCollator(processor, FRAMES, "segment_random", generator=torch.Generator().manual_seed(7))
    used([seeded])
    assert torch.equal(used([plain])["pixel_values"], fresh([plain])["pixel_values"])

    captions = [
        _row(video, narration="x", narration_id="n0"),
        _row(str(tmp_path / "gone.mp4"), narration="y"),
    ]
    choice = {"video_uid": "v", "narration": "x", **_row(video)}
    question = {"question_id": "0", "query": "x", "answer": 1, "types": 2, "choices": [choice, choice]}
    snapshot = copy.deepcopy([captions, question])
    assert VideoTextCollator(processor, FRAMES)(captions)["pixel_values"].shape == (1, FRAMES, 3, 32, 32)
    broken = {**question, "choices": [choice, {**choice, "video_paths": [str(tmp_path / "gone.mp4")]}]}
    questions = MultipleChoiceCollator(processor, FRAMES, on_error="mask")([question, broken])
    assert questions["pixel_values"].shape == (2, 2, FRAMES, 3, 32, 32)
    assert questions["valid"].tolist() == [True, False]
    assert not questions["pixel_values"][1].any() and questions["answer"].tolist() == [1, 1]
    alone = MultipleChoiceCollator(processor, FRAMES, on_error="mask")([broken])["pixel_values"]
    assert alone.shape == (1, 2, FRAMES, 3, 32, 32)
    assert [captions, question] == snapshot


def test_masked_rows_embed_as_zeros_in_order(model_and_processor, video: str, tmp_path: Path) -> None:
    model, processor = model_and_processor
    items = [
        VideoItem("a", video, 0.0, 1.0),
        VideoItem("gone", str(tmp_path / "gone.mp4")),
        VideoItem("b", video),
    ]
    embeddings, kept, failures = FeatureExtractor(model, processor, FRAMES, progress=False).embed_videos(
        items, [5, 6, 7]
    )
    assert kept == [5, 7] and [(f["id"], f["row"]) for f in failures] == [("gone", 6)]
    assert "gone.mp4" in failures[0]["error"]
    with torch.no_grad():
        for row, item in zip(embeddings, (items[0], items[2]), strict=True):
            pixels = processor(
                videos=[item.path], start_time=item.start, end_time=item.end, return_tensors="pt"
            )
            direct = model.get_video_features(pixels["pixel_values"]).pooler_output[0]
            torch.testing.assert_close(
                row, torch.nn.functional.normalize(direct, dim=-1), atol=1e-5, rtol=1e-5
            )
