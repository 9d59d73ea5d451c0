"""EVA02ATProcessor / EVA02ATVideoProcessor: shapes, normalisation, sampling, errors, tokenizer parity, Auto round trip."""

import json

import numpy as np
import open_clip
import PIL.Image
import pytest
import torch
from test_video_io import code_frame, read_code, write_video
from transformers import AutoProcessor, AutoVideoProcessor
from transformers.video_utils import VideoMetadata

import eva02at_hf  # noqa: F401  (registers the Auto classes)
from eva02at_hf.processing_eva02at import EVA02ATProcessor
from eva02at_hf.video_io import VideoDecodeError
from eva02at_hf.video_processing_eva02at import EVA02ATVideoProcessor

MEAN = np.array([0.48145466, 0.4578275, 0.40821073])
STD = np.array([0.26862954, 0.26130258, 0.27577711])
RAW = {"do_resize": False, "do_center_crop": False, "do_normalize": False}  # pixel_values = frames / 255

CAPTIONS = [
    "#C C picks up the knife from the counter.",
    "Open FRIDGE!!! Then close it...",
    "put 2 eggs in the pan for 3.5 minutes (or 210 s)",
    "café naïve – “quoted” person’s ﬁsh",
    "日本語のキャプション 🍕 with emoji",
    "Ünïcödé ÅNGSTRÖM İstanbul",
    "a &amp; b &lt;tag&gt; <|endoftext|> literal",
    "tab\tseparated\nand   spaced   text",
    "don't won't it's they're I'm we'll he'd",
    "",
    " ".join(f"word{i}" for i in range(120)),  # far beyond 77 tokens
    " ".join(["ab"] * 75),  # exactly 77 with start / end
    " ".join(["ab"] * 76),  # one too many
]


@pytest.fixture(scope="module")
def processor() -> EVA02ATProcessor:
    return EVA02ATProcessor.from_preset("eva02at-b")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("processor_videos")
    paths = {
        "mp4": write_video(root / "a.mp4", "libx264"),
        "webm": write_video(root / "b.webm", "libvpx-vp9"),
    }
    (root / "empty.mp4").write_bytes(b"")
    (root / "text.webm").write_text("not a video")
    paths.update(empty=root / "empty.mp4", text=root / "text.webm", missing=root / "missing.mp4")
    return {name: str(path) for name, path in paths.items()}


def _codes(pixel_values: torch.Tensor) -> list[int]:
    """(T, 3, H, W) values in [0, 1] -> frame codes."""
    return [read_code(frame.permute(1, 2, 0).numpy() * 255) for frame in pixel_values]


def _gray_ramp_video(num_frames: int, height: int = 48, width: int = 64) -> np.ndarray:
    """(T, H, W, 3) uint8 video whose frame k is the constant 10 * k."""
    return np.broadcast_to(
        10 * np.arange(num_frames, dtype=np.uint8)[:, None, None, None], (num_frames, height, width, 3)
    )


# --- presets ---


@pytest.mark.parametrize("name", ["eva02at-b", "eva02at-l"])
def test_from_preset(name):
    processor = EVA02ATProcessor.from_preset(name)
    video_processor = processor.video_processor
    assert video_processor.size.shortest_edge == 224
    assert (video_processor.crop_size.height, video_processor.crop_size.width) == (224, 224)
    assert tuple(video_processor.image_mean) == (0.48145466, 0.4578275, 0.40821073)
    assert tuple(video_processor.image_std) == (0.26862954, 0.26130258, 0.27577711)
    assert processor.tokenizer.model_max_length == 77


def test_unknown_preset():
    with pytest.raises(ValueError, match="eva02at-x"):
        EVA02ATProcessor.from_preset("eva02at-x")


# --- tokenizer parity with open_clip ---


def test_token_ids_match_open_clip(processor):
    expected = open_clip.get_tokenizer("EVA02-B-16")(CAPTIONS)
    out = processor(text=CAPTIONS, return_tensors="pt")
    assert out["input_ids"].shape == (len(CAPTIONS), 77)
    assert torch.equal(out["input_ids"], expected)
    # open_clip pads with 0 after the end-of-text token (49407), which is kept even when truncating
    eot = (expected == 49407).int().argmax(dim=1)
    assert eot[-3:].tolist() == [76, 76, 76] and eot[-4].item() == 1
    assert torch.equal(out["attention_mask"], (torch.arange(77)[None] <= eot[:, None]).long())


# --- video shapes, normalisation, sampling ---


def test_files_and_text(processor, files):
    out = processor(
        videos=[files["mp4"], files["webm"]],
        text=["cut onion", "wash pan"],
        num_frames=8,
        start_time=[0.1, None],
        end_time=[0.4, None],
        return_tensors="pt",
    )
    assert out["pixel_values"].shape == (2, 8, 3, 224, 224) and out["pixel_values"].dtype == torch.float32
    assert out["input_ids"].shape == out["attention_mask"].shape == (2, 77)


