"""Video decoding with PyAV: frame timestamps from packet pts, frame sampling, seeking decode.

Clips in EK-100 / Ego4D are windows ``[start, end]`` (seconds) of long videos. Frames are addressed by their
presentation timestamps, read from demuxed packets (no decoding), because ``stream.frames`` is 0 for
WebM/MKV and unreliable for variable frame rate video. Decoding seeks to the keyframe before the first
requested frame and stops after the last one.

Building blocks for custom loaders (e.g. a window straddling two chunk files):

>>> ts = frame_timestamps("chunk0.mp4")                    # (T,) seconds, sorted
>>> idx = sample_frame_indices(len(ts), 16, "uniform")     # (16,) indices into ts
>>> frames = decode_frames("chunk0.mp4", ts[idx])          # (16, H, W, 3) uint8
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from fractions import Fraction

import av
import numpy as np
import torch

logger = logging.getLogger(__name__)

SAMPLING_MODES = ("uniform", "segment_random")
_EPS = 1e-6  # seconds; absorbs float rounding of pts * time_base at window bounds


class VideoDecodeError(ValueError):
    """A video file cannot be opened or decoded in the requested window.

    Attributes:
        path: the video file.
        start, end: the requested window in seconds (``None`` = file start / file end).
    """

    def __init__(
        self, path: str | os.PathLike, reason: str, start: float | None = None, end: float | None = None
    ):
        self.path = os.fspath(path)
        self.start = start
        self.end = end
        window = "whole file" if start is None and end is None else f"window [{start}, {end}] s"
        super().__init__(f"Cannot decode video '{self.path}' ({window}): {reason}")


def _open(path: str | os.PathLike, start: float | None = None, end: float | None = None):
    """Open ``path`` with PyAV; returns ``(container, video_stream)`` or raises `VideoDecodeError`."""
    if not os.path.isfile(path):
        raise VideoDecodeError(path, "file does not exist", start, end)
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(path, "file is empty", start, end)
    try:
        container = av.open(os.fspath(path))
    except av.FFmpegError as err:
        raise VideoDecodeError(path, f"not a readable video container ({err})", start, end) from err
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(path, "file has no video stream", start, end)
    return container, container.streams.video[0]


def _to_pts(seconds: float, time_base: Fraction) -> int:
    """Seconds -> stream pts ticks (nearest tick)."""
    return round(Fraction(seconds).limit_denominator(10**9) / time_base)


def _packet_pts(
    container, stream, start: float | None = None, end: float | None = None
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Sorted pts of the packets of ``stream`` and of its keyframes, demuxed without decoding, and whether the
    demuxer hit EOF.

    With ``start`` the demuxer first seeks to the keyframe at or before ``start`` (so the frame on screen at
    ``start`` is included); with ``end`` it stops at the first packet whose dts is past ``end`` (pts >= dts,
    so no later packet can be inside the window).
    """
    if start is not None:
        container.seek(_to_pts(start, stream.time_base), stream=stream, backward=True)
    end_pts = None if end is None else _to_pts(end, stream.time_base)
    pts, key_pts = [], []
    reached_eof = True
    for packet in container.demux(stream):
        ts = packet.pts if packet.pts is not None else packet.dts
        if ts is None:
            continue
        if end_pts is not None and packet.dts is not None and packet.dts > end_pts:
            reached_eof = False
            break
        pts.append(ts)
        if packet.is_keyframe:
            key_pts.append(ts)
    return (
        np.unique(np.asarray(pts, dtype=np.int64)),
        np.unique(np.asarray(key_pts, dtype=np.int64)),
        reached_eof,
    )


def _check_not_truncated(container, path, times: np.ndarray, start: float | None, end: float | None) -> None:
    """Raise if the frames stop well before the duration the container declares (a truncated file).

    Only the part of the file that the window ``[start, end]`` needs is checked; the tolerance is two frame
    intervals (at least 0.1 s), so a final frame shown until the declared end is not flagged.
    """
    if container.duration is None:
        return
    declared_end = (container.duration + (container.start_time or 0)) / av.time_base
    needed = declared_end if end is None else min(end, declared_end)
    interval = float(np.median(np.diff(times))) if times.size > 1 else 0.0
    if times[-1] < needed - max(0.1, 2 * interval):
        raise VideoDecodeError(
            path,
            f"file is truncated: frames stop at {times[-1]:.3f} s but the container declares {declared_end:.3f} s",
            start,
            end,
        )


