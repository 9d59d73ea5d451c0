"""Clip decoding throughput: seeking decode (`read_clip`) vs. decoding every frame vs. transformers' `load_video`,
then the cost of the train-time random-resized crop.

Writes a 15 s, 30 fps, 568x320 H.264 file, then decodes 16 uniformly sampled frames per clip, for
EK-100-like windows (random 1-4 s windows) and for the whole file, with each method on the same clips. The
second table transforms the decoded clips to 224 x 224 model input: evaluation (resize the short side, centre
crop), the training crop as the package does it (cut the random box from the decoded frame, then resize it: crop
before resize, what AVION's fused decode-crop does) and the alternative of resizing the whole frame first and
cropping the resized frame (crop after a full-size resize).

Usage: ``python benchmarks/bench_decode.py [--clips 12] [--gop 250]``
"""

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import torch
from transformers.video_utils import load_video

from eva02at_hf.video_io import frame_timestamps, read_clip, sample_frame_indices

FPS, SECONDS, WIDTH, HEIGHT, NUM_FRAMES = 30, 15, 568, 320, 16

Window = tuple[float | None, float | None]


def write_test_video(path: Path, gop: int) -> None:
    """Moving textured gradient, so that the encoder has real motion to code."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 64, size=(HEIGHT, WIDTH * 2, 3), dtype=np.uint8)
    ramp = np.linspace(0, 191, WIDTH * 2, dtype=np.uint8)[None, :, None]
    canvas = texture + ramp
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.gop_size = gop
        for i in range(FPS * SECONDS):
            shift = (4 * i) % WIDTH
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(canvas[:, shift : shift + WIDTH]), format="rgb24"
            )
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def window_frame_indices(times: np.ndarray, window: Window) -> np.ndarray:
    """Frame indices (into the whole file) that `read_clip` samples for ``window``: same rule for all methods."""
    start, end = window
    inside = np.flatnonzero((times >= (start or 0.0)) & (times <= (end if end is not None else np.inf)))
    return inside[sample_frame_indices(len(inside), NUM_FRAMES, "uniform")]


def decode_seek(path: str, window: Window, indices: np.ndarray) -> np.ndarray:
    return read_clip(path, window[0], window[1], NUM_FRAMES)


def decode_every_frame(path: str, window: Window, indices: np.ndarray) -> np.ndarray:
    wanted = set(indices.tolist())
    with av.open(path) as container:
        frames = {
            i: frame.to_ndarray(format="rgb24")
            for i, frame in enumerate(container.decode(video=0))
            if i in wanted
        }
    return np.stack([frames[i] for i in indices])


def decode_transformers(
    path: str, window: Window, indices: np.ndarray, backend: str | None = None
) -> np.ndarray:
    kwargs = {} if backend is None else {"backend": backend}
    video, _ = load_video(path, sample_indices_fn=lambda metadata, **_: indices, **kwargs)
    return video


def transform_methods() -> dict[str, Callable[[np.ndarray, torch.Generator], torch.Tensor]]:
    """Decoded (T, H, W, 3) clip -> (T, 3, 224, 224) model input, three ways, with the package's processor."""
    from eva02at_hf import EVA02ATVideoProcessor

    processor = EVA02ATVideoProcessor()

    def evaluation(frames: np.ndarray, generator: torch.Generator) -> torch.Tensor:
        return processor(videos=[frames], do_sample_frames=False, return_tensors="pt")["pixel_values"]

    def crop_then_resize(frames: np.ndarray, generator: torch.Generator) -> torch.Tensor:
        return processor(
            videos=[frames],
            do_sample_frames=False,
            do_random_resized_crop=True,
            seed=generator,
            return_tensors="pt",
        )["pixel_values"]

    def resize_then_crop(frames: np.ndarray, generator: torch.Generator) -> torch.Tensor:
        resized = (
            processor(
                videos=[frames],
                do_sample_frames=False,
                do_rescale=False,
                do_normalize=False,
                do_center_crop=False,
                return_tensors="pt",
            )["pixel_values"][0]
            .round()
            .clamp(0, 255)
            .to(torch.uint8)
        )
        return crop_then_resize(resized, generator)

    return {
        "resize + centre crop (evaluation)": evaluation,
        "random crop, then resize (ours)": crop_then_resize,
        "resize full frame, then random crop": resize_then_crop,
    }


def bench_transforms(clips: list[np.ndarray]) -> None:
    print(f"\n{'train-time transform of a decoded clip':<40} {'clips/s':>8} {'vs eval':>9}")
    baseline = None
    for name, fn in transform_methods().items():
        generator = torch.Generator().manual_seed(0)
        fn(clips[0], generator)  # warm-up
        start = time.perf_counter()
        for frames in clips:
            fn(frames, generator)
        rate = len(clips) / (time.perf_counter() - start)
        baseline = baseline or rate
        print(f"{name:<40} {rate:>8.2f} {rate / baseline:>8.2f}x")


def bench(fn: Callable, path: str, clips: list[tuple[Window, np.ndarray]]) -> tuple[float, np.ndarray]:
    fn(path, *clips[0])  # warm-up
    start = time.perf_counter()
    outputs = [fn(path, window, indices) for window, indices in clips]
    return len(clips) / (time.perf_counter() - start), outputs[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--gop", type=int, default=250, help="keyframe interval (ffmpeg/x264 default: 250)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "bench.mp4")
        write_test_video(path, args.gop)
        times = frame_timestamps(path)
        rng = np.random.default_rng(0)
        short = []
        for _ in range(args.clips):
            length = rng.uniform(1.0, 4.0)
            start = rng.uniform(0.0, SECONDS - length)
            short.append((round(start, 3), round(start + length, 3)))
        scenarios = {
            "1-4 s windows": [(w, window_frame_indices(times, w)) for w in short],
            "whole 15 s file": [((None, None), window_frame_indices(times, (None, None)))] * args.clips,
        }
        methods: dict[str, Callable] = {
            "PyAV decode every frame (baseline)": decode_every_frame,
            "read_clip (seek, ours)": decode_seek,
            "transformers load_video (default=pyav)": decode_transformers,
            "transformers load_video torchcodec": lambda p, w, i: decode_transformers(p, w, i, "torchcodec"),
        }
        print(
            f"{WIDTH}x{HEIGHT} H.264, {FPS} fps, {SECONDS} s, GOP {args.gop}, {NUM_FRAMES} frames/clip, {args.clips} clips"
        )
        print(f"{'method':<40} {'scenario':<16} {'clips/s':>8} {'vs base':>9}")
        for scenario, clips in scenarios.items():
            baseline, reference = None, None
            for name, fn in methods.items():
                try:
                    rate, output = bench(fn, path, clips)
                except (ImportError, RuntimeError, ValueError, TypeError) as err:
                    print(f"{name:<40} {scenario:<16} {'n/a':>8}   ({type(err).__name__}: {str(err)[:70]})")
                    continue
                baseline = baseline or rate
                reference = output if reference is None else reference
                same = "" if np.array_equal(output, reference) else "  (frames differ!)"
                print(f"{name:<40} {scenario:<16} {rate:>8.2f} {rate / baseline:>8.2f}x{same}")
        bench_transforms(
            [decode_seek(path, window, indices) for window, indices in scenarios["1-4 s windows"]]
        )


if __name__ == "__main__":
    main()
