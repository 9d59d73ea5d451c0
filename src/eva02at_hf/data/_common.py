"""Shared pieces of the local-file dataset builders: config, bad-row policy and report, field parsers."""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import datasets

from .video_layout import ClipSource, VideoLayout

logger = logging.getLogger(__name__)

ON_BAD_ROW = ("skip", "raise")
_REPORT_FILE = "bad_rows-{split}.json"
_MAX_EXAMPLES = 10
_TIMESTAMP = re.compile(r"^(\d+):([0-5]?\d):([0-5]?\d(?:\.\d*)?)$")

CLIP_FEATURES = {
    "video_paths": datasets.Sequence(datasets.Value("string")),
    "chunk_starts": datasets.Sequence(datasets.Value("float64")),
    "start": datasets.Value("float64"),
    "stop": datasets.Value("float64"),
}


class BadRowError(ValueError):
    """A malformed annotation row or a row whose video is missing, with ``on_bad_row="raise"``; or a split left
    with no rows at all (every row skipped)."""


class AnnotationFileError(ValueError):
    """An annotation file that cannot be read as a whole: not UTF-8 text, malformed CSV (e.g. a field over the
    csv module's size limit, NUL bytes), or a required column missing. The message names the file (and line)."""


class BadRow(Exception):
    """Internal: why a row cannot be used (the ``reason`` is recorded in the `BadRowReport`)."""


@dataclass
class BadRowReport:
    """Rows skipped while building one split: ``count``, ``reasons`` (reason -> count) and the first rows.

    ``examples`` holds up to 10 ``[row id, reason]`` pairs, in file order.
    """

    source: str
    count: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    examples: list[list[str]] = field(default_factory=list)

    def add(self, row_id: str, reason: str) -> None:
        self.count += 1
        kind = _reason_kind(reason)
        self.reasons[kind] = self.reasons.get(kind, 0) + 1
        if len(self.examples) < _MAX_EXAMPLES:
            self.examples.append([row_id, reason])

    def summary(self) -> str:
        if not self.count:
            return f"{self.source}: no rows skipped"
        reasons = ", ".join(f"{kind}: {n}" for kind, n in sorted(self.reasons.items()))
        first = "; ".join(f"{row_id} ({reason})" for row_id, reason in self.examples)
        return f"{self.source}: skipped {self.count} rows ({reasons}); first: {first}"


def _reason_kind(reason: str) -> str:
    """Reason category for counting: the text before the first colon (``"missing video: P01_01" -> ...``)."""
    return reason.split(":", 1)[0]


def _present(value: object, name: str) -> str:
    """``value`` as stripped text (JSON numbers included); raises ``BadRow`` if missing or empty."""
    text = "" if value is None else str(value).strip()
    if not text:
        raise BadRow(f"missing {name}")
    return text