def _window_times(
    container, stream, path, start: float | None, end: float | None
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Sorted frame and keyframe times (seconds) from the keyframe before ``start`` to ``end`` (``None``: file
    start / end), and whether they run to the end of the file."""
    try:
        pts, key_pts, reached_eof = _packet_pts(container, stream, start, end)
    except av.FFmpegError as err:
        raise VideoDecodeError(path, f"demuxing failed ({err})", start, end) from err
    if pts.size == 0:
        raise VideoDecodeError(path, "no video frames found", start, end)
    times = pts * float(stream.time_base)
    if reached_eof:
        _check_not_truncated(container, path, times, start, end)
    return times, key_pts * float(stream.time_base), reached_eof


def frame_timestamps(path: str | os.PathLike) -> np.ndarray:
    """Presentation time (seconds, float64, sorted) of every frame of the first video stream.

    Read from demuxed packet pts without decoding, so it works where ``stream.frames`` is 0 (WebM/MKV) and
    for variable frame rate video. Times are on the container timeline (``pts * time_base``).

    Raises:
        VideoDecodeError: missing, empty, non-video, unreadable or truncated file, or no frame in it.
    """
    container, stream = _open(path)
    try:
        return _window_times(container, stream, path, None, None)[0]
    finally:
        container.close()


def sample_frame_indices(
    num_available: int, num_frames: int, sampling: str, generator: torch.Generator | None = None
) -> np.ndarray:
    """Pick ``num_frames`` indices in ``[0, num_available)``, one per equal segment (TSN-style sampling).

    The ``num_available`` frames are split into ``num_frames`` equal segments; segment ``i`` covers
    ``[i * n / N, (i + 1) * n / N)`` in frame units and contributes the frame at position ``(i + u_i) * n / N``:
    ``u_i = 0.5`` (segment centre) for ``"uniform"``, ``u_i ~ U[0, 1)`` for ``"segment_random"`` (drawn from
    ``generator``, or torch's global RNG when ``None``). With fewer frames than asked, segments are shorter
    than a frame and indices repeat; indices never leave the valid range.

    Returns:
        ``np.ndarray`` of shape ``(num_frames,)``, int64, non-decreasing.
    """
    if num_available < 1:
        raise ValueError(f"`num_available` must be >= 1, got {num_available}.")
    if num_frames < 1:
        raise ValueError(f"`num_frames` must be >= 1, got {num_frames}.")
    segments = np.arange(num_frames, dtype=np.int64)
    if sampling == "uniform":
        indices = (2 * segments + 1) * num_available // (2 * num_frames)
    elif sampling == "segment_random":
        offsets = torch.rand(num_frames, generator=generator, dtype=torch.float64).numpy()
        indices = np.floor((segments + offsets) * num_available / num_frames).astype(np.int64)
    else:
        raise ValueError(f"`sampling` must be one of {SAMPLING_MODES}, got {sampling!r}.")
    return np.minimum(indices, num_available - 1)


def _decode_at(container, stream, targets: np.ndarray) -> list[np.ndarray]:
    """Decode the frame on screen at each of the sorted unique pts ``targets`` (the last frame with pts <= t).

    Seeks to the keyframe before ``targets[0]`` and decodes forward until the last target is passed.
    A target before the first decoded frame gets that frame; targets after the last decoded frame get the last.
    """
    container.seek(int(targets[0]), stream=stream, backward=True)
    frames: list[np.ndarray] = []
    previous = None
    for frame in container.decode(stream):
        if frame.pts is None:
            continue
        while len(frames) < len(targets) and frame.pts > targets[len(frames)]:
            frames.append((previous if previous is not None else frame).to_ndarray(format="rgb24"))
        if len(frames) == len(targets):
            return frames
        previous = frame
    if previous is None:
        raise EOFError("no frame could be decoded")
    last = previous.to_ndarray(format="rgb24")
    return frames + [last] * (len(targets) - len(frames))


def _seek_runs(targets: np.ndarray, keyframes: np.ndarray | None) -> list[np.ndarray]:
    """Split sorted target pts where a keyframe lies between two targets: re-seeking there skips decoding the
    frames in between. Without keyframe information all targets form one run."""
    if keyframes is None or keyframes.size == 0:
        return [targets]
    gop = np.searchsorted(keyframes, targets, side="right")
    return np.split(targets, np.flatnonzero(np.diff(gop) > 0) + 1)


def _decode_timestamps(
    container,
    stream,
    path,
    timestamps: np.ndarray,
    start: float | None,
    end: float | None,
    keyframes: np.ndarray | None = None,
) -> np.ndarray:
    """Frames shown at ``timestamps`` (seconds), re-seeking at keyframes (seconds) between requested frames."""
    pts = np.asarray([_to_pts(t, stream.time_base) for t in timestamps], dtype=np.int64)
    unique, inverse = np.unique(pts, return_inverse=True)
    key_pts = None if keyframes is None else np.asarray([_to_pts(t, stream.time_base) for t in keyframes])
    try:
        frames = [
            frame for run in _seek_runs(unique, key_pts) for frame in _decode_at(container, stream, run)
        ]
    except (av.FFmpegError, EOFError) as err:
        raise VideoDecodeError(path, f"decoding failed ({err})", start, end) from err
    return np.stack(frames)[inverse.reshape(-1)]


def decode_frames(path: str | os.PathLike, timestamps: Sequence[float]) -> np.ndarray:
    """Decode the frames shown at ``timestamps`` (seconds; any order, repeats allowed).

    Seeks to the keyframe before the earliest requested time instead of decoding the whole file; each time
    maps to the last frame whose presentation time is <= it (exact for times from `frame_timestamps`).

    Returns:
        ``np.ndarray`` of shape ``(len(timestamps), H, W, 3)``, uint8 RGB, in the order of ``timestamps``.
    """
    timestamps = np.asarray(timestamps, dtype=np.float64).reshape(-1)
    if timestamps.size == 0:
        raise ValueError("`timestamps` must contain at least one time.")
    start, end = float(timestamps.min()), float(timestamps.max())
    container, stream = _open(path, start, end)
    try:
        return _decode_timestamps(container, stream, path, timestamps, start, end)
    finally:
        container.close()


def _window_indices(times: np.ndarray, start: float | None, end: float | None) -> np.ndarray:
    """Indices of the frames with ``start <= time <= end``; if none, the frame on screen at ``start``."""
    lo = 0 if start is None else int(np.searchsorted(times, start - _EPS, side="left"))
    hi = len(times) if end is None else int(np.searchsorted(times, end + _EPS, side="right"))
    if hi > lo:
        return np.arange(lo, hi)
    return np.array([min(max(lo - 1, 0), len(times) - 1)])


def check_window(path: str | os.PathLike, start: float | None, end: float | None) -> None:
    """Raise `VideoDecodeError` unless ``[start, end]`` is a valid window: finite numbers of seconds (or None),
    ``start >= 0``, ``end >= 0`` and ``end >= start``."""
    for name, value in (("start", start), ("end", end)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise VideoDecodeError(
                path, f"bad window: {name} {value!r} is not a number of seconds", start, end
            )
        if not math.isfinite(value):
            raise VideoDecodeError(path, f"bad window: {name} {value} is not finite", start, end)
        if value < 0:
            raise VideoDecodeError(path, f"bad window: {name} {value} must be >= 0", start, end)
    if start is not None and end is not None and end < start:
        raise VideoDecodeError(path, "bad window: end is before its start", start, end)


def _check_window_in_file(path, times: np.ndarray, start: float | None, end: float | None) -> None:
    """With ``times`` running to the end of the file: refuse a window starting after the last frame has been
    shown (it would repeat that frame); warn when it only runs past the end (it is clamped to the last frame)."""
    interval = float(np.median(np.diff(times))) if times.size > 1 else 0.0
    last_shown = times[-1] + interval
    if start is not None and start > last_shown + _EPS:
        raise VideoDecodeError(
            path, f"bad window: starts after the video's last frame (at {times[-1]:.3f} s)", start, end
        )
    if end is not None and end > last_shown + max(interval, _EPS):
        logger.warning(
            "%s: window [%s, %s] s runs past the video's end (last frame at %.3f s); clamped to the last frame",
            path,
            start,
            end,
            times[-1],
        )


def read_clip(
    path: str | os.PathLike,
    start: float | None,
    end: float | None,
    num_frames: int,
    sampling: str = "uniform",
    generator: torch.Generator | None = None,
) -> np.ndarray:
    """Sample ``num_frames`` frames from the window ``[start, end]`` seconds of a video file.

    The frames whose presentation time lies in the window are split into equal segments
    (`sample_frame_indices`). Only the window is demuxed and decoded, re-seeking at keyframes between sampled
    frames. A window holding fewer frames than asked repeats frames; a window between two frames uses the frame on
    screen at ``start``. A window that runs past the end of the file is clamped to its last frame, with a logged
    warning; one that starts after the last frame has been shown is refused. ``None`` bounds mean the start / end
    of the file.

    Returns:
        ``np.ndarray`` of shape ``(num_frames, H, W, 3)``, uint8 RGB.

    Raises:
        VideoDecodeError: missing / empty / truncated / non-video file, or an invalid window (non-finite or
            negative bounds, end before start, start after the last frame).
    """
    check_window(path, start, end)
    container, stream = _open(path, start, end)
    try:
        times, keyframes, reached_eof = _window_times(container, stream, path, start, end)
        if reached_eof:
            _check_window_in_file(path, times, start, end)
        window = _window_indices(times, start, end)
        chosen = window[sample_frame_indices(len(window), num_frames, sampling, generator)]
        return _decode_timestamps(container, stream, path, times[chosen], start, end, keyframes)
    finally:
        container.close()
