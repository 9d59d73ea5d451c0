"""Ego4D pre-training pairs (EgoClip) and the EgoMCQ benchmark, from the EgoVLP annotation files.

Annotation files (``data_dir``, released with EgoVLP):

* ``egoclip.csv``: **tab-separated**, one row per clip-narration pair, columns ``video_uid, video_dur,
  narration_source, narration_ind, narration_time, clip_start, clip_end, clip_text, tag_verb, tag_noun``;
  times in seconds; ``clip_text`` is the raw Ego4D narration (``"#C C picks a bag of clothes"``);
  ``tag_verb`` / ``tag_noun`` are Python-literal lists of class ids (``"[93]"``, ``"[192, 115]"``).
* ``egomcq.json``: ``{question id: {"query": <clip>, "choices": {"0": <clip>, ..., "4": <clip>},
  "answer": <index of the matching choice>, "types": 1 | 2}}`` where each ``<clip>`` is an EgoClip row as a
  dict (``video_uid, clip_start, clip_end, clip_text, ...``) and ``types`` is 1 for inter-video (choices from
  different videos) and 2 for intra-video (choices from the query's own video). Public metric code labels the
  codes both ways, so the builder takes a question's type from its choices where they decide it (every choice
  from its own video: inter; all from one video: intra), keeps the file's code otherwise, and warns with a
  count when the file's codes disagree.

* EgoClip+ (LaViLa's LLM-augmented EgoClip; format written from memory of the LaViLa release, not checked
  against the files): a pickle, e.g. ``ego4d_train.rephraser.no_punkt_top3.pkl`` (GPT-2 XL "rephraser"
  paraphrases of the EgoClip narrations) or ``ego4d_train.narrator_63690737.return_10.pkl`` (narrator
  pseudo-captions), holding a list of tuples ``(video_uid: str, start_second: float, end_second: float,
  narration)`` where ``narration`` is a string or a list of candidate strings (LaViLa samples one per epoch);
  the times may be numpy float scalars. Read with a restricted unpickler (`eva02at_hf.utils.safe_pickle`): a file
  referencing anything but numpy scalars is refused without running code.

Videos (``video_root``): raw ``<root>/<video_uid>.mp4`` or pre-chunked ``<root>/<video_uid>.mp4/<start>.mp4``
(``chunk_len=300`` in the LaViLa / AVION preprocessing). Negative start times are clipped to 0 as in EgoVLP.
"""

from __future__ import annotations

import json
import logging
import numbers
import os
import reprlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import datasets

from ..metrics.multiple_choice import INTER_VIDEO, INTRA_VIDEO
from ..utils.safe_pickle import NUMPY_SCALAR_GLOBALS, restricted_pickle_load
from ._common import (
    CLIP_FEATURES,
    BadRow,
    LocalVideoBuilder,
    LocalVideoConfig,
    check_columns,
    check_window,
    load_local_split,
    parse_float,
    parse_int,
    parse_int_list,
    read_table,
)

logger = logging.getLogger(__name__)

EGOCLIP_FILE = "egoclip.csv"
EGOCLIP_PLUS_FILE = "ego4d_train.rephraser.no_punkt_top3.pkl"
EGOMCQ_FILE = "egomcq.json"
MCQ_TYPES = {INTER_VIDEO: "inter-video", INTRA_VIDEO: "intra-video"}
_EGOCLIP_REQUIRED = ("video_uid", "clip_start", "clip_end", "clip_text", "tag_verb", "tag_noun")
_EGOCLIP_PLUS_FIELDS = ("video_uid", "start_second", "end_second", "narration")
_PAIR_FEATURES = {
    "clip_id": datasets.Value("string"),
    "video_uid": datasets.Value("string"),
    "narration": datasets.Value("string"),
    "verb_classes": datasets.Sequence(datasets.Value("int64")),
    "noun_classes": datasets.Sequence(datasets.Value("int64")),
    **CLIP_FEATURES,
}


def _clipped_window(start: float, stop: float) -> tuple[float, float]:
    """``(max(start, 0), stop)``, checked to be a forward window (negative starts clipped as in EgoVLP)."""
    start = max(start, 0.0)
    check_window(start, stop)
    return start, stop


def _window(clip: dict, where: str) -> tuple[float, float]:
    return _clipped_window(
        parse_float(clip.get("clip_start"), f"{where}clip_start"),
        parse_float(clip.get("clip_end"), f"{where}clip_end"),
    )


def _video_uid(value: object) -> str:
    uid = str(value or "").strip()
    if not uid:
        raise BadRow("missing video_uid")
    return uid


