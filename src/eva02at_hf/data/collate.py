"""Batching dataset rows into model inputs: `ClipBatcher`, the package's one "decode clip -> processor" path.

Training (`eva02at_hf.training.TrainingCollator`), evaluation (`eva02at_hf.training.embed_clips`,
`evaluate_egomcq`), `eva02at extract` / `eva02at search` (`eva02at_hf.apps.features`) and the datasets transform
(`ClipTransform`) all turn clips into pixels here; the classes below only say which columns a row holds and what
to do with a clip that cannot be decoded. Clips are embedded by `eva02at_hf.training.embedding.embed_videos`.

Rows are examples of the package's builders: ``video_paths``, ``chunk_starts``, ``start``, ``stop`` (see
`eva02at_hf.data.video_layout`), or a video file with an optional window: ``path``, ``start``, ``end`` (seconds,
``None`` = the file's start / end). With a ``DataLoader`` using worker processes each worker holds its own skip
counters; the warnings are logged from every worker.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from transformers.image_processing_utils import BatchFeature

from ..video_io import VideoDecodeError, read_clip
from .video_layout import read_window

logger = logging.getLogger(__name__)

_MAX_SKIPPED_IDS = 100
ON_ERROR = ("drop", "mask", "raise")
CLIP_COLUMNS = ("video_paths", "chunk_starts", "start", "stop")


def example_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed drawn from ``(seed, epoch, index)`` with numpy's SeedSequence."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def check_crop_scale(crop_scale: Sequence[float]) -> tuple[float, float]:
    """``(low, high)`` area fractions with 0 < low <= high <= 1, else a ValueError naming ``--crop_scale``."""
    values = tuple(float(v) for v in crop_scale)
    if len(values) != 2 or not 0 < values[0] <= values[1] <= 1:
        raise ValueError(
            f"--crop_scale must be two area fractions LOW HIGH with 0 < LOW <= HIGH <= 1, got {values}"
        )
    return values


class ClipPixels(NamedTuple):
    """Pixels of a list of rows, row-aligned: ``pixel_values`` ``(B, T, 3, H, W)`` (``(B, C, T, 3, H, W)`` for
    rows of C choices), zero where a clip could not be decoded; ``valid (B,)``; ``errors`` (the decode error of
    each row, ``None`` when decoded)."""

    pixel_values: torch.Tensor
    valid: torch.Tensor
    errors: list[str | None]


class ClipBatcher:
    """``collate_fn`` turning rows into ``pixel_values``, ``input_ids`` / ``attention_mask`` of ``text_column`` and
    the ``keep_columns``. It owns, for every path of the package that turns clips into pixels:

    * decoding: a builder row's window with `read_window` (several chunk files on one timeline), a file row's
      window with `eva02at_hf.video_io.read_clip`;
    * frame sampling: ``num_frames`` frames, one per equal segment of the window, its centre (``"uniform"``) or a
      random one (``"segment_random"``) drawn from a generator seeded by the row's ``frame_seed`` when it has one
      (so a clip's frames depend only on ``(seed, epoch, clip index)``, `example_seed`), else from ``generator``;
    * the train-time crop: with ``crop_scale``, one random-resized crop per clip to the processor's ``crop_size``
      whose area fraction lies in ``crop_scale`` (the same box for all its frames, no flip: the authors'
      augmentation), seeded by ``example_seed(frame_seed, 0, 1)`` (not the frame-sampling stream); the crop is cut
      from the decoded frame and then resized;
    * the evaluation transform otherwise: the processor's resize of the short side, centre crop and normalisation
      (the same pixels as ``processor(videos=frames, do_sample_frames=False)``);
    * bad videos: a missing / corrupt / truncated file raises `VideoDecodeError` naming the file (a stream row
      marked ``unusable`` an `OSError` with the reason). ``on_error`` says what happens to such a row:
      ``"drop"`` leaves it out of the batch (``None`` when every row is left out), ``"mask"`` keeps the batch's
      size with zero pixels and ``valid`` False (every process then gathers equal shapes), ``"raise"`` re-raises.
      Dropped and masked rows are counted (``num_seen``, ``num_skipped``, ``skipped_ids``: the only state a call
      changes) and logged with the error; the input rows are never modified.

    Embedding the clips, non-finite checks, progress bars and the distributed gather belong to
    `eva02at_hf.training.embedding.embed_videos`.

    Args:
        processor: an `EVA02ATProcessor` (its ``video_processor`` transforms the frames, its tokenizer the text).
        num_frames: frames sampled per clip window.
        sampling: ``"uniform"`` (evaluation) or ``"segment_random"`` (training).
        text_column: caption column; ``None`` for video-only batches.
        keep_columns: extra columns copied into the batch (numbers become tensors, others lists), e.g. the
            sentence index drawn by the hard-mining sampler.
        id_column: column naming a row in skip reports.
        choices_column: column holding each row's candidate clips (a list of clip rows, or a `datasets` list of
            structs); the row's pixels are then ``(C, T, 3, H, W)`` and the row is skipped if any choice fails.
        crop_scale: ``(low, high)`` area fractions of the train-time crop; ``None`` for the evaluation transform.
        on_error: ``"drop"``, ``"mask"`` or ``"raise"`` (see above).
        generator: RNG for ``segment_random`` sampling of rows without ``frame_seed`` (torch's global RNG when
            ``None``).
        processor_kwargs: video-processor options (e.g. ``do_resize=False``).
    """

    def __init__(
        self,
        processor: Any,
        num_frames: int = 16,
        sampling: str = "uniform",
        *,
        text_column: str | None = None,
        keep_columns: Sequence[str] = (),
        id_column: str = "id",
        choices_column: str | None = None,
        crop_scale: Sequence[float] | None = None,
        on_error: Literal["drop", "mask", "raise"] = "drop",
        generator: torch.Generator | None = None,
        **processor_kwargs: Any,
    ) -> None:
        if num_frames < 1:
            raise ValueError(f"`num_frames` must be >= 1, got {num_frames}")
        if on_error not in ON_ERROR:
            raise ValueError(f"`on_error` must be one of {ON_ERROR}, got {on_error!r}")
        self.processor = processor
        self.num_frames = num_frames
        self.sampling = sampling
        self.text_column = text_column
        self.keep_columns = tuple(keep_columns)
        self.id_column = id_column
        self.choices_column = choices_column
        self.crop_scale = None if crop_scale is None else check_crop_scale(crop_scale)
        self.on_error = on_error
        self.generator = generator
        self.processor_kwargs = processor_kwargs
        self.num_seen = 0
        self.num_skipped = 0
        self.skipped_ids: list[str] = []

    def frame_generator(self, row: dict[str, Any]) -> torch.Generator | None:
        """The RNG of the row's frame sampling: seeded by its ``frame_seed`` when present, else ``generator``."""
        if "frame_seed" in row:
            return torch.Generator().manual_seed(int(row["frame_seed"]))
        return self.generator

    def decode(self, clip: dict[str, Any], generator: torch.Generator | None = None) -> np.ndarray:
        """(num_frames, H, W, 3) uint8 frames of a clip row's window."""
        if clip.get("unusable"):  # a stream's row that could not be parsed or located (`EgoClipStream`)
            raise OSError(clip["unusable"])
        if "video_paths" in clip:
            return read_window(
                clip["video_paths"],
                clip["chunk_starts"],
                clip["start"],
                clip["stop"],
                self.num_frames,
                self.sampling,
                generator,
            )
        return read_clip(
            clip["path"], clip.get("start"), clip.get("end"), self.num_frames, self.sampling, generator
        )

    def transform(self, frames: np.ndarray, row: dict[str, Any]) -> torch.Tensor:
        """(T, H, W, 3) uint8 frames -> (T, 3, h, w) model input, cropped at random when ``crop_scale`` is set."""
        augment = {}
        if self.crop_scale is not None:
            seed = example_seed(int(row.get("frame_seed", 0)), 0, 1)  # not the frame-sampling stream
            augment = {"do_random_resized_crop": True, "crop_scale": self.crop_scale, "seed": seed}
        video_processor = getattr(self.processor, "video_processor", self.processor)
        outputs = video_processor(
            videos=[frames], do_sample_frames=False, return_tensors="pt", **augment, **self.processor_kwargs
        )
        return outputs["pixel_values"][0]

    def clips_of(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        """The clip rows of a row: its choices with ``choices_column``, else the row itself."""
        return _transpose(row[self.choices_column]) if self.choices_column else [row]

    def example(self, row: dict[str, Any]) -> torch.Tensor:
        """Pixels of one row: (T, 3, h, w), or (C, T, 3, h, w) with ``choices_column`` (decoded in order)."""
        generator = self.frame_generator(row)
        pixels = [self.transform(self.decode(clip, generator), row) for clip in self.clips_of(row)]
        return torch.stack(pixels) if self.choices_column else pixels[0]

    def pixels(self, rows: Sequence[dict[str, Any]]) -> ClipPixels:
        """Pixels of every row (zeros where a clip fails, unless ``on_error="raise"``), validity and errors."""
        examples: list[torch.Tensor | None] = []
        errors: list[str | None] = []
        for i, row in enumerate(rows):
            self.num_seen += 1
            try:
                examples.append(self.example(row))
                errors.append(None)
            except (VideoDecodeError, OSError) as err:
                if self.on_error == "raise":
                    raise
                self.skip(row, i, err)
                examples.append(None)
                errors.append(str(err))
        first = next((pixels for pixels in examples if pixels is not None), None)
        blank = torch.zeros(self._blank_shape(rows)) if first is None else torch.zeros_like(first)
        pixel_values = torch.stack([blank if p is None else p for p in examples]) if rows else blank[None][:0]
        valid = torch.tensor([error is None for error in errors], dtype=torch.bool)
        return ClipPixels(pixel_values, valid, errors)

    def _blank_shape(self, rows: Sequence[dict[str, Any]]) -> tuple[int, ...]:
        """Shape of a row's pixels when none of the batch could be decoded: the processor's crop."""
        crop = getattr(self.processor, "video_processor", self.processor).crop_size
        shape = (self.num_frames, 3, crop["height"], crop["width"])
        return (len(self.clips_of(rows[0])), *shape) if self.choices_column and rows else shape

    def skip(self, row: dict[str, Any], position: int, error: Exception) -> None:
        """Count and log a skipped row."""
        row_id = str(row.get(self.id_column, f"batch position {position}"))
        self.num_skipped += 1
        if len(self.skipped_ids) < _MAX_SKIPPED_IDS:
            self.skipped_ids.append(row_id)
        logger.warning(
            "skipping %s (%d skipped of %d so far): %s", row_id, self.num_skipped, self.num_seen, error
        )

    def __call__(self, rows: Sequence[dict[str, Any]]) -> BatchFeature | None:
        clips = self.pixels(rows)
        pixel_values = clips.pixel_values
        if self.on_error == "drop":
            if not clips.valid.any():
                return None
            rows = [row for row, valid in zip(rows, clips.valid.tolist(), strict=True) if valid]
            pixel_values = pixel_values[clips.valid]
        if self.text_column:
            batch = self.processor(text=[row[self.text_column] for row in rows], return_tensors="pt")
        else:
            batch = BatchFeature({})
        batch["pixel_values"] = pixel_values
        if self.on_error == "mask":
            batch["valid"] = clips.valid
        for column in self.keep_columns:
            batch[column] = _stack([row[column] for row in rows])
        return batch


class VideoTextCollator(ClipBatcher):
    """`ClipBatcher` over caption rows (EK-100 MIR defaults: ``narration`` text, rows named by ``narration_id``):
    ``pixel_values (B, T, 3, H, W)``, ``input_ids``, ``attention_mask`` and the ``keep_columns``; clips that cannot
    be decoded are dropped (counted, logged); ``None`` when every clip of the batch is."""

    def __init__(
        self,
        processor: Any,
        num_frames: int = 16,
        sampling: str = "uniform",
        text_column: str | None = "narration",
        id_column: str = "narration_id",
        keep_columns: Sequence[str] = (),
        generator: torch.Generator | None = None,
        **processor_kwargs: Any,
    ) -> None:
        super().__init__(
            processor,
            num_frames,
            sampling,
            text_column=text_column,
            keep_columns=keep_columns,
            id_column=id_column,
            generator=generator,
            **processor_kwargs,
        )


class MultipleChoiceCollator(ClipBatcher):
    """`ClipBatcher` over EgoMCQ rows: ``pixel_values (B, C, T, 3, H, W)`` for the C choices of each question,
    ``input_ids`` / ``attention_mask`` of the query text, ``answer (B,)`` and ``types (B,)``.

    A question is skipped (counted once, logged) if any of its choice clips cannot be decoded: dropped (``None``
    when every question of the batch is), or with ``on_error="mask"`` kept with zero pixels and ``valid`` False.
    """

    def __init__(
        self,
        processor: Any,
        num_frames: int = 16,
        sampling: str = "uniform",
        id_column: str = "question_id",
        on_error: Literal["drop", "mask", "raise"] = "drop",
        **processor_kwargs: Any,
    ) -> None:
        super().__init__(
            processor,
            num_frames,
            sampling,
            text_column="query",
            keep_columns=("answer", "types"),
            id_column=id_column,
            choices_column="choices",
            on_error=on_error,
            **processor_kwargs,
        )


class ClipTransform:
    """`datasets.Dataset.with_transform` / ``set_transform`` callable: decodes each row's clip window when the row
    is read, as an ``Image`` feature decodes images, so clips are never stored in the Arrow cache.

    Without a processor, every column comes back and ``frames`` is added: the row's clip as a
    ``(num_frames, H, W, 3)`` uint8 array. With a processor, the batch is the model inputs (``pixel_values``
    ``(B, T, 3, H, W)``; ``input_ids`` / ``attention_mask`` of ``text_column``) plus ``keep_columns``, ready for a
    ``DataLoader`` or the ``TrainingLoop``. Rows are those of the clip builders (columns ``video_paths``,
    ``chunk_starts``, ``start``, ``stop``; EgoMCQ questions go through `MultipleChoiceCollator`). Decoding and
    transforms are `ClipBatcher`'s.

    A transform cannot drop rows, so a clip that cannot be decoded raises `VideoDecodeError` naming the file;
    `VideoTextCollator` is the path that skips and counts such clips.

    Args:
        processor: an `EVA02ATProcessor`, or ``None`` for decoded frames only.
        num_frames: frames sampled per clip window.
        sampling: ``"uniform"`` (evaluation) or ``"segment_random"`` (training; a new draw at every access).
        text_column: caption column tokenized with the processor; ``None`` for video-only inputs.
        keep_columns: columns copied next to the model inputs (with a processor).
        generator: RNG for ``segment_random`` sampling (torch's global RNG when ``None``).
        processor_kwargs: video-processor options (e.g. ``do_random_resized_crop=True``).
    """

    def __init__(
        self,
        processor: Any = None,
        num_frames: int = 16,
        sampling: str = "uniform",
        text_column: str | None = None,
        keep_columns: Sequence[str] = (),
        generator: torch.Generator | None = None,
        **processor_kwargs: Any,
    ) -> None:
        if processor is None and (text_column or keep_columns or processor_kwargs):
            raise ValueError("`text_column`, `keep_columns` and processor options need a `processor`")
        self.batcher = ClipBatcher(
            processor,
            num_frames,
            sampling,
            text_column=text_column,
            keep_columns=keep_columns,
            on_error="raise",
            generator=generator,
            **processor_kwargs,
        )

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, Any]:
        batcher = self.batcher
        missing = [
            c for c in (*CLIP_COLUMNS, batcher.text_column, *batcher.keep_columns) if c and c not in batch
        ]
        if missing:
            raise KeyError(
                f"ClipTransform: the rows lack column(s) {missing}; found {sorted(batch)} (it reads the clip "
                f"builders' rows: {', '.join(CLIP_COLUMNS)})"
            )
        rows = [dict(zip(batch, values, strict=True)) for values in zip(*batch.values(), strict=True)]
        if batcher.processor is None:
            return {**batch, "frames": [batcher.decode(row, batcher.frame_generator(row)) for row in rows]}
        return dict(batcher(rows))


def _transpose(columns: dict[str, list] | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A datasets list-of-structs value (dict of equal-length lists) -> list of dicts."""
    if isinstance(columns, list):
        return columns
    keys = list(columns)
    return [dict(zip(keys, values, strict=True)) for values in zip(*(columns[k] for k in keys), strict=True)]


def _stack(values: list[Any]) -> torch.Tensor | list[Any]:
    if all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in values):
        return torch.as_tensor(values)
    return values
