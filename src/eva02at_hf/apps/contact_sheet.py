"""Contact sheets: the top-k hits of a query as rows of sampled frames, each labelled with its rank, score and
caption or id, because retrieval is judged by looking."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..video_io import VideoDecodeError, read_clip

BACKGROUND = (255, 255, 255)
TEXT_COLOUR = (0, 0, 0)
PLACEHOLDER = (128, 128, 128)


@dataclass(frozen=True)
class Hit:
    """One retrieved clip: the file, its window in seconds (``None`` = whole file), score and label."""

    path: str
    start: float | None
    end: float | None
    score: float
    label: str


@dataclass(frozen=True)
class SheetLayout:
    """Sizes in pixels: ``thumb_height`` of each frame, ``label_height`` of the text band above a row or title,
    ``padding`` around rows and between frames."""

    num_frames: int = 6
    thumb_height: int = 96
    label_height: int = 18
    padding: int = 4


def _thumbnail(frame: np.ndarray, height: int) -> Image.Image:
    """(H, W, 3) uint8 frame -> PIL image ``height`` pixels high, aspect ratio kept."""
    image = Image.fromarray(frame)
    width = max(1, round(image.width * height / image.height))
    return image.resize((width, height), Image.Resampling.BICUBIC)


def hit_frames(hit: Hit, layout: SheetLayout) -> list[Image.Image] | None:
    """The hit's ``layout.num_frames`` uniformly sampled frames as thumbnails, or None if it cannot be decoded."""
    try:
        frames = read_clip(hit.path, hit.start, hit.end, layout.num_frames)
    except VideoDecodeError:
        return None
    return [_thumbnail(frame, layout.thumb_height) for frame in frames]


def render_contact_sheet(
    sections: Sequence[tuple[str, Sequence[Hit]]], layout: SheetLayout | None = None
) -> Image.Image:
    """Render one section per query: a title band with the query, then one row per hit.

    Each hit row is a label band ``"#rank  score  label"`` above the hit's sampled frames, left to right in time.
    A hit whose video cannot be decoded gets a grey placeholder row labelled ``[unreadable]``.

    Returns:
        an RGB `PIL.Image.Image`.
    """
    layout = layout or SheetLayout()
    font = ImageFont.load_default()
    pad, band, thumb = layout.padding, layout.label_height, layout.thumb_height
    placeholder_width = layout.num_frames * (thumb + pad) - pad
    blocks: list[tuple[str, Sequence[Image.Image] | None, bool]] = []
    for query, hits in sections:
        blocks.append((query, None, True))
        for rank, hit in enumerate(hits, start=1):
            frames = hit_frames(hit, layout)
            suffix = "" if frames is not None else "  [unreadable]"
            blocks.append((f"#{rank}  {hit.score:.3f}  {hit.label}{suffix}", frames, False))

    def row_width(frames: Sequence[Image.Image] | None) -> int:
        if frames is None:
            return placeholder_width
        return sum(f.width for f in frames) + pad * (len(frames) - 1)

    widest = max((row_width(frames) for _, frames, title in blocks if not title), default=0)
    width = 2 * pad + max(widest, 320)
    height = pad + sum(band + pad if title else band + thumb + pad for _, _, title in blocks)
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    y = pad
    for text, frames, title in blocks:
        draw.text((pad, y + 2), f"query: {text}" if title else text, fill=TEXT_COLOUR, font=font)
        y += band
        if title:
            y += pad
            continue
        if frames is None:
            draw.rectangle([pad, y, pad + placeholder_width - 1, y + thumb - 1], fill=PLACEHOLDER)
        else:
            x = pad
            for frame in frames:
                sheet.paste(frame, (x, y))
                x += frame.width + pad
        y += thumb + pad
    return sheet


__all__ = ["Hit", "SheetLayout", "hit_frames", "render_contact_sheet"]
