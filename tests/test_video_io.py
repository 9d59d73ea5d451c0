"""PyAV decoding: timestamps, segment sampling and seeking decode on videos written by the tests.

Every frame carries its index as an 8-bit code of flat black / white blocks (robust to compression), so the
decoded frames tell which frame indices were sampled.
"""

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from eva02at_hf.video_io import (
    VideoDecodeError,
    decode_frames,
    frame_timestamps,
    read_clip,
    sample_frame_indices,
)

CODE_BITS = 8
FPS = 30
NUM_FRAMES = 40
VFR_PTS_MS = [0, 33, 66, 200, 233, 500, 533, 566, 1000, 1100]


def _blocks(height: int, width: int):
    for bit in range(CODE_BITS):
        row, col = divmod(bit, CODE_BITS // 2)
        yield (
            bit,
            slice(row * height // 2, (row + 1) * height // 2),
            slice(col * width // 4, (col + 1) * width // 4),
        )


def code_frame(index: int, width: int = 64, height: int = 48) -> np.ndarray:
    """(H, W, 3) uint8 frame whose 2 x 4 blocks are white where the bits of ``index`` are set."""
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    for bit, rows, cols in _blocks(height, width):
        if (index >> bit) & 1:
            frame[rows, cols] = 255
    return frame


def read_code(frame: np.ndarray) -> int:
    """Inverse of `code_frame` for an (H, W, 3) frame with values in [0, 255]."""
    height, width = frame.shape[:2]
    return sum(1 << bit for bit, rows, cols in _blocks(height, width) if frame[rows, cols].mean() > 127)


def write_video(
    path: Path,
    codec: str,
    num_frames: int = NUM_FRAMES,
    width: int = 64,
    height: int = 48,
    pix_fmt: str = "yuv420p",
    pts_ms: list[int] | None = None,
) -> Path:
    """Encode coded frames at 30 fps, or at the explicit millisecond timestamps ``pts_ms`` (variable rate)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if pts_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(code_frame(i, width, height), format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    paths = {
        "mp4": write_video(root / "h264.mp4", "libx264"),
        "webm": write_video(root / "vp9.webm", "libvpx-vp9"),
        "mkv": write_video(root / "mpeg4.mkv", "mpeg4"),
        "odd": write_video(root / "odd.mkv", "libx264", 20, width=97, height=61, pix_fmt="yuv444p"),
        "vfr": write_video(root / "vfr.mp4", "libx264", len(VFR_PTS_MS), pts_ms=VFR_PTS_MS),
        "single": write_video(root / "single.mp4", "libx264", 1),
    }
    for name in ("mp4", "webm"):
        data = paths[name].read_bytes()
        paths[f"truncated_{name}"] = root / f"truncated.{name}"
        paths[f"truncated_{name}"].write_bytes(data[: len(data) * 6 // 10])
    paths["empty"] = root / "empty.mp4"
    paths["empty"].write_bytes(b"")
    paths["text"] = root / "notes.mp4"
    paths["text"].write_text("this is not a video\n" * 50)
    paths["missing"] = root / "missing.mp4"
    return paths


def codes(frames: np.ndarray) -> list[int]:
    return [read_code(frame) for frame in frames]


# --- frame_timestamps ---


@pytest.mark.parametrize("name", ["mp4", "webm", "mkv"])
def test_frame_timestamps_constant_rate(videos, name):
    times = frame_timestamps(videos[name])
    # Matroska stores milliseconds, so 1/30 s is rounded to 1 ms.
    np.testing.assert_allclose(times, np.arange(NUM_FRAMES) / FPS, atol=1e-3)


def test_frame_timestamps_without_frame_count(videos):
    with av.open(str(videos["webm"])) as container:
        assert container.streams.video[0].frames == 0  # the case the timestamps path exists for
    assert len(frame_timestamps(videos["webm"])) == NUM_FRAMES


def test_frame_timestamps_variable_rate(videos):
    np.testing.assert_allclose(frame_timestamps(videos["vfr"]), np.array(VFR_PTS_MS) / 1000, atol=1e-4)


# --- sample_frame_indices ---


@pytest.mark.parametrize(
    ("num_available", "num_frames", "expected"),
    [
        (10, 4, [1, 3, 6, 8]),  # segments of 2.5 frames, centres 1.25, 3.75, 6.25, 8.75
        (16, 16, list(range(16))),
        (40, 8, [2, 7, 12, 17, 22, 27, 32, 37]),
        (3, 8, [0, 0, 0, 1, 1, 2, 2, 2]),  # fewer frames than asked: repeat
        (1, 4, [0, 0, 0, 0]),
    ],
)
def test_uniform_indices(num_available, num_frames, expected):
    indices = sample_frame_indices(num_available, num_frames, "uniform")
    assert indices.tolist() == expected


def test_segment_random_one_frame_per_segment():
    n, segments = 100, 8  # segment i covers frames [12.5 i, 12.5 (i + 1))
    generator = torch.Generator().manual_seed(0)
    lows, highs = np.floor(np.arange(8) * 12.5), np.ceil(np.arange(1, 9) * 12.5) - 1
    for _ in range(50):
        indices = sample_frame_indices(n, segments, "segment_random", generator)
        assert ((indices >= lows) & (indices <= highs)).all()


def test_segment_random_covers_segment_and_is_reproducible():
    draws = np.stack(
        [sample_frame_indices(80, 8, "segment_random", torch.Generator().manual_seed(s)) for s in range(400)]
    )
    assert set(draws[:, 0].tolist()) == set(range(10))  # every frame of the first segment is reachable
    assert set(draws[:, 7].tolist()) == set(range(70, 80))
    first = sample_frame_indices(80, 8, "segment_random", torch.Generator().manual_seed(7))
    again = sample_frame_indices(80, 8, "segment_random", torch.Generator().manual_seed(7))
    assert first.tolist() == again.tolist()
    short = sample_frame_indices(3, 16, "segment_random", torch.Generator().manual_seed(1))
    assert short.min() >= 0 and short.max() <= 2 and (np.diff(short) >= 0).all()


def test_sample_frame_indices_rejects_bad_arguments():
    with pytest.raises(ValueError, match="sampling"):
        sample_frame_indices(10, 4, "random")
    with pytest.raises(ValueError, match="num_available"):
        sample_frame_indices(0, 4, "uniform")
    with pytest.raises(ValueError, match="num_frames"):
        sample_frame_indices(10, 0, "uniform")


# --- read_clip / decode_frames: sampled frames identified by their codes ---


@pytest.mark.parametrize("name", ["mp4", "webm", "mkv"])
@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0.1, 0.4, [3, 4, 6, 7, 8, 9, 11, 12]),  # frames 3..12 (10 frames) in the window
        (None, None, [2, 7, 12, 17, 22, 27, 32, 37]),  # whole file
        (1.2, 3.0, [36, 36, 37, 37, 38, 38, 39, 39]),  # runs past the end: frames 36..39, repeated
        (0.11, 0.12, [3] * 8),  # between two frames: the frame on screen at start
    ],
)
def test_read_clip_uniform(videos, name, start, end, expected):
    frames = read_clip(videos[name], start, end, 8, "uniform")
    assert frames.shape == (8, 48, 64, 3) and frames.dtype == np.uint8
    assert codes(frames) == expected


def test_read_clip_segment_random(videos):
    for seed in range(3):
        frames = read_clip(videos["mp4"], 0.5, 1.0, 4, "segment_random", torch.Generator().manual_seed(seed))
        # window frames 15..30 (16 frames): segment k holds frames 15 + 4k .. 18 + 4k
        for k, code in enumerate(codes(frames)):
            assert 15 + 4 * k <= code <= 18 + 4 * k
        repeat = read_clip(videos["mp4"], 0.5, 1.0, 4, "segment_random", torch.Generator().manual_seed(seed))
        assert codes(repeat) == codes(frames)


def test_read_clip_variable_frame_rate(videos):
    # frames at 200, 233, 500, 533, 566 ms (indices 3..7) lie in [0.19, 0.6]; uniform 4 of 5 -> 0, 1, 3, 4
    assert codes(read_clip(videos["vfr"], 0.19, 0.6, 4)) == [3, 4, 6, 7]
    assert codes(read_clip(videos["vfr"], 0.7, 0.9, 2)) == [7, 7]  # gap: frame shown since 566 ms


def test_read_clip_odd_size(videos):
    frames = read_clip(videos["odd"], None, None, 4)
    assert frames.shape == (4, 61, 97, 3)
    assert codes(frames) == [2, 7, 12, 17]


def test_read_clip_single_frame(videos):
    np.testing.assert_allclose(frame_timestamps(videos["single"]), [0.0])
    assert codes(read_clip(videos["single"], None, None, 4)) == [0, 0, 0, 0]
    assert codes(read_clip(videos["single"], 0.0, 2.0, 2, "segment_random")) == [0, 0]  # clamped to the end


@pytest.mark.parametrize("name", ["mp4", "webm"])
def test_decode_frames_any_order_with_repeats(videos, name):
    times = frame_timestamps(videos[name])
    frames = decode_frames(videos[name], times[[25, 3, 25, 39, 26]])
    assert codes(frames) == [25, 3, 25, 39, 26]
    assert codes(decode_frames(videos[name], [times[10] + 0.01])) == [10]  # between frames: frame on screen


# --- errors ---


@pytest.mark.parametrize("name", ["missing", "empty", "text", "truncated_mp4"])
def test_unreadable_files_raise(videos, name):
    path = str(videos[name])
    with pytest.raises(VideoDecodeError, match="window \\[0.5, 1.0\\] s") as info:
        read_clip(path, 0.5, 1.0, 4)
    assert path in str(info.value) and info.value.path == path
    assert isinstance(info.value, ValueError)
    with pytest.raises(VideoDecodeError, match="whole file"):
        frame_timestamps(path)


def test_truncated_webm(videos):
    """WebM keeps playing until the cut: the intact part decodes, windows needing the lost part raise."""
    path = videos["truncated_webm"]
    with pytest.raises(VideoDecodeError, match="truncated"):
        frame_timestamps(path)
    with pytest.raises(VideoDecodeError, match="truncated"):
        read_clip(path, 1.0, 1.3, 4)
    assert codes(read_clip(path, 0.1, 0.4, 8)) == [3, 4, 6, 7, 8, 9, 11, 12]


def test_invalid_window_raises(videos):
    with pytest.raises(VideoDecodeError, match="end is before"):
        read_clip(videos["mp4"], 1.0, 0.5, 4)
    with pytest.raises(VideoDecodeError, match=">= 0"):
        read_clip(videos["mp4"], -1.0, 0.5, 4)
