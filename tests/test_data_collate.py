"""Collators: dataset rows -> processor inputs, skipping and counting undecodable clips."""

import datasets
import numpy as np
import pytest
import torch

from eva02at_hf.data import (
    ClipTransform,
    MultipleChoiceCollator,
    VideoTextCollator,
    load_ek100_mir,
    read_window,
)
from eva02at_hf.data.synthetic import generate
from eva02at_hf.processing_eva02at import EVA02ATProcessor
from eva02at_hf.video_io import VideoDecodeError

SIZE = 32
RAW = {"do_resize": False, "do_center_crop": False, "do_normalize": False}  # pixel_values = frames / 255


@pytest.fixture(scope="module")
def processor() -> EVA02ATProcessor:
    return EVA02ATProcessor.from_preset(
        "eva02at-b", size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE}
    )


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> datasets.Dataset:
    out = tmp_path_factory.mktemp("syn")
    generate(out, num_clips=12, seed=5, size=SIZE)
    return load_ek100_mir(out, out / "videos", "train", cache_dir=str(out / "cache"))


@pytest.fixture(scope="module")
def rows(clips) -> list[dict]:
    return [clips[i] for i in range(len(clips))]


def frames_of(row: dict, num_frames: int) -> np.ndarray:
    return read_window(row["video_paths"], row["chunk_starts"], row["start"], row["stop"], num_frames)


def test_video_text_batch_skips_bad_clips(processor, rows, tmp_path, caplog):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"not a video")
    bad = {**rows[0], "narration_id": "BAD_0", "video_paths": [str(corrupt)]}
    gone = {**rows[1], "narration_id": "BAD_1", "video_paths": [str(tmp_path / "gone.mp4")]}
    batch_rows = [rows[0], bad, rows[1], gone, rows[2]]
    collator = VideoTextCollator(processor, num_frames=4, keep_columns=("verb_class", "narration_id"), **RAW)
    batch = collator(batch_rows)
    good = [rows[0], rows[1], rows[2]]
    assert batch["pixel_values"].shape == (3, 4, 3, SIZE, SIZE)
    expected_pixels = [
        read_window(r["video_paths"], r["chunk_starts"], r["start"], r["stop"], 4) for r in good
    ]
    expected = torch.from_numpy(np.stack(expected_pixels)).permute(0, 1, 4, 2, 3).float() / 255
    torch.testing.assert_close(batch["pixel_values"], expected)
    text = processor(text=[r["narration"] for r in good], return_tensors="pt")
    torch.testing.assert_close(batch["input_ids"], text["input_ids"])
    assert batch["verb_class"].tolist() == [r["verb_class"] for r in good]
    assert batch["narration_id"] == [r["narration_id"] for r in good]
    assert (collator.num_seen, collator.num_skipped, collator.skipped_ids) == (5, 2, ["BAD_0", "BAD_1"])
    assert "skipping BAD_0" in caplog.text
    assert collator([bad]) is None and collator.num_skipped == 3


def test_multiple_choice_batch(processor, rows, tmp_path):
    def choice(row):
        keys = ("video_paths", "chunk_starts", "start", "stop")
        return {"video_uid": row["video_id"], "narration": row["narration"], **{k: row[k] for k in keys}}

    good = {
        "question_id": "0",
        "query": rows[0]["narration"],
        "answer": 2,
        "types": 1,
        "choices": [choice(rows[i]) for i in range(5)],
    }
    broken = {
        **good,
        "question_id": "1",
        "choices": [*good["choices"][:4], {**choice(rows[5]), "video_paths": [str(tmp_path / "x.mp4")]}],
    }
    collator = MultipleChoiceCollator(processor, num_frames=2, **RAW)
    batch = collator([good, broken, {**good, "question_id": "2", "answer": 4, "types": 2}])
    assert batch["pixel_values"].shape == (2, 5, 2, 3, SIZE, SIZE)
    first = rows[3]
    expected = read_window(first["video_paths"], first["chunk_starts"], first["start"], first["stop"], 2)
    torch.testing.assert_close(
        batch["pixel_values"][1, 3], torch.from_numpy(expected).permute(0, 3, 1, 2).float() / 255
    )
    assert batch["answer"].tolist() == [2, 4] and batch["types"].tolist() == [1, 2]
    assert batch["input_ids"].shape == (2, 77)
    assert (collator.num_seen, collator.num_skipped, collator.skipped_ids) == (3, 1, ["1"])


def test_clip_transform_decodes_rows_on_access(clips, rows):
    """``with_transform(ClipTransform())``: every column plus the decoded clip, as an Image feature decodes."""
    decoded = clips.with_transform(ClipTransform(num_frames=3))
    row = decoded[4]
    np.testing.assert_array_equal(row["frames"], frames_of(rows[4], 3))
    assert row["frames"].shape == (3, SIZE, SIZE, 3) and row["frames"].dtype == np.uint8
    assert {k: row[k] for k in rows[4]} == rows[4]
    assert clips.format["type"] is None  # with_transform returns a new view; the dataset is unchanged


def test_clip_transform_with_processor_feeds_a_dataloader(processor, clips, rows):
    transform = ClipTransform(
        processor, num_frames=4, text_column="narration", keep_columns=("verb_class",), **RAW
    )
    inputs = clips.with_transform(transform)
    batch = inputs[2:5]
    expected = np.stack([frames_of(rows[i], 4) for i in range(2, 5)])
    torch.testing.assert_close(
        batch["pixel_values"], torch.from_numpy(expected).permute(0, 1, 4, 2, 3).float() / 255
    )
    text = processor(text=[rows[i]["narration"] for i in range(2, 5)], return_tensors="pt")
    torch.testing.assert_close(batch["input_ids"], text["input_ids"])
    torch.testing.assert_close(batch["attention_mask"], text["attention_mask"])
    assert batch["verb_class"].tolist() == [rows[i]["verb_class"] for i in range(2, 5)]

    loader = torch.utils.data.DataLoader(inputs, batch_size=3, shuffle=False)
    first = next(iter(loader))
    assert set(first) == {"pixel_values", "input_ids", "attention_mask", "verb_class"}
    assert first["pixel_values"].shape == (3, 4, 3, SIZE, SIZE) and first["input_ids"].shape == (3, 77)
    torch.testing.assert_close(first["pixel_values"], inputs[0:3]["pixel_values"])


def test_clip_transform_errors_name_the_file_and_the_columns(processor, rows, tmp_path):
    gone = str(tmp_path / "gone.mp4")
    broken = datasets.Dataset.from_list([{**rows[0], "video_paths": [gone]}])
    with pytest.raises(VideoDecodeError, match="gone.mp4"):
        broken.with_transform(ClipTransform(num_frames=2))[0]
    question = datasets.Dataset.from_list([{"question_id": "0", "query": "cut", "answer": 1}])
    with pytest.raises(KeyError, match="lack column.*video_paths"):
        question.with_transform(ClipTransform(processor, text_column="query"))[0]
    with pytest.raises(ValueError, match="need a `processor`"):
        ClipTransform(text_column="narration")