def _seconds(value: object, name: str) -> float:
    """A time of a pickled row: a finite Python or numpy real number (a string or a bool is refused)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise BadRow(f"bad {name}: {reprlib.repr(value)} is not a number")
    return parse_float(value, name)


def _narration_candidates(value: object) -> list[str]:
    """The non-empty candidates of a LaViLa narration: one string or a list of strings."""
    candidates = [value] if isinstance(value, str) else value
    if not isinstance(candidates, list | tuple) or not all(isinstance(c, str) for c in candidates):
        raise BadRow(f"bad narration: {reprlib.repr(value)} is not a string or a list of strings")
    candidates = [c.strip() for c in candidates if c.strip()]
    if not candidates:
        raise BadRow("empty narration")
    return candidates


class _ClipNarrationBuilder(LocalVideoBuilder):
    """Base of EgoClip and EgoClip+: one ``train`` example per annotation row whose video is present.

    Subclasses name the ``annotation_file`` in ``data_dir``, read it (file-level errors raise, naming the
    file) and parse one row into the fields of ``_PAIR_FEATURES`` (plus ``EXTRA_FEATURES``) but the video
    ones, raising ``BadRow``.
    """

    VERSION = datasets.Version("1.0.0")
    DESCRIPTION: str
    EXTRA_FEATURES: dict[str, datasets.features.FeatureType] = {}
    annotation_file: str

    def _info(self) -> datasets.DatasetInfo:
        features = datasets.Features({**_PAIR_FEATURES, **self.EXTRA_FEATURES})
        return datasets.DatasetInfo(description=self.DESCRIPTION, features=features)

    def _split_generators(self, dl_manager: datasets.DownloadManager) -> list[datasets.SplitGenerator]:
        path = self.annotation_path(self.annotation_file)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{self.annotation_file} not found in data_dir {self.config.data_dir}")
        gen_kwargs = {"rows": self._open_rows(path), "path": path, "split": "train"}
        return [datasets.SplitGenerator(name="train", gen_kwargs=gen_kwargs)]

    def _open_rows(self, path: str) -> Callable[[], Iterable[Any]]:
        """Check ``path`` and return a function iterating over its rows (called once per generation)."""
        raise NotImplementedError

    def _row_id(self, index: int, row: Any) -> str:
        """Id of a row in the bad-row report."""
        raise NotImplementedError

    def _parse_row(self, index: int, row: Any) -> dict[str, Any]:
        raise NotImplementedError

    def _generate_examples(
        self, rows: Callable[[], Iterable[Any]], path: str, split: str
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        layout = self.video_layout()
        report = self.new_report(path)
        for index, row in enumerate(rows()):
            try:
                example = self._parse_row(index, row)
                source = self.locate(layout, [example["video_uid"]], example["start"], example["stop"])
            except BadRow as bad:
                self.handle_bad_row(report, self._row_id(index, row), str(bad))
                continue
            yield index, {**example, "video_paths": source.paths, "chunk_starts": source.chunk_starts}
        self.finish_report(split, report)


class EgoClipBuilder(_ClipNarrationBuilder):
    """EgoClip pre-training pairs: one example per row of ``egoclip.csv`` (split ``train``).

    Example fields: ``clip_id`` (``<video_uid>_<narration_source>_<narration_ind>``), ``video_uid``,
    ``narration`` (``clip_text``), ``verb_classes`` / ``noun_classes`` (``tag_verb`` / ``tag_noun``),
    ``start, stop, video_paths, chunk_starts``.
    """

    DESCRIPTION = "EgoClip video-narration pairs (Ego4D)"
    annotation_file = EGOCLIP_FILE

    def _open_rows(self, path: str) -> Callable[[], Iterable[dict[str, str]]]:
        check_columns(path, _EGOCLIP_REQUIRED, delimiter="\t")
        return partial(read_table, path, _EGOCLIP_REQUIRED, "\t")

    def _row_id(self, index: int, row: dict[str, str]) -> str:
        return _egoclip_id(row) if row.get("video_uid") else f"line {index + 2}"

    def _parse_row(self, index: int, row: dict[str, str]) -> dict[str, Any]:
        uid = _video_uid(row.get("video_uid"))
        start, stop = _window(row, "")
        return {
            "clip_id": _egoclip_id(row),
            "video_uid": uid,
            "narration": (row.get("clip_text") or "").strip(),
            "verb_classes": parse_int_list(row.get("tag_verb"), "tag_verb"),
            "noun_classes": parse_int_list(row.get("tag_noun"), "tag_noun"),
            "start": start,
            "stop": stop,
        }


def _egoclip_id(row: dict[str, str]) -> str:
    return "_".join(str(row.get(k) or "") for k in ("video_uid", "narration_source", "narration_ind"))


@dataclass
class EgoClipPlusConfig(LocalVideoConfig):
    """`LocalVideoConfig` plus ``annotation_file``: the LaViLa pickle in ``data_dir``; default the rephraser
    paraphrases ``ego4d_train.rephraser.no_punkt_top3.pkl``, another is the narrator pseudo-captions
    ``ego4d_train.narrator_63690737.return_10.pkl``."""

    annotation_file: str = EGOCLIP_PLUS_FILE


class EgoClipPlusBuilder(_ClipNarrationBuilder):
    """EgoClip+ (LaViLa) pairs: one example per ``(video_uid, start_second, end_second, narration)`` tuple of
    the pickle (split ``train``).

    Example fields: ``clip_id`` (``<video_uid>_<row index>``), ``video_uid``, ``narration`` (first
    candidate), ``narrations`` (all non-empty candidates, stripped), ``verb_classes`` / ``noun_classes``
    (empty: the pickle has no tags), ``start, stop, video_paths, chunk_starts``. Bad rows: a row that is not
    a 4-tuple, a time that is not a finite number, an inverted window, an empty narration, a missing video.
    """

    DESCRIPTION = "EgoClip+ LLM-augmented video-narration pairs (LaViLa, Ego4D)"
    EXTRA_FEATURES = {"narrations": datasets.Sequence(datasets.Value("string"))}
    BUILDER_CONFIG_CLASS = EgoClipPlusConfig
    config: EgoClipPlusConfig

    @property
    def annotation_file(self) -> str:
        return self.config.annotation_file

    def _open_rows(self, path: str) -> Callable[[], Iterable[Any]]:
        rows = restricted_pickle_load(
            path, NUMPY_SCALAR_GLOBALS, "builtin containers, strings, numbers and numpy scalars"
        )
        if not isinstance(rows, list | tuple):
            raise ValueError(
                f"{path}: expected a pickled list of {_EGOCLIP_PLUS_FIELDS} tuples, got {type(rows).__name__}"
            )
        return partial(iter, tuple(rows))

    def _row_id(self, index: int, row: Any) -> str:
        if isinstance(row, tuple | list) and row and isinstance(row[0], str) and row[0].strip():
            return f"{row[0].strip()}_{index}"
        return f"row {index}"

    def _parse_row(self, index: int, row: Any) -> dict[str, Any]:
        if not isinstance(row, tuple | list) or len(row) != len(_EGOCLIP_PLUS_FIELDS):
            raise BadRow(f"malformed row: {reprlib.repr(row)} is not a {_EGOCLIP_PLUS_FIELDS} tuple")
        uid, start, stop, narration = row
        uid = _video_uid(uid)
        start, stop = _clipped_window(_seconds(start, "start_second"), _seconds(stop, "end_second"))
        narrations = _narration_candidates(narration)
        return {
            "clip_id": f"{uid}_{index}",
            "video_uid": uid,
            "narration": narrations[0],
            "narrations": narrations,
            "verb_classes": [],
            "noun_classes": [],
            "start": start,
            "stop": stop,
        }


class EgoMCQBuilder(LocalVideoBuilder):
    """EgoMCQ questions: one example per entry of ``egomcq.json`` (split ``validation``).

    Example fields: ``question_id``, ``query`` (the query ``clip_text``), ``answer`` (index of the matching
    choice), ``types`` (1 inter-video, 2 intra-video), ``choices``: list (in key order "0".."4") of
    ``{video_uid, narration, start, stop, video_paths, chunk_starts}``. A question with a malformed or
    missing choice video is a bad row.
    """

    VERSION = datasets.Version("1.0.0")

    def _info(self) -> datasets.DatasetInfo:
        choice = {
            "video_uid": datasets.Value("string"),
            "narration": datasets.Value("string"),
            **CLIP_FEATURES,
        }
        features = datasets.Features(
            {
                "question_id": datasets.Value("string"),
                "query": datasets.Value("string"),
                "answer": datasets.Value("int64"),
                "types": datasets.Value("int64"),
                "choices": [choice],
            }
        )
        return datasets.DatasetInfo(
            description="EgoMCQ 5-way multiple-choice questions (Ego4D)", features=features
        )

    def _split_generators(self, dl_manager: datasets.DownloadManager) -> list[datasets.SplitGenerator]:
        path = self.annotation_path(EGOMCQ_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{EGOMCQ_FILE} not found in data_dir {self.config.data_dir}")
        return [datasets.SplitGenerator(name="validation", gen_kwargs={"path": path, "split": "validation"})]

    def _generate_examples(self, path: str, split: str):
        with open(path, encoding="utf-8") as handle:
            try:
                questions = json.load(handle)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}: not valid JSON ({err})") from None
        if not isinstance(questions, dict):
            raise ValueError(f"{path}: expected a JSON object of question id -> question")
        layout = self.video_layout()
        report = self.new_report(path)
        decided, contradicted = 0, []
        for index, (question_id, question) in enumerate(questions.items()):
            try:
                example = self._parse_question(str(question_id), question, layout)
            except BadRow as bad:
                self.handle_bad_row(report, str(question_id), str(bad))
                continue
            choice_type = mcq_type_of_choices([choice["video_uid"] for choice in example["choices"]])
            if choice_type is not None:
                decided += 1
                if choice_type != example["types"]:
                    contradicted.append(example["question_id"])
                    example["types"] = choice_type
            yield index, example
        self.finish_report(split, report)
        if contradicted:
            swapped = (
                " The file's codes look swapped (1 = intra-video)." if len(contradicted) == decided else ""
            )
            logger.warning(
                f"{path}: {len(contradicted)} of {decided} questions have a `types` code that contradicts their "
                f"choices (1 = inter-video: every choice from its own video; 2 = intra-video: all from one "
                f"video), first: question {contradicted[0]}; their type was taken from the choices.{swapped}"
            )

    def _parse_question(self, question_id: str, question: dict, layout) -> dict:
        if not isinstance(question, dict) or not isinstance(question.get("choices"), dict):
            raise BadRow("malformed question: no 'choices' object")
        if not isinstance(question.get("query"), dict):
            raise BadRow("malformed question: no 'query' object")
        choices = []
        for key in sorted(question["choices"], key=lambda k: parse_int(str(k), "choice key")):
            clip = question["choices"][key]
            if not isinstance(clip, dict):
                raise BadRow(f"malformed choice {key}")
            uid = _video_uid(clip.get("video_uid"))
            start, stop = _window(clip, f"choice {key} ")
            source = self.locate(layout, [uid], start, stop)
            choices.append(
                {
                    "video_uid": uid,
                    "narration": str(clip.get("clip_text") or "").strip(),
                    "start": start,
                    "stop": stop,
                    "video_paths": source.paths,
                    "chunk_starts": source.chunk_starts,
                }
            )
        answer = parse_int(question.get("answer"), "answer")
        if not 0 <= answer < len(choices):
            raise BadRow(f"bad answer: {answer} is not a choice index (0..{len(choices) - 1})")
        types = parse_int(question.get("types"), "types")
        if types not in MCQ_TYPES:
            raise BadRow(f"bad types: {types} (expected 1 = inter-video or 2 = intra-video)")
        return {
            "question_id": question_id,
            "query": str(question["query"].get("clip_text") or "").strip(),
            "answer": answer,
            "types": types,
            "choices": choices,
        }


def mcq_type_of_choices(video_uids: list[str]) -> int | None:
    """The EgoMCQ question type the choices' videos decide: `INTRA_VIDEO` when all come from one video,
    `INTER_VIDEO` when each comes from its own video, None when neither (or a single choice)."""
    distinct = len(set(video_uids))
    if len(video_uids) < 2:
        return None
    if distinct == 1:
        return INTRA_VIDEO
    return INTER_VIDEO if distinct == len(video_uids) else None


def load_egoclip(
    data_dir: str | os.PathLike, video_root: str | os.PathLike, cache_dir: str | None = None, **config_kwargs
) -> datasets.Dataset:
    """EgoClip pairs (``egoclip.csv``) built by `EgoClipBuilder`; ``config_kwargs`` as in `LocalVideoConfig`."""
    return load_local_split(EgoClipBuilder, data_dir, video_root, "train", cache_dir, **config_kwargs)


def load_egomcq(
    data_dir: str | os.PathLike, video_root: str | os.PathLike, cache_dir: str | None = None, **config_kwargs
) -> datasets.Dataset:
    """EgoMCQ questions (``egomcq.json``) built by `EgoMCQBuilder`; ``config_kwargs`` as in `LocalVideoConfig`."""
    return load_local_split(EgoMCQBuilder, data_dir, video_root, "validation", cache_dir, **config_kwargs)


def load_egoclip_plus(
    data_dir: str | os.PathLike,
    video_root: str | os.PathLike,
    annotation_file: str = EGOCLIP_PLUS_FILE,
    cache_dir: str | None = None,
    **config_kwargs,
) -> datasets.Dataset:
    """EgoClip+ pairs (LaViLa pickle ``annotation_file`` in ``data_dir``) built by `EgoClipPlusBuilder`.

    ``config_kwargs`` as in `LocalVideoConfig` (``chunk_len``, ``ext``, ``on_bad_row``).
    """
    return load_local_split(
        EgoClipPlusBuilder,
        data_dir,
        video_root,
        "train",
        cache_dir,
        annotation_file=annotation_file,
        **config_kwargs,
    )
