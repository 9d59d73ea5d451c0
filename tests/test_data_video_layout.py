"""Raw vs pre-chunked video roots: locating a window's files and stitching frames across chunks."""

import os

import numpy as np
import pytest

from eva02at_hf.data._common import fingerprint_tree
from eva02at_hf.data.synthetic import write_video
from eva02at_hf.data.video_layout import VideoLayout, chunk_starts, read_window
from eva02at_hf.video_io import VideoDecodeError

FPS = 10


def _coded_frames(codes: list[int], channel: int) -> np.ndarray:
    """Flat frames whose ``channel`` holds ``code`` (others 0): frame identity survives compression."""
    frames = np.zeros((len(codes), 16, 16, 3), dtype=np.uint8)
    frames[..., channel] = np.asarray(codes, dtype=np.uint8)[:, None, None]
    return frames


def _decoded_codes(frames: np.ndarray) -> list[tuple[int, int]]:
    """(channel, code rounded to the 20-step grid) of each decoded frame."""
    means = frames.reshape(len(frames), -1, 3).mean(axis=1)
    return [(int(m.argmax()), int(round(m.max() / 20) * 20)) for m in means]


@pytest.fixture(scope="module")
def chunked_root(tmp_path_factory) -> str:
    """``vid.mp4/0.mp4`` (red, 9 frames: one short of the nominal 10), ``vid.mp4/1.mp4`` (blue, 10 frames)."""
    root = tmp_path_factory.mktemp("chunked")
    folder = root / "vid.mp4"
    folder.mkdir()
    write_video(str(folder / "0.mp4"), _coded_frames([40 + 20 * i for i in range(9)], channel=0), FPS)
    write_video(str(folder / "1.mp4"), _coded_frames([40 + 20 * i for i in range(10)], channel=2), FPS)
    return str(root)


def test_chunk_starts():
    assert chunk_starts(14.5, 15.5, 15) == [0.0, 15.0]
    assert chunk_starts(30.0, 30.0, 15) == [30.0]
    assert chunk_starts(0.0, 44.99, 15) == [0.0, 15.0, 30.0]
    assert chunk_starts(299.0, 601.0, 300) == [0.0, 300.0, 600.0]
    with pytest.raises(ValueError, match="before its start"):
        chunk_starts(2.0, 1.0, 15)


def test_locate_raw_tries_stems_and_extensions(tmp_path):
    (tmp_path / "P01").mkdir()
    (tmp_path / "P01" / "P01_01.MP4").write_bytes(b"x")
    (tmp_path / "P02_01.mp4").write_bytes(b"x")
    layout = VideoLayout(str(tmp_path), exts=("MP4", "mp4"))
    assert layout.locate(["P01/P01_01", "P01_01"], 1.0, 2.0).paths == [str(tmp_path / "P01" / "P01_01.MP4")]
    flat = layout.locate(["P02/P02_01", "P02_01"], 1.0, 2.0)
    assert flat.paths == [str(tmp_path / "P02_01.mp4")] and flat.chunk_starts == [0.0]
    assert layout.locate(["P03/P03_01", "P03_01"], 1.0, 2.0) is None


def test_locate_chunked(tmp_path):
    folder = tmp_path / "v.mp4"
    folder.mkdir()
    for start in (0, 15, 30):
        (folder / f"{start}.mp4").write_bytes(b"x")
    layout = VideoLayout(str(tmp_path), chunk_len=15)
    straddle = layout.locate(["v"], 14.0, 16.0)
    assert straddle.paths == [str(folder / "0.mp4"), str(folder / "15.mp4")]
    assert straddle.chunk_starts == [0.0, 15.0]
    # a window running past the last chunk keeps the chunks that exist
    assert layout.locate(["v"], 40.0, 50.0).chunk_starts == [30.0]
    # a missing first or middle chunk makes the clip missing
    assert layout.locate(["v"], 46.0, 50.0) is None
    (folder / "15.mp4").unlink()
    assert layout.locate(["v"], 14.0, 31.0) is None
    with pytest.raises(ValueError, match="chunk_len"):
        VideoLayout(str(tmp_path), chunk_len=0)


