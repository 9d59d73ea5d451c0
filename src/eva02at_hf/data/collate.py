"""Batching dataset rows into model inputs: decode each clip window, then run the processor.

`VideoTextCollator` / `MultipleChoiceCollator` do it as a ``DataLoader`` ``collate_fn``; `ClipTransform` does it
as a `datasets` transform (``ds.with_transform(ClipTransform(processor))``), on access.

Rows are examples of the package's builders: ``video_paths``, ``chunk_starts``, ``start``, ``stop`` (see
`eva02at_hf.data.video_layout`) plus a text column. Clips that cannot be decoded (missing, truncated or
corrupt files) are skipped, counted and logged, never allowed to stop training. With a ``DataLoader`` using
worker processes each worker holds its own counters; the warnings are logged from every worker.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers.image_processing_utils import BatchFeature

from ..video_io import VideoDecodeError
from .video_layout import read_window

logger = logging.getLogger(__name__)

_MAX_SKIPPED_IDS = 100


class _ClipReader:
    """Decodes row windows and keeps the skip statistics (``num_seen``, ``num_skipped``, ``skipped_ids``)."""

    def __init__(
        self, num_frames: int, sampling: str, generator: torch.Generator | None, id_column: str
    ) -> None:
        if num_frames < 1:
            raise ValueError(f"`num_frames` must be >= 1, got {num_frames}")
        self.num_frames = num_frames
        self.sampling = sampling
        self.generator = generator
        self.id_column = id_column
        self.num_seen = 0
        self.num_skipped = 0
        self.skipped_ids: list[str] = []

    def decode(self, row: dict[str, Any]) -> np.ndarray:
        """(num_frames, H, W, 3) uint8 frames of the row's window."""
        return read_window(
            row["video_paths"],
            row["chunk_starts"],
            row["start"],
            row["stop"],
            self.num_frames,
            self.sampling,
            self.generator,
        )

    def skip(self, row: dict[str, Any], position: int, error: Exception) -> None:
        """Count and log a skipped row."""
        row_id = str(row.get(self.id_column, f"batch position {position}"))
        self.num_skipped += 1
        if len(self.skipped_ids) < _MAX_SKIPPED_IDS:
            self.skipped_ids.append(row_id)
        logger.warning(
            "skipping %s (%d skipped of %d so far): %s", row_id, self.num_skipped, self.num_seen, error
        )


class VideoTextCollator(_ClipReader):
    """``collate_fn`` turning rows into ``pixel_values (B, T, 3, H, W)``, ``input_ids``, ``attention_mask``.

    Args:
        processor: an `EVA02ATProcessor` (or compatible: ``processor(videos=[frames], text=[...], ...)``).
        num_frames: frames sampled per clip window.
        sampling: ``"uniform"`` (evaluation) or ``"segment_random"`` (training).
        text_column: caption column; ``None`` for video-only batches.
        id_column: column naming a row in skip reports.
        keep_columns: extra columns copied into the batch (numbers become tensors, others lists), e.g. the
            sentence index drawn by the hard-mining sampler.
        generator: RNG for ``segment_random`` sampling (torch's global RNG when ``None``).
        processor_kwargs: forwarded to the processor (e.g. ``do_random_resized_crop=True``).

    Returns ``None`` when every clip of the batch is skipped.
    """

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
        super().__init__(num_frames, sampling, generator, id_column)
        self.processor = processor
        self.text_column = text_column
        self.keep_columns = tuple(keep_columns)
        self.processor_kwargs = processor_kwargs

    def __call__(self, rows: Sequence[dict[str, Any]]) -> BatchFeature | None:
        kept = []
        for i, row in enumerate(rows):
            self.num_seen += 1
            try:
                kept.append((row, self.decode(row)))
            except (VideoDecodeError, OSError) as err:
                self.skip(row, i, err)
        if not kept:
            return None
        text = [row[self.text_column] for row, _ in kept] if self.text_column else None
        batch = self.processor(
            videos=[frames for _, frames in kept],
            text=text,
            do_sample_frames=False,
            return_tensors="pt",
            **self.processor_kwargs,
        )
        for column in self.keep_columns:
            batch[column] = _stack([row[column] for row, _ in kept])
        return batch