def test_window_sampling_through_processor(processor, files):
    out = processor(
        videos=files["webm"], num_frames=8, start_time=0.1, end_time=0.4, return_tensors="pt", **RAW
    )
    assert out["pixel_values"].shape == (1, 8, 3, 48, 64)
    assert _codes(out["pixel_values"][0]) == [3, 4, 6, 7, 8, 9, 11, 12]  # frames 3..12 in the window


def test_constant_colour_normalisation(processor):
    video = np.broadcast_to(np.array([200, 100, 50], dtype=np.uint8), (3, 61, 97, 3))  # odd size
    pixel_values = processor(videos=[video], num_frames=2, return_tensors="pt")["pixel_values"]
    assert pixel_values.shape == (1, 2, 3, 224, 224)
    expected = (np.array([200, 100, 50]) / 255 - MEAN) / STD  # = (1.1272, 0.5746, -1.0211)
    np.testing.assert_allclose(pixel_values.mean(dim=(0, 1, 3, 4)).numpy(), expected, atol=1e-4)
    np.testing.assert_allclose(pixel_values.std(dim=(0, 1, 3, 4)).numpy(), 0, atol=1e-4)


@pytest.mark.parametrize("layout", ["numpy", "torch", "pil"])
def test_in_memory_videos_are_sampled(processor, layout):
    video = _gray_ramp_video(10)
    video = {
        "numpy": video,
        "torch": torch.from_numpy(video.copy()).permute(0, 3, 1, 2),
        "pil": [PIL.Image.fromarray(frame) for frame in video],
    }[layout]
    pixel_values = processor(videos=[video, video], num_frames=4, return_tensors="pt", **RAW)["pixel_values"]
    assert pixel_values.shape == (2, 4, 3, 48, 64)
    frame_values = (pixel_values[:, :, 0, 0, 0] * 255).round() / 10
    assert frame_values.tolist() == [[1, 3, 6, 8]] * 2  # uniform, 10 frames -> 4 segment centres


def test_segment_random_seed(processor, files):
    kwargs = {"num_frames": 4, "sampling": "segment_random", "return_tensors": "pt", **RAW}
    first = processor(videos=files["mp4"], seed=5, **kwargs)["pixel_values"]
    assert torch.equal(first, processor(videos=files["mp4"], seed=5, **kwargs)["pixel_values"])
    for k, code in enumerate(_codes(first[0])):
        assert 10 * k <= code <= 10 * k + 9  # one frame in each quarter of the 40 frames
    generator = torch.Generator().manual_seed(0)
    draws = {
        tuple(_codes(processor(videos=files["mp4"], seed=generator, **kwargs)["pixel_values"][0]))
        for _ in range(6)
    }
    assert len(draws) > 1  # the caller's generator advances between calls


def test_train_augmentation(processor):
    frame = code_frame(0b10100101)
    video = np.stack([frame] * 4)
    kwargs = {"num_frames": 4, "do_random_resized_crop": True, "return_tensors": "pt"}
    crop = processor(videos=video, seed=1, **kwargs)["pixel_values"]
    assert crop.shape == (1, 4, 3, 224, 224)
    assert torch.equal(crop, processor(videos=video, seed=1, **kwargs)["pixel_values"])
    assert all(torch.equal(crop[0, 0], crop[0, t]) for t in range(4))  # one crop box per clip
    assert not torch.equal(crop, processor(videos=video, num_frames=4, return_tensors="pt")["pixel_values"])
    flips = [
        processor(videos=video, seed=s, num_frames=4, do_flip=True, return_tensors="pt", **RAW)[
            "pixel_values"
        ]
        for s in range(8)
    ]
    mirrored = torch.from_numpy(frame[:, ::-1].copy()).permute(2, 0, 1) / 255
    assert {bool(torch.equal(f[0, 0], mirrored)) for f in flips} == {True, False}


def test_fps_and_video_metadata_pick_the_frame_count(processor):
    """transformers' contract for in-memory videos: fps frames per second of the video's own frame rate."""
    video = np.stack([code_frame(i) for i in range(12)])  # 12 frames at 4 fps = 3 s
    metadata = {"total_num_frames": 12, "fps": 4}
    out = processor(videos=video, fps=2, video_metadata=metadata, return_tensors="pt", **RAW)["pixel_values"]
    assert _codes(out[0]) == [1, 3, 5, 7, 9, 11]  # 3 s x 2 fps = 6 segments of 2 frames, their centres
    sampled = processor.video_processor.sample_frames(VideoMetadata(total_num_frames=12, fps=4), fps=1)
    assert sampled.tolist() == [2, 6, 10]  # the default num_frames=16 does not get in the way
    with pytest.raises(ValueError, match="frame rate"):
        processor(videos=video, fps=2, return_tensors="pt")  # no metadata: no source frame rate
    with pytest.raises(ValueError, match="mutually exclusive"):
        processor(videos=video, fps=2, num_frames=3, video_metadata=metadata, return_tensors="pt")


