"""Video processor for EVA02-AT: PyAV window decoding, segment frame sampling, EVA02-CLIP transforms."""

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import numpy as np
import PIL.Image
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from transformers.image_processing_utils import BatchFeature
from transformers.image_utils import (
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    ChannelDimension,
    PILImageResampling,
    SizeDict,
    infer_channel_dimension_format,
    pil_torch_interpolation_mapping,
)
from transformers.processing_utils import Unpack, VideosKwargs
from transformers.utils import TensorType, logging
from transformers.video_processing_utils import BaseVideoProcessor
from transformers.video_utils import VideoInput, VideoMetadata, is_valid_video

from .video_io import VideoDecodeError, read_clip, sample_frame_indices

logger = logging.get_logger(__name__)

TimeInput = float | int | np.number | Sequence[float | int | np.number | None] | np.ndarray | None


class EVA02ATVideoProcessorKwargs(VideosKwargs, total=False):
    """
    sampling (`"uniform"` or `"segment_random"`):
        One frame per equal segment of the window: its centre (evaluation) or a random one (training).
    start_time, end_time (`float` or a sequence with one value per video, *optional*):
        Clip window in seconds inside each video file (`None` = start / end of the file).
    seed (`int` or `torch.Generator`, *optional*):
        Makes `segment_random` sampling and the train-time augmentations reproducible. `None` uses torch's
        global RNG.
    on_error (`"raise"` or `"skip"`):
        With `"skip"`, clips whose file cannot be decoded are left out and listed in `failed_indices`.
    do_random_resized_crop (`bool`):
        Train mode: one random-resized crop per clip (same box for all frames) instead of resize + center crop.
    crop_scale (`tuple[float, float]`):
        Area fraction range of the random-resized crop.
    do_flip (`bool`):
        Random horizontal flip (p = 0.5) per clip.
    """

    sampling: Literal["uniform", "segment_random"] | None
    start_time: TimeInput
    end_time: TimeInput
    seed: int | torch.Generator | None
    on_error: Literal["raise", "skip"] | None
    do_random_resized_crop: bool | None
    crop_scale: tuple[float, float] | list[float] | None
    do_flip: bool | None


def make_video_list(videos: VideoInput | str | os.PathLike) -> list[str | np.ndarray | torch.Tensor]:
    """Flatten ``videos`` into a list with one entry per video: a path, a 4D array / tensor.

    Accepts a path, a list of paths, one in-memory video (numpy ``(T, H, W, C)``, torch ``(T, C, H, W)``, or a
    list of PIL images / 3D arrays), a list of such videos, or a 5D batch.
    """
    if isinstance(videos, (str, os.PathLike)) or is_valid_video(videos):
        videos = [videos]
    elif isinstance(videos, (np.ndarray, torch.Tensor)) and videos.ndim == 5:
        videos = list(videos)
    if not isinstance(videos, (list, tuple)) or len(videos) == 0:
        raise ValueError(
            f"`videos` must be a path, an in-memory video or a non-empty list of them, got {videos!r}."
        )
    flat = []
    for i, video in enumerate(videos):
        if isinstance(video, (str, os.PathLike)):
            flat.append(os.fspath(video))
        elif isinstance(video, (np.ndarray, torch.Tensor)) and video.ndim == 4:
            flat.append(video)
        elif is_valid_video(video):
            frames = [np.asarray(f.convert("RGB")) if isinstance(f, PIL.Image.Image) else f for f in video]
            flat.append(torch.stack(frames) if isinstance(frames[0], torch.Tensor) else np.stack(frames))
        else:
            raise ValueError(
                f"`videos[{i}]` is not a path or a video (4D array/tensor or list of frames), got {type(video)}."
            )
    return flat


def _per_video(value: TimeInput, num_videos: int, name: str) -> list[float | None]:
    """Broadcast a window bound to one value per video."""
    if value is None or np.ndim(value) == 0:
        return [None if value is None else float(value)] * num_videos
    values = list(value)
    if len(values) != num_videos:
        raise ValueError(f"`{name}` has {len(values)} values but {num_videos} videos were given.")
    return [None if v is None else float(v) for v in values]