class MultipleChoiceCollator(_ClipReader):
    """``collate_fn`` for EgoMCQ rows: ``pixel_values (B, C, T, 3, H, W)`` for the C choices of each question,
    ``input_ids`` / ``attention_mask`` of the query text, ``answer (B,)`` and ``types (B,)``.

    A question is skipped (counted once, logged) if any of its choice clips cannot be decoded. Returns ``None``
    when every question of the batch is skipped.
    """

    def __init__(
        self,
        processor: Any,
        num_frames: int = 16,
        sampling: str = "uniform",
        id_column: str = "question_id",
        **processor_kwargs: Any,
    ) -> None:
        super().__init__(num_frames, sampling, None, id_column)
        self.processor = processor
        self.processor_kwargs = processor_kwargs

    def __call__(self, rows: Sequence[dict[str, Any]]) -> BatchFeature | None:
        kept, videos = [], []
        for i, row in enumerate(rows):
            self.num_seen += 1
            try:
                frames = [self.decode(choice) for choice in _transpose(row["choices"])]
            except (VideoDecodeError, OSError) as err:
                self.skip(row, i, err)
                continue
            kept.append(row)
            videos.extend(frames)
        if not kept:
            return None
        batch = self.processor(
            videos=videos,
            text=[row["query"] for row in kept],
            do_sample_frames=False,
            return_tensors="pt",
            **self.processor_kwargs,
        )
        pixel_values = batch["pixel_values"]
        batch["pixel_values"] = pixel_values.reshape(len(kept), -1, *pixel_values.shape[1:])
        batch["answer"] = torch.as_tensor([row["answer"] for row in kept])
        batch["types"] = torch.as_tensor([row["types"] for row in kept])
        return batch


CLIP_COLUMNS = ("video_paths", "chunk_starts", "start", "stop")


class ClipTransform:
    """`datasets.Dataset.with_transform` / ``set_transform`` callable: decodes each row's clip window when the row
    is read, as an ``Image`` feature decodes images, so clips are never stored in the Arrow cache.

    Without a processor, every column comes back and ``frames`` is added: the row's clip as a
    ``(num_frames, H, W, 3)`` uint8 array. With a processor, the batch is the model inputs (``pixel_values``
    ``(B, T, 3, H, W)``; ``input_ids`` / ``attention_mask`` of ``text_column``) plus ``keep_columns``, ready for a
    ``DataLoader`` or the ``TrainingLoop``. Rows are those of the clip builders (columns ``video_paths``,
    ``chunk_starts``, ``start``, ``stop``; EgoMCQ questions go through `MultipleChoiceCollator`).

    A transform cannot drop rows, so a clip that cannot be decoded raises `VideoDecodeError` naming the file;
    `VideoTextCollator` is the path that skips and counts such clips.

    Args:
        processor: an `EVA02ATProcessor`, or ``None`` for decoded frames only.
        num_frames: frames sampled per clip window.
        sampling: ``"uniform"`` (evaluation) or ``"segment_random"`` (training; a new draw at every access).
        text_column: caption column tokenized with the processor; ``None`` for video-only inputs.
        keep_columns: columns copied next to the model inputs (with a processor).
        generator: RNG for ``segment_random`` sampling (torch's global RNG when ``None``).
        processor_kwargs: forwarded to the processor (e.g. ``do_random_resized_crop=True``).
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
        if num_frames < 1:
            raise ValueError(f"`num_frames` must be >= 1, got {num_frames}")
        if processor is None and (text_column or keep_columns or processor_kwargs):
            raise ValueError("`text_column`, `keep_columns` and processor options need a `processor`")
        self.processor = processor
        self.num_frames = num_frames
        self.sampling = sampling
        self.text_column = text_column
        self.keep_columns = tuple(keep_columns)
        self.generator = generator
        self.processor_kwargs = processor_kwargs

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, Any]:
        missing = [c for c in (*CLIP_COLUMNS, self.text_column, *self.keep_columns) if c and c not in batch]
        if missing:
            raise KeyError(
                f"ClipTransform: the rows lack column(s) {missing}; found {sorted(batch)} (it reads the clip "
                f"builders' rows: {', '.join(CLIP_COLUMNS)})"
            )
        frames = [
            read_window(paths, chunk_starts, start, stop, self.num_frames, self.sampling, self.generator)
            for paths, chunk_starts, start, stop in zip(*(batch[c] for c in CLIP_COLUMNS), strict=True)
        ]
        if self.processor is None:
            return {**batch, "frames": frames}
        inputs = self.processor(
            videos=frames,
            text=list(batch[self.text_column]) if self.text_column else None,
            do_sample_frames=False,
            return_tensors="pt",
            **self.processor_kwargs,
        )
        return {**inputs, **{column: _stack(list(batch[column])) for column in self.keep_columns}}


def _transpose(columns: dict[str, list]) -> list[dict[str, Any]]:
    """A datasets list-of-structs value (dict of equal-length lists) -> list of dicts."""
    if isinstance(columns, list):
        return columns
    keys = list(columns)
    return [dict(zip(keys, values, strict=True)) for values in zip(*(columns[k] for k in keys), strict=True)]


def _stack(values: list[Any]) -> torch.Tensor | list[Any]:
    if all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in values):
        return torch.as_tensor(values)
    return values