def test_more_frames_than_an_in_memory_video_has_raise(processor):
    video = np.stack([code_frame(i) for i in range(4)])
    with pytest.raises(ValueError, match="num_frames=16 frames from a video of total_num_frames=4"):
        processor(videos=video, return_tensors="pt")
    kept = processor(videos=video, do_sample_frames=False, return_tensors="pt", **RAW)["pixel_values"]
    assert _codes(kept[0]) == [0, 1, 2, 3]


def test_fps_on_a_file_window(processor, files):
    out = processor(videos=files["webm"], fps=20, start_time=0.1, end_time=0.4, return_tensors="pt", **RAW)
    assert out["pixel_values"].shape[1] == 6  # 0.3 s x 20 fps
    with pytest.raises(ValueError, match="needs `start_time` and `end_time`"):
        processor(videos=files["webm"], fps=20, return_tensors="pt")


def test_user_supplied_input_data_format(processor):
    frames = np.stack([code_frame(i) for i in (5, 9)])  # (T, H, W, C)
    channels_first = frames.transpose(0, 3, 1, 2).copy()
    for video, layout in ((frames, "channels_last"), (channels_first, "channels_first")):
        out = processor(
            videos=video, input_data_format=layout, do_sample_frames=False, return_tensors="pt", **RAW
        )["pixel_values"]
        assert _codes(out[0]) == [5, 9]


def test_crop_scale_survives_json_and_is_validated(tmp_path):
    video_processor = EVA02ATVideoProcessor(crop_scale=(0.3, 0.9))
    video_processor.save_pretrained(tmp_path)
    assert EVA02ATVideoProcessor.from_pretrained(tmp_path).to_dict() == video_processor.to_dict()
    assert video_processor.crop_scale == [0.3, 0.9]
    with pytest.raises(ValueError, match="crop_scale"):
        EVA02ATVideoProcessor(crop_scale=(0.9, 0.3))


# --- errors ---


def test_bad_files_raise(processor, files):
    for name in ("missing", "empty", "text"):
        with pytest.raises(VideoDecodeError, match=files[name]):
            processor(videos=files[name], start_time=1.0, end_time=2.0)


def test_skip_bad_clips_keeps_pairs(processor, files):
    names = ["mp4", "missing", "empty", "text", "webm"]
    captions = ["first clip", "b", "c", "d", "last clip"]
    out = processor(
        videos=[files[n] for n in names], text=captions, num_frames=4, on_error="skip", return_tensors="pt"
    )
    assert out["failed_indices"] == [1, 2, 3]
    assert out["pixel_values"].shape == (2, 4, 3, 224, 224)
    assert torch.equal(out["input_ids"], open_clip.tokenize(["first clip", "last clip"]))


def test_window_count_mismatch(processor, files):
    with pytest.raises(ValueError, match="start_time"):
        processor(videos=[files["mp4"], files["webm"]], start_time=[0.0, 1.0, 2.0])


# --- save / load ---


def test_save_and_auto_load(tmp_path, files):
    processor = EVA02ATProcessor.from_preset("eva02at-b", num_frames=4, sampling="segment_random")
    processor.save_pretrained(tmp_path)
    assert not (tmp_path / "config.json").exists()
    assert (
        json.loads((tmp_path / "processor_config.json").read_text())["processor_class"] == "EVA02ATProcessor"
    )

    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, EVA02ATProcessor)
    loaded.save_pretrained(tmp_path / "again")  # save -> load -> save keeps auto_map and everything else
    saved = json.loads((tmp_path / "processor_config.json").read_text())
    assert saved["auto_map"]["AutoProcessor"] == "processing_eva02at.EVA02ATProcessor"
    assert json.loads((tmp_path / "again" / "processor_config.json").read_text()) == saved
    assert loaded.to_dict() == processor.to_dict()
    assert isinstance(AutoVideoProcessor.from_pretrained(tmp_path), EVA02ATVideoProcessor)
    assert loaded.video_processor.to_json_string() == processor.video_processor.to_json_string()
    expected = processor(videos=files["mp4"], text=CAPTIONS[:3], seed=3, return_tensors="pt")
    actual = loaded(videos=files["mp4"], text=CAPTIONS[:3], seed=3, return_tensors="pt")
    assert actual["pixel_values"].shape == (1, 4, 3, 224, 224)
    for key in ("pixel_values", "input_ids", "attention_mask"):
        assert torch.equal(actual[key], expected[key])