def _to_channels_first(
    video: np.ndarray | torch.Tensor, input_data_format: str | ChannelDimension | None = None
) -> torch.Tensor:
    """(T, H, W, C) or (T, C, H, W) array / tensor -> (T, C, H, W) tensor; the layout is `input_data_format`, or
    inferred when `None`."""
    if isinstance(video, np.ndarray):
        video = torch.from_numpy(np.ascontiguousarray(video))
    if input_data_format is None:
        input_data_format = infer_channel_dimension_format(video, num_channels=(1, 3, 4))
    if ChannelDimension(input_data_format) == ChannelDimension.LAST:
        video = video.permute(0, 3, 1, 2)
    return video.contiguous()


def _per_video_metadata(
    video_metadata: Any, videos: list[str | np.ndarray | torch.Tensor]
) -> list[VideoMetadata | None]:
    """One `VideoMetadata` per in-memory video (`None` for files, which are sampled by their window), from `None`,
    a dict / `VideoMetadata`, or a (nested) list of them; `total_num_frames` defaults to the video's length."""
    if video_metadata is None:
        entries: list[Any] = [None] * len(videos)
    else:
        pending = (
            [video_metadata] if isinstance(video_metadata, (dict, VideoMetadata)) else list(video_metadata)
        )
        entries = []
        while pending:
            entry = pending.pop(0)
            if isinstance(entry, (list, tuple)):
                pending[:0] = list(entry)
            else:
                entries.append(entry)
        if len(entries) != len(videos):
            raise ValueError(
                f"`video_metadata` has {len(entries)} entries but {len(videos)} videos were given."
            )
    metadata = []
    for entry, video in zip(entries, videos, strict=True):
        fields = {"total_num_frames": len(video), **(dict(entry) if entry is not None else {})}
        metadata.append(None if isinstance(video, str) else VideoMetadata(**fields))
    return metadata


@contextlib.contextmanager
def _rng_from(generator: torch.Generator | None) -> Iterator[None]:
    """Run torchvision's random transforms (global RNG) seeded from ``generator``; no-op when ``None``."""
    if generator is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
        yield


