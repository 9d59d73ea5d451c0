"""Ego4D pre-training pairs (EgoClip) and the EgoMCQ benchmark, from the EgoVLP annotation files.

Annotation files (``data_dir``, released with EgoVLP):

* ``egoclip.csv``: **tab-separated**, one row per clip-narration pair, columns ``video_uid, video_dur,
  narration_source, narration_ind, narration_time, clip_start, clip_end, clip_text, tag_verb, tag_noun``;
  times in seconds; ``clip_text`` is the raw Ego4D narration (``"#C C picks a bag of clothes"``);
  ``tag_verb`` / ``tag_noun`` are Python-literal lists of class ids (``"[93]"``, ``"[192, 115]"``).
* ``egomcq.json``: ``{question id: {"query": <clip>, "choices": {"0": <clip>, ..., "4": <clip>},
  "answer": <index of the matching choice>, "types": 1 | 2}}`` where each ``<clip>`` is an EgoClip row as a
  dict (``video_uid, clip_start, clip_end, clip_text, ...``) and ``types`` is 1 for inter-video (choices from
  different videos) and 2 for intra-video (choices from the query's own video).

Videos (``video_root``): raw ``<root>/<video_uid>.mp4`` or pre-chunked ``<root>/<video_uid>.mp4/<start>.mp4``
(``chunk_len=300`` in the LaViLa / AVION preprocessing). Negative ``clip_start`` values are clipped to 0 as
in EgoVLP.
"""

from __future__ import annotations

import json
import os

import datasets

from ._common import (
    CLIP_FEATURES,
    BadRow,
    LocalVideoBuilder,
    check_columns,
    check_window,
    load_split,
    parse_float,
    parse_int,
    parse_int_list,
    read_table,
)

EGOCLIP_FILE = "egoclip.csv"
EGOMCQ_FILE = "egomcq.json"
MCQ_TYPES = {1: "inter-video", 2: "intra-video"}
_EGOCLIP_REQUIRED = ("video_uid", "clip_start", "clip_end", "clip_text", "tag_verb", "tag_noun")


def _window(clip: dict, where: str) -> tuple[float, float]:
    start = max(parse_float(clip.get("clip_start"), f"{where}clip_start"), 0.0)
    stop = parse_float(clip.get("clip_end"), f"{where}clip_end")
    check_window(start, stop)
    return start, stop


def _video_uid(clip: dict) -> str:
    uid = str(clip.get("video_uid") or "").strip()
    if not uid:
        raise BadRow("missing video_uid")
    return uid


class EgoClipBuilder(LocalVideoBuilder):
    """EgoClip pre-training pairs: one example per row of ``egoclip.csv`` (split ``train``).

    Example fields: ``clip_id`` (``<video_uid>_<narration_source>_<narration_ind>``), ``video_uid``,
    ``narration`` (``clip_text``), ``verb_classes`` / ``noun_classes`` (``tag_verb`` / ``tag_noun``),
    ``start, stop, video_paths, chunk_starts``.
    """

    VERSION = datasets.Version("1.0.0")

    def _info(self) -> datasets.DatasetInfo:
        features = datasets.Features(
            {
                "clip_id": datasets.Value("string"),
                "video_uid": datasets.Value("string"),
                "narration": datasets.Value("string"),
                "verb_classes": datasets.Sequence(datasets.Value("int64")),
                "noun_classes": datasets.Sequence(datasets.Value("int64")),
                **CLIP_FEATURES,
            }
        )
        return datasets.DatasetInfo(description="EgoClip video-narration pairs (Ego4D)", features=features)

    def _split_generators(self, dl_manager: datasets.DownloadManager) -> list[datasets.SplitGenerator]:
        path = self.annotation_path(EGOCLIP_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{EGOCLIP_FILE} not found in data_dir {self.config.data_dir}")
        check_columns(path, _EGOCLIP_REQUIRED, delimiter="\t")
        return [datasets.SplitGenerator(name="train", gen_kwargs={"path": path, "split": "train"})]

    def _generate_examples(self, path: str, split: str):
        layout = self.video_layout()
        report = self.new_report(path)
        for index, row in enumerate(read_table(path, _EGOCLIP_REQUIRED, delimiter="\t")):
            clip_id = "_".join(
                str(row.get(k) or "") for k in ("video_uid", "narration_source", "narration_ind")
            )
            try:
                uid = _video_uid(row)
                start, stop = _window(row, "")
                example = {
                    "clip_id": clip_id,
                    "video_uid": uid,
                    "narration": (row.get("clip_text") or "").strip(),
                    "verb_classes": parse_int_list(row.get("tag_verb"), "tag_verb"),
                    "noun_classes": parse_int_list(row.get("tag_noun"), "tag_noun"),
                    "start": start,
                    "stop": stop,
                }
                source = self.locate(layout, [uid], start, stop)
            except BadRow as bad:
                self.handle_bad_row(
                    report, clip_id if row.get("video_uid") else f"line {index + 2}", str(bad)
                )
                continue
            yield index, {**example, "video_paths": source.paths, "chunk_starts": source.chunk_starts}
        self.finish_report(split, report)


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
        for index, (question_id, question) in enumerate(questions.items()):
            try:
                example = self._parse_question(str(question_id), question, layout)
            except BadRow as bad:
                self.handle_bad_row(report, str(question_id), str(bad))
                continue
            yield index, example
        self.finish_report(split, report)

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
            uid = _video_uid(clip)
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


def load_egoclip(
    data_dir: str | os.PathLike, video_root: str | os.PathLike, cache_dir: str | None = None, **config_kwargs
) -> datasets.Dataset:
    """EgoClip pairs (``egoclip.csv``) built by `EgoClipBuilder`; ``config_kwargs`` as in `LocalVideoConfig`."""
    builder = EgoClipBuilder(
        data_dir=os.fspath(data_dir), video_root=os.fspath(video_root), cache_dir=cache_dir, **config_kwargs
    )
    return load_split(builder, "train")


def load_egomcq(
    data_dir: str | os.PathLike, video_root: str | os.PathLike, cache_dir: str | None = None, **config_kwargs
) -> datasets.Dataset:
    """EgoMCQ questions (``egomcq.json``) built by `EgoMCQBuilder`; ``config_kwargs`` as in `LocalVideoConfig`."""
    builder = EgoMCQBuilder(
        data_dir=os.fspath(data_dir), video_root=os.fspath(video_root), cache_dir=cache_dir, **config_kwargs
    )
    return load_split(builder, "validation")