def test_window_straddling_two_chunks_is_stitched_in_order(chunked_root):
    layout = VideoLayout(chunked_root, chunk_len=1)
    source = layout.locate(["vid"], 0.45, 1.45)
    assert source.chunk_starts == [0.0, 1.0]
    # frames in [0.45, 1.45]: red 5..8 (t = 0.5 .. 0.8), blue 0..4 (t = 1.0 .. 1.4)
    frames = read_window(source.paths, source.chunk_starts, 0.45, 1.45, num_frames=9)
    expected = [(0, 40 + 20 * i) for i in range(5, 9)] + [(2, 40 + 20 * i) for i in range(5)]
    assert _decoded_codes(frames) == expected


def test_chunk_one_frame_short(chunked_root):
    layout = VideoLayout(chunked_root, chunk_len=1)
    # [0.85, 0.95] would hold the missing 10th frame of chunk 0 (t = 0.9): the frame on screen, red 8, is used
    source = layout.locate(["vid"], 0.85, 0.95)
    frames = read_window(source.paths, source.chunk_starts, 0.85, 0.95, num_frames=2)
    assert _decoded_codes(frames) == [(0, 200), (0, 200)]
    # a window from the short chunk's end into the next chunk
    source = layout.locate(["vid"], 0.75, 1.15)
    frames = read_window(source.paths, source.chunk_starts, 0.75, 1.15, num_frames=3)
    assert _decoded_codes(frames) == [(0, 200), (2, 40), (2, 60)]


def test_single_chunk_window_is_offset(chunked_root):
    layout = VideoLayout(chunked_root, chunk_len=1)
    source = layout.locate(["vid"], 1.15, 1.35)
    assert source.chunk_starts == [1.0]
    frames = read_window(source.paths, source.chunk_starts, 1.15, 1.35, num_frames=2)
    assert _decoded_codes(frames) == [(2, 80), (2, 100)]


def test_missing_chunk_file_raises_decode_error(chunked_root):
    paths = [os.path.join(chunked_root, "vid.mp4", "0.mp4"), os.path.join(chunked_root, "vid.mp4", "9.mp4")]
    with pytest.raises(VideoDecodeError, match="9.mp4"):
        read_window(paths, [0.0, 9.0], 0.5, 9.5, num_frames=4)
    with pytest.raises(ValueError, match="equal length"):
        read_window(paths, [0.0], 0.5, 9.5, num_frames=4)


def test_fingerprint_tree_tracks_which_files_exist(tmp_path):
    root = tmp_path / "videos"
    (root / "P01").mkdir(parents=True)
    (root / "P01" / "P01_01.MP4").write_bytes(b"x")
    first = fingerprint_tree(root)
    assert fingerprint_tree(str(root)) == first
    (root / "P01" / "P01_02.MP4").write_bytes(b"")
    second = fingerprint_tree(root)
    assert second != first
    (root / "P01" / "P01_02.MP4").write_bytes(b"new content")  # rows only depend on which files exist
    assert fingerprint_tree(root) == second
    (root / "P01" / "P01_02.MP4").unlink()
    assert fingerprint_tree(root) == first
    (root / "P01" / "P01_01.MP4").rename(root / "P01_01.MP4")  # same name, other folder
    assert fingerprint_tree(root) != first
    (root / "empty").mkdir()  # folders without files do not matter
    moved = fingerprint_tree(root)
    (root / "empty" / "P01_01.MP4").mkdir()  # ... nor do folders named like videos, until they hold chunks
    assert fingerprint_tree(root) == moved
    (root / "empty" / "P01_01.MP4" / "0.MP4").write_bytes(b"")
    assert fingerprint_tree(root) != moved


def test_fingerprint_tree_follows_symlinks_without_looping(tmp_path):
    store, root = tmp_path / "store", tmp_path / "videos"
    store.mkdir()
    root.mkdir()
    (store / "P01_01.MP4").write_bytes(b"")
    os.symlink(store, root / "P01")  # a linked folder counts, as the builders follow links
    os.symlink(root, root / "P01" / "loop")  # a cycle is walked once
    reference = tmp_path / "reference"
    (reference / "P01").mkdir(parents=True)
    (reference / "P01" / "P01_01.MP4").write_bytes(b"")
    assert fingerprint_tree(root) == fingerprint_tree(reference)
