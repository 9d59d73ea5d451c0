"""Where the frames of a clip live on disk: raw per-video files or the pre-chunked layout.

Two layouts of a video root are supported (``<ext>`` is the file extension, e.g. ``MP4`` or ``mp4``):

* raw: one file per video, ``<root>/<stem>.<ext>`` (EK-100: stem ``P01/P01_01`` or ``P01_01``; Ego4D: the
  video uid; Charades-Ego: the video id).
* chunked (LaViLa / AVION preprocessing): each video is cut into fixed-length chunks of ``chunk_len`` seconds,
  stored as ``<root>/<stem>.<ext>/<chunk start second>.<ext>`` (``0.mp4``, ``15.mp4``, ... for 15 s chunks,
  as used for EK-100; 300 s chunks for Ego4D). Chunk timestamps start at 0 inside each file.

A clip is described by ``video_paths`` (one file, or the consecutive chunks covering the window),
``chunk_starts`` (the absolute time, in seconds, of each file's time 0; ``[0.0]`` for a raw file) and the window
``[start, stop]`` in seconds on the video's absolute timeline. `read_window` samples frames from that window
across the files; chunks may hold a frame fewer than nominal, since frames are addressed by their own
timestamps rather than by nominal frame counts.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..video_io import decode_frames, frame_timestamps, read_clip, sample_frame_indices


@dataclass(frozen=True)
class ClipSource:
    """The files holding a clip window: ``paths[k]`` starts at absolute time ``chunk_starts[k]`` (seconds)."""

    paths: list[str]
    chunk_starts: list[float]


@dataclass(frozen=True)
class VideoLayout:
    """A video root in the raw (``chunk_len=None``) or pre-chunked layout.

    Args:
        root: the video root folder.
        chunk_len: chunk length in seconds for the pre-chunked layout, ``None`` for raw per-video files.
        exts: file extensions to try, in order (e.g. ``("MP4", "mp4")``).
    """

    root: str
    chunk_len: float | None = None
    exts: tuple[str, ...] = ("mp4",)

    def __post_init__(self) -> None:
        if self.chunk_len is not None and not self.chunk_len > 0:
            raise ValueError(
                f"`chunk_len` must be a positive number of seconds or None, got {self.chunk_len!r}"
            )
        if not self.exts:
            raise ValueError("`exts` must name at least one file extension")

    def locate(self, stems: Sequence[str], start: float, stop: float) -> ClipSource | None:
        """The files covering ``[start, stop]`` for the first of ``stems`` found under the root, else ``None``.

        Chunked layout: the chunks ``floor(start / chunk_len) ... floor(stop / chunk_len)``; chunks past the end
        of the video (a window overrunning the last chunk) are dropped, a missing first or middle chunk makes
        the clip missing.
        """
        for stem in stems:
            for ext in self.exts:
                source = self._locate_one(os.path.join(self.root, f"{stem}.{ext}"), ext, start, stop)
                if source is not None:
                    return source
        return None

    def _locate_one(self, video: str, ext: str, start: float, stop: float) -> ClipSource | None:
        if self.chunk_len is None:
            return ClipSource([video], [0.0]) if os.path.isfile(video) else None
        starts = chunk_starts(start, stop, self.chunk_len)
        paths = [os.path.join(video, f"{_format_second(s)}.{ext}") for s in starts]
        exists = [os.path.isfile(p) for p in paths]
        if not exists[0]:
            return None
        present = exists.index(False) if False in exists else len(exists)
        if any(exists[present:]):
            return None
        return ClipSource(paths[:present], starts[:present])


def _format_second(second: float) -> str:
    """Chunk file name of a chunk start: ``15.0 -> "15"``, ``7.5 -> "7.5"``."""
    return str(int(second)) if float(second).is_integer() else repr(float(second))


def chunk_starts(start: float, stop: float, chunk_len: float) -> list[float]:
    """Start seconds of the ``chunk_len``-second chunks that overlap ``[start, stop]`` (in order)."""
    if stop < start:
        raise ValueError(f"window stop ({stop}) is before its start ({start})")
    first = math.floor(start / chunk_len)
    last = math.floor(stop / chunk_len)
    return [float(k * chunk_len) for k in range(first, last + 1)]


def read_window(
    paths: Sequence[str],
    chunk_starts: Sequence[float],
    start: float,
    stop: float,
    num_frames: int,
    sampling: str = "uniform",
    generator: torch.Generator | None = None,
) -> np.ndarray:
    """Sample ``num_frames`` frames from the window ``[start, stop]`` (absolute seconds) of a clip's files.

    One raw file is read with `eva02at_hf.video_io.read_clip`. Several chunks are put on one timeline (each
    frame's time = its chunk start + its own presentation time), the frames inside the window are sampled with
    `sample_frame_indices` exactly as for one file, and each chunk decodes its share, in time order. If no frame
    lies in the window, the frame on screen at ``start`` is used.

    Returns:
        ``np.ndarray`` of shape ``(num_frames, H, W, 3)``, uint8 RGB.

    Raises:
        VideoDecodeError: a file is missing, unreadable or has no frame.
    """
    if len(paths) != len(chunk_starts) or not paths:
        raise ValueError(
            f"`paths` and `chunk_starts` must be non-empty and of equal length, got {len(paths)} and "
            f"{len(chunk_starts)}"
        )
    if len(paths) == 1:
        offset = float(chunk_starts[0])
        return read_clip(paths[0], max(start - offset, 0.0), stop - offset, num_frames, sampling, generator)
    local = [frame_timestamps(path) for path in paths]
    times = np.concatenate([ts + offset for ts, offset in zip(local, chunk_starts, strict=True)])
    order = np.argsort(times, kind="stable")
    times = times[order]
    owner = np.concatenate([np.full(len(ts), k) for k, ts in enumerate(local)])[order]
    local_times = np.concatenate(local)[order]
    inside = np.flatnonzero((times >= start) & (times <= stop))
    if inside.size == 0:
        inside = np.array([max(int(np.searchsorted(times, start, side="right")) - 1, 0)])
    chosen = inside[sample_frame_indices(inside.size, num_frames, sampling, generator)]
    parts = {
        int(k): decode_frames(paths[k], local_times[chosen[owner[chosen] == k]])
        for k in np.unique(owner[chosen])
    }
    frames = np.empty((num_frames, *next(iter(parts.values())).shape[1:]), dtype=np.uint8)
    for k, decoded in parts.items():
        frames[owner[chosen] == k] = decoded
    return frames
