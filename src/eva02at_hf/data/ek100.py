"""EPIC-KITCHENS-100 multi-instance retrieval (EK-100 MIR) from the official annotation files.

Annotation files (``data_dir``, from the epic-kitchens-100-annotations repository, ``retrieval_annotations/``):

* ``EPIC_100_retrieval_{train,test}.csv``: one row per clip. Columns ``narration_id, participant_id, video_id,
  narration_timestamp, start_timestamp, stop_timestamp, start_frame, stop_frame, narration, verb, verb_class,
  noun, noun_class, all_nouns, all_noun_classes``; timestamps are ``HH:MM:SS.ff``; ``all_nouns`` and
  ``all_noun_classes`` are Python-literal lists (``"[13, 3]"``), parsed with `ast.literal_eval`.
* ``EPIC_100_retrieval_train_sentence.csv``: the unique train narrations, ``narration_id, narration,
  verb_class, noun_classes, verb, nouns`` (``narration_id`` = first clip with that narration).
* ``EPIC_100_retrieval_test_sentence.csv``: the unique test narrations (the text queries), ``narration_id,
  narration``; their classes are those of the clip ``narration_id``.
* optional ``relevancy/caption_relevancy_EPIC_100_retrieval_test.pkl``: the official (clips x sentences)
  relevancy, used to check the one built here (`compare_with_official`).

Videos (``video_root``): raw ``<root>/P01/P01_01.MP4`` (or ``<root>/P01_01.MP4``), or the pre-chunked layout
``<root>/P01/P01_01.MP4/<chunk start>.MP4`` with ``chunk_len=15`` (see `eva02at_hf.data.video_layout`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import datasets
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..objectives.relevancy import pos_iou_relevancy
from ._common import (
    CLIP_FEATURES,
    BadRow,
    LocalVideoBuilder,
    check_choice,
    check_columns,
    check_window,
    load_local_split,
    parse_class_id,
    parse_int_list,
    parse_timestamp,
    read_table,
)

logger = logging.getLogger(__name__)

CLIP_FILE = "EPIC_100_retrieval_{split}.csv"
SENTENCE_FILE = "EPIC_100_retrieval_{split}_sentence.csv"
OFFICIAL_RELEVANCY_FILE = os.path.join("relevancy", "caption_relevancy_EPIC_100_retrieval_{split}.pkl")
SPLITS = ("train", "test")
_CLIP_REQUIRED = (
    "narration_id",
    "participant_id",
    "video_id",
    "start_timestamp",
    "stop_timestamp",
    "narration",
    "verb_class",
    "all_noun_classes",
)


def parse_clip_row(row: dict[str, str | None]) -> dict:
    """Fields of one ``EPIC_100_retrieval_*.csv`` row; raises ``BadRow`` with the reason if malformed."""
    narration_id = (row.get("narration_id") or "").strip()
    if not narration_id:
        raise BadRow("missing narration_id")
    start = parse_timestamp(row.get("start_timestamp"), "start_timestamp")
    stop = parse_timestamp(row.get("stop_timestamp"), "stop_timestamp")
    check_window(start, stop)
    participant_id, video_id = (row.get("participant_id") or "").strip(), (row.get("video_id") or "").strip()
    if not video_id or not participant_id:
        raise BadRow("missing video_id or participant_id")
    return {
        "narration_id": narration_id,
        "participant_id": participant_id,
        "video_id": video_id,
        "start": start,
        "stop": stop,
        "narration": (row.get("narration") or "").strip(),
        "verb_class": parse_class_id(row.get("verb_class"), "verb_class"),
        "noun_classes": parse_int_list(row.get("all_noun_classes"), "all_noun_classes"),
    }


class EK100MIRBuilder(LocalVideoBuilder):
    """EK-100 MIR clips: one example per row of ``EPIC_100_retrieval_{train,test}.csv`` (splits present).

    Example fields: ``narration_id, participant_id, video_id, start, stop`` (seconds), ``narration,
    verb_class, noun_classes`` (the row's ``all_noun_classes``), ``video_paths, chunk_starts`` (the file(s) of
    the window, see `eva02at_hf.data.video_layout`). Frames are decoded later (`eva02at_hf.data.collate`).

    >>> builder = EK100MIRBuilder(data_dir="annotations", video_root="EPIC-KITCHENS", chunk_len=15)
    >>> builder.download_and_prepare()
    >>> test = builder.as_dataset("test")
    >>> builder.bad_row_report("test").count
    """

    VERSION = datasets.Version("1.0.0")
    DEFAULT_EXTS = ("MP4", "mp4")

    def _info(self) -> datasets.DatasetInfo:
        features = datasets.Features(
            {
                "narration_id": datasets.Value("string"),
                "participant_id": datasets.Value("string"),
                "video_id": datasets.Value("string"),
                "narration": datasets.Value("string"),
                "verb_class": datasets.Value("int64"),
                "noun_classes": datasets.Sequence(datasets.Value("int64")),
                **CLIP_FEATURES,
            }
        )
        return datasets.DatasetInfo(
            description="EPIC-KITCHENS-100 multi-instance retrieval clips", features=features
        )

    def _split_generators(self, dl_manager: datasets.DownloadManager) -> list[datasets.SplitGenerator]:
        generators = [
            datasets.SplitGenerator(name=split, gen_kwargs={"path": path, "split": split})
            for split in SPLITS
            if os.path.isfile(path := self.annotation_path(CLIP_FILE.format(split=split)))
        ]
        if not generators:
            names = [CLIP_FILE.format(split=split) for split in SPLITS]
            raise FileNotFoundError(f"none of {names} found in data_dir {self.config.data_dir}")
        for generator in generators:
            check_columns(generator.gen_kwargs["path"], _CLIP_REQUIRED)
        return generators

    def _generate_examples(self, path: str, split: str):
        layout = self.video_layout()
        report = self.new_report(path)
        first_line: dict[str, int] = {}
        for index, row in enumerate(read_table(path, _CLIP_REQUIRED)):
            try:
                clip = parse_clip_row(row)
                if clip["narration_id"] in first_line:
                    raise BadRow(
                        f"duplicate narration_id: {clip['narration_id']} is also on line "
                        f"{first_line[clip['narration_id']]}"
                    )
                first_line[clip["narration_id"]] = index + 2
                stems = [f"{clip['participant_id']}/{clip['video_id']}", clip["video_id"]]
                source = self.locate(layout, stems, clip["start"], clip["stop"])
            except BadRow as bad:
                self.handle_bad_row(report, row.get("narration_id") or f"line {index + 2}", str(bad))
                continue
            yield index, {**clip, "video_paths": source.paths, "chunk_starts": source.chunk_starts}
        self.finish_report(split, report)


def load_ek100_mir(
    data_dir: str | os.PathLike,
    video_root: str | os.PathLike,
    split: str,
    cache_dir: str | None = None,
    **config_kwargs,
) -> datasets.Dataset:
    """The EK-100 MIR ``split`` ("train" / "test") clips built by `EK100MIRBuilder` (cached in ``cache_dir``).

    ``config_kwargs``: ``chunk_len``, ``ext``, ``on_bad_row`` (see `LocalVideoConfig`).
    """
    return load_local_split(EK100MIRBuilder, data_dir, video_root, split, cache_dir, **config_kwargs)


def load_ek100_sentences(data_dir: str | os.PathLike, split: str) -> datasets.Dataset:
    """The unique narrations of ``split``: ``narration_id, narration, verb_class, noun_classes``.

    Train reads the classes from ``EPIC_100_retrieval_train_sentence.csv``; test looks them up in
    ``EPIC_100_retrieval_test.csv`` by ``narration_id`` (falling back to the first clip with the same narration).
    Rows keep the file order, which is the column order of the official relevancy matrix. Sentences are queries,
    so a malformed sentence row raises ``ValueError`` naming the file and row the bad value came from (for test,
    the clip file's row) instead of being skipped.
    """
    check_choice("split", split, SPLITS)
    path = os.path.join(os.fspath(data_dir), SENTENCE_FILE.format(split=split))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"sentence file not found: {path}")
    if split == "train":
        rows = list(read_table(path, ("narration_id", "narration", "verb_class", "noun_classes")))
        classes = [
            (row["verb_class"], row["noun_classes"], f"{path}: line {line}: sentence {row['narration_id']!r}")
            for line, row in enumerate(rows, start=2)
        ]
        noun_column = "noun_classes"
    else:
        rows = list(read_table(path, ("narration_id", "narration")))
        classes = _test_sentence_classes(
            rows, path, os.path.join(os.fspath(data_dir), CLIP_FILE.format(split=split))
        )
        noun_column = "all_noun_classes"
    table: dict[str, list] = {"narration_id": [], "narration": [], "verb_class": [], "noun_classes": []}
    seen: set[str] = set()
    for row, (verb, nouns, where) in zip(rows, classes, strict=True):
        try:
            table["verb_class"].append(parse_class_id(verb, "verb_class"))
            table["noun_classes"].append(parse_int_list(nouns, noun_column))
        except BadRow as bad:
            raise ValueError(f"{where}: {bad}") from None
        if row["narration_id"] in seen:
            raise ValueError(f"{path}: duplicate sentence narration_id {row['narration_id']!r}")
        seen.add(row["narration_id"])
        table["narration_id"].append(row["narration_id"])
        table["narration"].append(row["narration"].strip())
    features = datasets.Features(
        {
            "narration_id": datasets.Value("string"),
            "narration": datasets.Value("string"),
            "verb_class": datasets.Value("int64"),
            "noun_classes": datasets.Sequence(datasets.Value("int64")),
        }
    )
    return datasets.Dataset.from_dict(table, features=features)


def _test_sentence_classes(
    rows: list[dict[str, str]], sentence_path: str, clip_path: str
) -> list[tuple[str | None, str | None, str]]:
    """(verb_class, all_noun_classes, where) of each test sentence, from its clip in the test clip file; ``where``
    names that clip's file, line and narration id, and the sentence (for errors)."""
    if not os.path.isfile(clip_path):
        raise FileNotFoundError(f"the test sentences take their classes from {clip_path}, which is missing")
    by_id: dict[str, tuple[str, str, str]] = {}
    by_text: dict[str, tuple[str, str, str]] = {}
    columns = ("narration_id", "narration", "verb_class", "all_noun_classes")
    for line, clip in enumerate(read_table(clip_path, columns), start=2):
        where = f"{clip_path}: line {line}: clip {clip['narration_id']!r}"
        classes = (clip["verb_class"], clip["all_noun_classes"], where)
        by_id[clip["narration_id"]] = classes
        by_text.setdefault((clip["narration"] or "").strip(), classes)
    classes = []
    for row in rows:
        found = by_id.get(row["narration_id"]) or by_text.get((row["narration"] or "").strip())
        if found is None:
            raise ValueError(
                f"test sentence {row['narration_id']!r} ({row['narration']!r}) not found in {clip_path}"
            )
        verb, nouns, where = found
        classes.append(
            (verb, nouns, f"{where} (classes of test sentence {row['narration_id']!r} of {sentence_path})")
        )
    return classes


def ek100_relevancy(
    clips: datasets.Dataset,
    sentences: datasets.Dataset,
    weights: tuple[float, float] = (0.5, 0.5),
    return_sparse: bool = False,
) -> np.ndarray | sp.csr_array:
    """(num_clips, num_sentences) float32 soft relevancy c_ij (EVA02-AT Eq. 5) from the verb / noun classes.

    Memory: dense float32 is 4 x clips x sentences bytes (0.15 GB on test, 4.3 GB on train); use
    ``return_sparse=True`` for train.
    """
    return pos_iou_relevancy(
        clips["verb_class"],
        clips["noun_classes"],
        sentences["verb_class"],
        sentences["noun_classes"],
        weights=weights,
        return_sparse=return_sparse,
    )


def clip_sentence_indices(clips: datasets.Dataset, sentences: datasets.Dataset) -> np.ndarray:
    """(num_clips,) int64: for each clip, the row of its own narration in ``sentences`` (the hard-mining anchor).

    Raises ``ValueError`` (with the count and the first clip ids) if a clip's narration is not a sentence.
    """
    index = {text: i for i, text in reversed(list(enumerate(sentences["narration"])))}
    narrations = [text.strip() for text in clips["narration"]]
    missing = [nid for nid, text in zip(clips["narration_id"], narrations, strict=True) if text not in index]
    if missing:
        raise ValueError(
            f"{len(missing)} clip narrations are not in the sentence table, first: {missing[:10]}"
        )
    return np.asarray([index[text] for text in narrations], dtype=np.int64)


@dataclass(frozen=True)
class RelevancyComparison:
    """Our relevancy vs the official one on the same clips: entries differing by more than ``atol``.

    ``first_mismatches``: up to 10 ``(clip narration_id, sentence narration_id, ours, official)``.
    """

    shape: tuple[int, int]
    atol: float
    max_abs_diff: float
    num_mismatched: int
    first_mismatches: list[tuple[str, str, float, float]]

    @property
    def fraction_mismatched(self) -> float:
        return self.num_mismatched / max(self.shape[0] * self.shape[1], 1)

    def summary(self) -> str:
        return (
            f"relevancy vs official on {self.shape[0]} x {self.shape[1]}: {self.num_mismatched} entries differ by "
            f"more than {self.atol} ({100 * self.fraction_mismatched:.4f} %), max |diff| {self.max_abs_diff:.4g}"
        )


def load_official_relevancy(
    clips: datasets.Dataset, sentences: datasets.Dataset, data_dir: str | os.PathLike, split: str = "test"
) -> np.ndarray | None:
    """The official (clips x sentences) relevancy pickle of ``split`` in ``data_dir``, rows aligned with ``clips``.

    The official matrix has one row per line of the clip csv and one column per sentence (file orders); rows of
    clips the builder dropped (e.g. missing videos) are left out. The pickle is read with a restricted unpickler
    (`eva02at_hf.metrics.load_relevancy_pickle`). Returns ``None`` when ``data_dir`` has no official file.
    """
    from ..metrics import load_relevancy_pickle

    data_dir = os.fspath(data_dir)
    candidates = [
        OFFICIAL_RELEVANCY_FILE.format(split=split),
        os.path.basename(OFFICIAL_RELEVANCY_FILE).format(split=split),
    ]
    found = [os.path.join(data_dir, c) for c in candidates if os.path.isfile(os.path.join(data_dir, c))]
    if not found:
        return None
    official = load_relevancy_pickle(found[0])
    order = pd.read_csv(
        os.path.join(data_dir, CLIP_FILE.format(split=split)), usecols=["narration_id"], dtype=str
    )
    row_of = {nid: i for i, nid in enumerate(order["narration_id"])}
    expected_shape = (len(row_of), len(sentences))
    if official.shape != expected_shape:
        raise ValueError(
            f"{found[0]}: shape {official.shape} does not match (clip rows, sentences) {expected_shape}"
        )
    rows = np.asarray([row_of[nid] for nid in clips["narration_id"]], dtype=np.int64)
    return np.asarray(official[rows], dtype=np.float32)


def compare_with_official(
    relevancy: np.ndarray | sp.sparray,
    clips: datasets.Dataset,
    sentences: datasets.Dataset,
    data_dir: str | os.PathLike,
    split: str = "test",
    atol: float = 1e-4,
) -> RelevancyComparison | None:
    """Compare ``relevancy`` (clips x sentences) with the official pickle in ``data_dir``, if present.

    Rows of clips dropped by the builder are left out (see `load_official_relevancy`). Returns ``None`` (and
    logs) when no official file exists.
    """
    official = load_official_relevancy(clips, sentences, data_dir, split)
    if official is None:
        logger.info("no official %s relevancy in %s; skipping the comparison", split, data_dir)
        return None
    return compare_relevancy(relevancy, official, clips, sentences, atol)


def compare_relevancy(
    relevancy: np.ndarray | sp.sparray,
    official: np.ndarray,
    clips: datasets.Dataset,
    sentences: datasets.Dataset,
    atol: float = 1e-4,
) -> RelevancyComparison:
    """Compare ``relevancy`` with ``official`` (both clips x sentences, rows aligned with ``clips``) and log it."""
    ours = relevancy.toarray() if sp.issparse(relevancy) else np.asarray(relevancy)
    diff = np.abs(ours - official)
    bad_i, bad_j = np.nonzero(diff > atol)
    sentence_ids = sentences["narration_id"]
    clip_ids = clips["narration_id"]
    comparison = RelevancyComparison(
        shape=ours.shape,
        atol=atol,
        max_abs_diff=float(diff.max(initial=0.0)),
        num_mismatched=int(bad_i.size),
        first_mismatches=[
            (clip_ids[i], sentence_ids[j], float(ours[i, j]), float(official[i, j]))
            for i, j in zip(bad_i[:10], bad_j[:10], strict=True)
        ],
    )
    (logger.warning if comparison.num_mismatched else logger.info)(comparison.summary())
    return comparison