class EVA02ATVideoProcessor(BaseVideoProcessor):
    r"""
    Turns video files (with optional ``[start_time, end_time]`` windows) or in-memory videos into
    ``pixel_values`` of shape ``(batch, num_frames, 3, H, W)``.

    Files are decoded with PyAV, seeking to the window (`eva02at_hf.video_io.read_clip`); in-memory videos are
    sampled with the same segment rule (`sample_frame_indices`). Eval transform: resize the short side to
    ``size["shortest_edge"]`` (bicubic), center crop ``crop_size``; train transform
    (``do_random_resized_crop=True``): random-resized crop to ``crop_size`` with area in ``crop_scale``,
    optional flip. Then rescale by 1/255 and normalise with the EVA02-CLIP (OpenAI CLIP) mean / std.
    """

    resample = PILImageResampling.BICUBIC
    image_mean = OPENAI_CLIP_MEAN
    image_std = OPENAI_CLIP_STD
    size = {"shortest_edge": 224}
    crop_size = {"height": 224, "width": 224}
    default_to_square = False
    do_resize = True
    do_center_crop = True
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = True
    do_convert_rgb = True
    do_sample_frames = True
    num_frames = 16
    fps = None
    sampling = "uniform"
    on_error = "raise"
    do_random_resized_crop = False
    crop_scale = (0.5, 1.0)
    do_flip = False
    valid_kwargs = EVA02ATVideoProcessorKwargs
    model_input_names = ["pixel_values"]

    def __init__(self, **kwargs: Unpack[EVA02ATVideoProcessorKwargs]) -> None:
        super().__init__(**kwargs)
        low, high = (float(v) for v in self.crop_scale)
        if not 0 < low <= high <= 1:
            raise ValueError(
                f"`crop_scale` must be (low, high) with 0 < low <= high <= 1, got {self.crop_scale}."
            )
        self.crop_scale = [low, high]  # a list, as JSON stores it: to_dict() is unchanged by a save / load

    def _option(self, kwargs: dict, name: str) -> Any:
        """Pop a call option from ``kwargs``, falling back to the processor's attribute."""
        value = kwargs.pop(name, None)
        return getattr(self, name) if value is None else value

    def sample_frames(
        self,
        metadata: VideoMetadata,
        num_frames: int | None = None,
        fps: float | None = None,
        sampling: str | None = None,
        generator: torch.Generator | None = None,
        **kwargs: Any,
    ) -> np.ndarray:
        """Indices of the frames to keep from an in-memory video, by transformers' contract: `num_frames` frames or
        `fps` frames per second of a `metadata.fps` video (mutually exclusive; the processor's `fps`, else its
        `num_frames`, when neither is given), one per equal segment of the video (`sampling`, see
        `sample_frame_indices`). Asking for more frames than `metadata.total_num_frames` raises."""
        if fps is not None and num_frames is not None:
            raise ValueError("`num_frames` and `fps` are mutually exclusive arguments, please use only one!")
        if fps is None and num_frames is None:
            fps = self.fps
            num_frames = self.num_frames if fps is None else None
        total = metadata.total_num_frames
        if num_frames is None:
            if metadata.fps is None:
                raise ValueError(
                    f"Sampling at fps={fps} needs the video's own frame rate: pass `video_metadata` with `fps` "
                    "(or use `num_frames`)."
                )
            num_frames = max(1, int(total / metadata.fps * fps))
        if num_frames > total:
            raise ValueError(
                f"Cannot sample num_frames={num_frames} frames from a video of total_num_frames={total}; ask for "
                "fewer frames (or a lower fps)."
            )
        return sample_frame_indices(total, num_frames, sampling or self.sampling, generator)

    def _load_clip(
        self,
        video: str | np.ndarray | torch.Tensor,
        metadata: VideoMetadata | None,
        start: float | None,
        end: float | None,
        sample: dict[str, Any],
        do_sample_frames: bool,
        input_data_format: str | ChannelDimension | None,
    ) -> torch.Tensor:
        """One video -> (T, C, H, W) tensor. `sample` holds `sample_frames`' arguments; `do_sample_frames=False`
        keeps every frame of an in-memory video.

        A file is decoded in its ``[start, end]`` window with `read_clip` (a window with fewer frames than asked
        repeats frames, as the egocentric training recipes expect); ``fps`` there needs both window bounds.
        """
        if isinstance(video, str):
            num_frames, fps = sample["num_frames"], sample["fps"]
            if fps is None and num_frames is None:
                fps = self.fps
            if fps is not None:
                if start is None or end is None:
                    raise ValueError(
                        f"Sampling {video} at fps={fps} needs `start_time` and `end_time`; or pass `num_frames`."
                    )
                num_frames = max(1, int((end - start) * fps))
            num_frames = num_frames or self.num_frames
            clip = read_clip(video, start, end, num_frames, sample["sampling"], sample["generator"])
            return _to_channels_first(clip)
        if start is not None or end is not None:
            raise ValueError(
                "`start_time` / `end_time` apply to video files; trim in-memory videos before passing them."
            )
        if len(video) == 0:
            raise ValueError("An in-memory video has no frames.")
        video = _to_channels_first(video, input_data_format)
        if do_sample_frames:
            video = video[torch.from_numpy(self.sample_frames(metadata, **sample))]
        return video

    def preprocess(self, videos: VideoInput, **kwargs: Unpack[EVA02ATVideoProcessorKwargs]) -> BatchFeature:
        """Decode, sample and transform ``videos``; see the class docstring.

        In-memory videos are sampled with `sample_frames` (``num_frames`` or ``fps`` with ``video_metadata``);
        ``do_sample_frames=False`` keeps all their frames. Files are decoded in their windows.

        Returns:
            `BatchFeature` with ``pixel_values`` (``(B, T, 3, H, W)`` with ``return_tensors="pt"``), plus
            ``failed_indices`` (input positions of the skipped clips) when ``on_error="skip"``.
        """
        on_error = self._option(kwargs, "on_error")
        if on_error not in ("raise", "skip"):
            raise ValueError(f"`on_error` must be 'raise' or 'skip', got {on_error!r}.")
        seed = kwargs.pop("seed", None)
        generator = torch.Generator().manual_seed(seed) if isinstance(seed, int) else seed
        sample = {
            "num_frames": kwargs.pop("num_frames", None),
            "fps": kwargs.pop("fps", None),
            "sampling": self._option(kwargs, "sampling"),
            "generator": generator,
        }
        do_sample_frames = self._option(kwargs, "do_sample_frames")
        input_data_format = kwargs.pop("input_data_format", None)
        videos = make_video_list(videos)
        metadata = _per_video_metadata(kwargs.pop("video_metadata", None), videos)
        starts = _per_video(kwargs.pop("start_time", None), len(videos), "start_time")
        ends = _per_video(kwargs.pop("end_time", None), len(videos), "end_time")

        clips, failed = [], []
        for i, (video, info, start, end) in enumerate(zip(videos, metadata, starts, ends, strict=True)):
            try:
                clips.append(
                    self._load_clip(video, info, start, end, sample, do_sample_frames, input_data_format)
                )
            except VideoDecodeError as err:
                if on_error == "raise":
                    raise
                logger.warning(f"Skipping video {i}: {err}")
                failed.append(i)

        if clips:
            batch = super().preprocess(
                clips,
                do_sample_frames=False,
                input_data_format=ChannelDimension.FIRST,
                seed=generator,
                **kwargs,
            )
            batch["pixel_values"] = batch.pop("pixel_values_videos")
        else:
            batch = BatchFeature({"pixel_values": []})
        if on_error == "skip":
            batch["failed_indices"] = failed
        return batch

    def _augment(
        self,
        videos: list[torch.Tensor],
        do_random_resized_crop: bool,
        crop_size: SizeDict,
        crop_scale: Sequence[float],
        do_flip: bool,
        resample: PILImageResampling,
        generator: torch.Generator | None,
    ) -> list[torch.Tensor]:
        """Train-time augmentation with torchvision v2; one set of random parameters per clip."""
        transforms = []
        if do_random_resized_crop:
            interpolation = pil_torch_interpolation_mapping[resample]
            size = (crop_size.height, crop_size.width)
            transforms.append(
                v2.RandomResizedCrop(size, scale=tuple(crop_scale), interpolation=interpolation)
            )
        if do_flip:
            transforms.append(v2.RandomHorizontalFlip())
        augment = v2.Compose(transforms)
        augmented = []
        for video in videos:
            with _rng_from(generator):
                augmented.append(augment(tv_tensors.Video(video)).as_subclass(torch.Tensor))
        return augmented

    def _preprocess(
        self,
        videos: list[torch.Tensor],
        do_resize: bool,
        do_center_crop: bool,
        crop_size: SizeDict,
        resample: PILImageResampling,
        do_random_resized_crop: bool,
        crop_scale: Sequence[float],
        do_flip: bool,
        seed: torch.Generator | None = None,
        return_tensors: str | TensorType | None = None,
        **kwargs,
    ) -> BatchFeature:
        if do_random_resized_crop or do_flip:
            videos = self._augment(
                videos, do_random_resized_crop, crop_size, crop_scale, do_flip, resample, seed
            )
        if do_random_resized_crop:
            do_resize = do_center_crop = False
        return super()._preprocess(
            videos,
            do_resize=do_resize,
            do_center_crop=do_center_crop,
            crop_size=crop_size,
            resample=resample,
            return_tensors=return_tensors,
            **kwargs,
        )


__all__ = ["EVA02ATVideoProcessor", "EVA02ATVideoProcessorKwargs", "make_video_list"]