def parse_timestamp(text: object, name: str) -> float:
    """Seconds of an ``HH:MM:SS.ff`` timestamp (any number of decimals)."""
    match = _TIMESTAMP.match(_present(text, name))
    if match is None:
        raise BadRow(f"bad {name}: {text!r} is not HH:MM:SS.ff")
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def parse_float(text: object, name: str) -> float:
    try:
        value = float(_present(text, name))
    except (TypeError, ValueError):
        raise BadRow(f"bad {name}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise BadRow(f"bad {name}: {text!r} is not finite")
    return value


def parse_int(text: object, name: str) -> int:
    try:
        return int(_present(text, name))
    except ValueError:
        raise BadRow(f"bad {name}: {text!r} is not an integer") from None


def parse_class_id(text: object, name: str) -> int:
    """A class index: an integer >= 0."""
    value = parse_int(text, name)
    if value < 0:
        raise BadRow(f"bad {name}: {value} is not a class id (must be >= 0)")
    return value


def parse_int_list(text: object, name: str) -> list[int]:
    """A Python-literal list of ints (``"[13, 3]"``), parsed with `ast.literal_eval` (never ``eval``)."""
    try:
        value = ast.literal_eval(_present(text, name))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise BadRow(f"unparsable {name}: {text!r}") from None
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise BadRow(f"unparsable {name}: {text!r} is not a list of class ids")
    return list(value)


def check_window(start: float, stop: float) -> None:
    if start < 0:
        raise BadRow(f"bad window: start {start} < 0")
    if stop < start:
        raise BadRow(f"bad window: stop {stop} before start {start}")


def check_columns(path: str, required: Sequence[str], delimiter: str = ",") -> None:
    """Raise ``ValueError`` naming ``path`` if its header lacks a ``required`` column."""
    for _ in read_table(path, required, delimiter):
        break


def first_undecodable_line(path: str | os.PathLike) -> int | None:
    """The 1-based number of the first line of ``path`` that is not UTF-8 (None if every line is)."""
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return None


def read_table(path: str, required: Sequence[str], delimiter: str = ",") -> Iterator[dict[str, str]]:
    """Rows of a CSV/TSV file as dicts.

    Raises:
        AnnotationFileError: naming the file (and line) if columns are missing, the file is not UTF-8 text, or a
            line is not CSV (an oversized field, NUL bytes).
    """
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        try:
            missing = [c for c in required if c not in (reader.fieldnames or [])]
            if missing:
                raise AnnotationFileError(f"{path}: missing column(s) {missing}; found {reader.fieldnames}")
            yield from reader
        except UnicodeDecodeError as err:
            raise AnnotationFileError(
                f"{path}: line {first_undecodable_line(path)}: not UTF-8 text ({err.reason}); save the file as UTF-8"
            ) from None
        except csv.Error as err:
            # the reader has not counted the line it failed on yet
            raise AnnotationFileError(f"{path}: line {reader.line_num + 1}: malformed CSV ({err})") from None


def fingerprint_dir(path: str | os.PathLike) -> str:
    """Hash of the names, sizes and modification times of the files directly in ``path`` (cache key)."""
    entries = []
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
        if entry.is_file():
            stat = entry.stat()
            entries.append((entry.name, stat.st_size, stat.st_mtime_ns))
    return datasets.fingerprint.Hasher.hash(entries)


def fingerprint_tree(path: str | os.PathLike) -> str:
    """Hash of the relative paths of every file below ``path`` (symlinks followed, each folder once).

    A builder's rows depend only on which video files exist, so names suffice: one ``readdir`` per folder and
    no ``stat`` per file (a ~50k-file video root takes well under a second).
    """
    digest = hashlib.blake2b(digest_size=16)
    root = os.fspath(path)
    seen: set[tuple[int, int]] = set()
    pending = [""]
    while pending:
        relative = pending.pop()
        try:
            folder = os.stat(os.path.join(root, relative))
            entries = sorted(os.scandir(os.path.join(root, relative)), key=lambda e: e.name)
        except OSError:
            continue
        if (folder.st_dev, folder.st_ino) in seen:  # a symlink loop or a folder linked twice
            continue
        seen.add((folder.st_dev, folder.st_ino))
        subfolders = []
        for entry in entries:
            name = f"{relative}/{entry.name}" if relative else entry.name
            try:
                if entry.is_dir():
                    subfolders.append(name)
                elif entry.is_file():
                    digest.update(name.encode("utf-8", "surrogateescape") + b"\0")
            except OSError:
                continue
        pending.extend(reversed(subfolders))
    return digest.hexdigest()


@dataclass
class LocalVideoConfig(datasets.BuilderConfig):
    """Config of a builder reading annotation files from ``data_dir`` and videos from ``video_root``.

    Args:
        video_root: folder of the videos (raw or pre-chunked layout, see `eva02at_hf.data.video_layout`).
        chunk_len: chunk length in seconds of the pre-chunked layout; ``None`` for raw per-video files.
        ext: video file extension; ``None`` tries the dataset's usual ones (e.g. ``MP4`` then ``mp4``).
        on_bad_row: ``"skip"`` (default) drops malformed rows and rows whose video is missing, logs a
            warning with the count and the first row ids, and stores the `BadRowReport` (read it back with
            ``builder.bad_row_report(split)``); ``"raise"`` raises `BadRowError` at the first such row.
    """

    video_root: str | None = None
    chunk_len: float | None = None
    ext: str | None = None
    on_bad_row: str = "skip"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("on_bad_row", self.on_bad_row, ON_BAD_ROW)
        if self.data_dir is None or not os.path.isdir(self.data_dir):
            raise FileNotFoundError(
                f"`data_dir` must be an existing folder of annotation files, got {self.data_dir!r}"
            )
        if self.video_root is None or not os.path.isdir(self.video_root):
            raise FileNotFoundError(
                f"`video_root` must be an existing folder of videos, got {self.video_root!r}"
            )
        self.video_root = os.path.abspath(self.video_root)  # rows store paths that work from any folder


class LocalVideoBuilder(datasets.GeneratorBasedBuilder):
    """Base of the benchmark builders: video lookup, bad-row policy and report persistence.

    The cache is keyed by the builder class, the config (paths, ``chunk_len``, ``ext``, policy), a fingerprint
    of the files in ``data_dir`` (names, sizes, modification times) and one of the file names below
    ``video_root`` (`fingerprint_tree`): videos added or removed later give a new build. The class is part of
    the key because `datasets` names a builder after its module: EgoClip and EgoMCQ (both in ``ego4d.py``) on
    one ``data_dir`` would share a cache.
    """

    BUILDER_CONFIG_CLASS = LocalVideoConfig
    DEFAULT_EXTS: tuple[str, ...] = ("mp4",)
    config: LocalVideoConfig

    def __init__(
        self, *args: Any, data_dir: str | None = None, hash: str | None = None, **kwargs: Any
    ) -> None:
        if hash is None and data_dir is not None and os.path.isdir(data_dir):
            video_root = kwargs.get("video_root")
            videos = fingerprint_tree(video_root) if video_root and os.path.isdir(video_root) else None
            hash = datasets.fingerprint.Hasher.hash([fingerprint_dir(data_dir), videos])
        kwargs.setdefault("dataset_name", type(self).__name__)
        super().__init__(*args, data_dir=data_dir, hash=hash, **kwargs)
        self._logged_reports: set[str] = set()

    def video_layout(self) -> VideoLayout:
        exts = (self.config.ext,) if self.config.ext else self.DEFAULT_EXTS
        return VideoLayout(self.config.video_root, self.config.chunk_len, exts)

    def annotation_path(self, name: str) -> str:
        return os.path.join(self.config.data_dir, name)

    def new_report(self, source: str) -> BadRowReport:
        return BadRowReport(source=source)

    def handle_bad_row(self, report: BadRowReport, row_id: str, reason: str) -> None:
        """Record a bad row, or raise `BadRowError` under ``on_bad_row="raise"``."""
        if self.config.on_bad_row == "raise":
            raise BadRowError(f"{report.source}: row {row_id}: {reason} (on_bad_row='raise')")
        report.add(row_id, reason)

    def locate(self, layout: VideoLayout, stems: Sequence[str], start: float, stop: float) -> ClipSource:
        source = layout.locate(stems, start, stop)
        if source is None:
            raise BadRow(f"missing video: {stems[0]} [{start:.2f}, {stop:.2f}] s under {layout.root}")
        return source

    def finish_report(self, split: str, report: BadRowReport) -> None:
        """Log the report and save it next to the Arrow files (``bad_rows-<split>.json``)."""
        if report.count:
            logger.warning(report.summary())
            self._logged_reports.add(split)
        with open(os.path.join(self._output_dir, _REPORT_FILE.format(split=split)), "w") as handle:
            json.dump(report.__dict__, handle)

    def bad_row_report(self, split: str) -> BadRowReport:
        """The `BadRowReport` of ``split``, as saved when the cache was built."""
        path = os.path.join(self.cache_dir, _REPORT_FILE.format(split=split))
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"no bad-row report for split {split!r} at {path}; run download_and_prepare()"
            )
        with open(path) as handle:
            return BadRowReport(**json.load(handle))


def check_choice(name: str, value: object, choices: Sequence[object]) -> None:
    """Raise ``ValueError`` naming the argument ``name`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {tuple(choices)}, got {value!r}")


def load_local_split(
    builder_class: type[LocalVideoBuilder],
    data_dir: str | os.PathLike,
    video_root: str | os.PathLike,
    split: str,
    cache_dir: str | None = None,
    **config_kwargs,
) -> datasets.Dataset:
    """`load_split` of ``builder_class`` over ``data_dir`` (annotations) and ``video_root`` (videos), cached in
    ``cache_dir``; ``config_kwargs`` are the builder config's other fields."""
    builder = builder_class(
        data_dir=os.fspath(data_dir), video_root=os.fspath(video_root), cache_dir=cache_dir, **config_kwargs
    )
    return load_split(builder, split)


def load_split(builder: LocalVideoBuilder, split: str) -> datasets.Dataset:
    """Prepare ``builder`` (cached) and return ``split``; a `BadRowError` surfaces as itself.

    A cached build logs its saved bad-row report again (as a warning if rows were skipped). A split left with
    no rows raises `BadRowError` naming the annotation file, the count and reasons of the skipped rows and,
    when all were missing videos, the ``chunk_len`` / ``video_root`` to check.
    """
    try:
        builder.download_and_prepare()
    except datasets.exceptions.DatasetGenerationError as err:
        if isinstance(err.__cause__, BadRowError | AnnotationFileError):
            raise err.__cause__ from None
        raise
    available = list(builder.info.splits or {})
    if split not in available:
        raise ValueError(f"split {split!r} not available in {builder.config.data_dir}; found {available}")
    report = builder.bad_row_report(split)
    if builder.info.splits[split].num_examples == 0:
        raise BadRowError(_empty_split_message(builder.config, split, report))
    if report.count and split not in builder._logged_reports:  # a cache hit: the build's warning is not shown
        logger.warning(report.summary())
    return builder.as_dataset(split)


def _empty_split_message(config: LocalVideoConfig, split: str, report: BadRowReport) -> str:
    """Why ``split`` has no rows, with a ``chunk_len`` hint when every row's video was missing."""
    if not report.count:
        return f"{report.source}: split {split!r} has no rows"
    message = f"split {split!r} has no usable rows: {report.summary()}"
    if set(report.reasons) != {"missing video"}:
        return message
    if config.chunk_len is None:
        return (
            f"{message}. Is the video root {config.video_root} pre-chunked (<video>.<ext>/<chunk start>.<ext>)? "
            "Pass chunk_len (CLI: --chunk_len), e.g. 15 for EK-100 or 300 for Ego4D."
        )
    return (
        f"{message}. Is the video root {config.video_root} raw (one <video>.<ext> file per video)? Drop "
        f"chunk_len={config.chunk_len} (CLI: --chunk_len); or check that {config.chunk_len} s is its chunk length."
    )
