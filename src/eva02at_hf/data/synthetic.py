"""A small synthetic egocentric retrieval set in the EK-100 MIR layout, for tests, demos and benchmarks.

Each clip shows one object (a coloured shape) undergoing an action; captions read like EK-100 narrations
("move the red square left"). Verbs come in time-reversed pairs: move left / right, move up / down,
appear / disappear, grow / shrink. A clip of a verb and the clip of its reverse drawn with the same random
parameters hold the same frames in reverse order, so a single frame, the frame mean or any other order-free
statistic cannot tell the two apart: recognising the verb needs temporal order.

Nouns are the shape (the main ``noun``) and the colour; ``all_noun_classes`` is ``[shape, colour]``, so the
part-of-speech IoU relevancy takes graded values (1, 2/3, 1/2, 1/6, 0).

``task="event_order"`` writes a harder variant in which the verb is the order of several events: a clip shows a
red, a green and a blue shape (the clip's noun) one after the other, each for a third of the clip at its own
random place, and the caption names the order ("red then green then blue square"; 6 verbs, the permutations).
Every clip holds the same three events for the same time, so anything but the order of the frames is the same
for all six verbs.

Written files (``DIR`` = ``out_dir``)::

    DIR/videos/<video_id>.mp4                        raw layout (chunk_len=None), or
    DIR/videos/<video_id>.mp4/<chunk start>.mp4      pre-chunked layout (chunk_len=L seconds)
    DIR/EPIC_100_retrieval_train.csv                 clips, exact EK-100 column layout
    DIR/EPIC_100_retrieval_test.csv
    DIR/EPIC_100_retrieval_train_sentence.csv        unique train narrations with verb / noun classes
    DIR/EPIC_100_retrieval_test_sentence.csv         unique test narrations (the text queries)
    DIR/EPIC_100_verb_classes.csv, DIR/EPIC_100_noun_classes.csv, DIR/EPIC_100_video_info.csv

Each video file holds one to ``max_clips_per_video`` clips separated by empty gap frames, so clips are windows
``[start_timestamp, stop_timestamp]`` ("HH:MM:SS.ff") of longer videos, as in EK-100.

``layouts`` (or `write_egoclip_layout` / `write_charades_ego_layout` on an existing set) also write the same
clips' annotations in the layouts of the other benchmarks, read by `eva02at_hf.data.ego4d` and
`eva02at_hf.data.charades_ego` with ``video_root = DIR/videos``::

    DIR/egoclip.csv        "egoclip": the train clips as tab-separated EgoClip pairs (tags = verb / noun classes)
    DIR/egomcq.json        EgoMCQ questions on the test clips: 5 candidates, types 1 (inter) and 2 (intra-video)
    DIR/CharadesEgo_v1_{train,test}_only1st.csv   "charades_ego": one row per video of the split, its clips
    DIR/Charades_v1_classes.txt                   as actions; classes = verb x shape ("move the square left")

Command line: ``python -m eva02at_hf.data.synthetic --out DIR --num-clips N --seed S [--layouts egoclip ...]``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

import av
import numpy as np
import pandas as pd

SHAPES = ("square", "circle", "triangle")
COLOURS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (50, 80, 235)}
VERBS = ("move-left", "move-right", "move-up", "move-down", "appear", "disappear", "grow", "shrink")
REVERSE_VERB = {0: 1, 1: 0, 2: 3, 3: 2, 4: 5, 5: 4, 6: 7, 7: 6}
_VERB_CATEGORY = ("motion", "motion", "motion", "motion", "visibility", "visibility", "size", "size")
_CAPTIONS = (
    "move the {noun} left",
    "move the {noun} right",
    "move the {noun} up",
    "move the {noun} down",
    "make the {noun} appear",
    "make the {noun} disappear",
    "grow the {noun}",
    "shrink the {noun}",
)
NOUNS = SHAPES + tuple(COLOURS)
TASKS = ("actions", "event_order")
EVENT_ORDERS = tuple(itertools.permutations(range(len(COLOURS))))
ORDER_VERBS = tuple("-".join(tuple(COLOURS)[c] for c in order) for order in EVENT_ORDERS)
LAYOUTS = ("egoclip", "charades_ego")
MCQ_CHOICES = 5
CHARADES_CLASSES = [_CAPTIONS[verb].format(noun=shape) for verb in range(len(VERBS)) for shape in SHAPES]
CLIP_COLUMNS = [
    "narration_id",
    "participant_id",
    "video_id",
    "narration_timestamp",
    "start_timestamp",
    "stop_timestamp",
    "start_frame",
    "stop_frame",
    "narration",
    "verb",
    "verb_class",
    "noun",
    "noun_class",
    "all_nouns",
    "all_noun_classes",
]


@dataclass(frozen=True)
class Motion:
    """Per-frame state of the object: ``centres`` (T, 2) as (x, y) pixels, ``radii`` (T,), ``visible`` (T,)."""

    centres: np.ndarray
    radii: np.ndarray
    visible: np.ndarray


@dataclass(frozen=True)
class SyntheticSummary:
    """What `generate` wrote."""

    out_dir: str
    num_train: int
    num_test: int
    num_videos: int
    num_sentences: int


def sample_motion(verb: int, rng: np.random.Generator, size: int, num_frames: int) -> Motion:
    """Draw the object trajectory of a ``verb`` clip on a ``size`` x ``size`` frame.

    The draw uses ``rng`` identically for a verb and its reverse (`REVERSE_VERB`); the reverse verb gets the
    same trajectory played backwards.
    """
    forward = min(verb, REVERSE_VERB[verb])
    t = np.linspace(0.0, 1.0, num_frames)
    if forward in (0, 2):  # horizontal (0) or vertical (2) move, constant size
        radius = rng.uniform(0.10, 0.15) * size
        travel = 0.45 * size
        along = rng.uniform(radius + travel / 2, size - 1 - radius - travel / 2)
        across = rng.uniform(radius, size - 1 - radius)
        path = along + travel / 2 - travel * t
        centres = np.stack([path, np.full(num_frames, across)], axis=1)
        if forward == 2:
            centres = centres[:, ::-1]
        radii = np.full(num_frames, radius)
        visible = np.ones(num_frames, dtype=bool)
    elif forward == 4:  # appear: empty first half, visible second half
        radius = rng.uniform(0.12, 0.18) * size
        centres = np.tile(rng.uniform(radius, size - 1 - radius, size=2), (num_frames, 1))
        radii = np.full(num_frames, radius)
        visible = np.arange(num_frames) >= num_frames // 2
    else:  # grow
        small, large = 0.10 * size, 0.25 * size
        centres = np.tile(rng.uniform(large, size - 1 - large, size=2), (num_frames, 1))
        radii = small + (large - small) * t
        visible = np.ones(num_frames, dtype=bool)
    if verb != forward:
        centres, radii, visible = centres[::-1], radii[::-1], visible[::-1]
    return Motion(np.ascontiguousarray(centres), np.ascontiguousarray(radii), np.ascontiguousarray(visible))


def shape_mask(shape: str, centre: np.ndarray, radius: float, size: int) -> np.ndarray:
    """(size, size) boolean mask of a square, circle or (upward) triangle of half-size ``radius``."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    dx, dy = x - centre[0], y - centre[1]
    if shape == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) <= radius
    if shape == "circle":
        return dx**2 + dy**2 <= radius**2
    if shape == "triangle":
        return (np.abs(dy) <= radius) & (np.abs(dx) <= (dy + radius) / 2)
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def render_clip(motion: Motion, shape: str, colour: str, background: int, size: int) -> np.ndarray:
    """Frames of one clip, ``(T, size, size, 3)`` uint8, on a flat grey ``background``."""
    frames = np.full((len(motion.radii), size, size, 3), background, dtype=np.uint8)
    for frame, centre, radius, visible in zip(
        frames, motion.centres, motion.radii, motion.visible, strict=True
    ):
        if visible:
            frame[shape_mask(shape, centre, radius, size)] = COLOURS[colour]
    return frames


def render_event_order_clip(
    order: Sequence[int], shape: str, rng: np.random.Generator, background: int, size: int, num_frames: int
) -> np.ndarray:
    """Frames ``(T, size, size, 3)`` of an event-order clip: the colours ``order`` (indices into `COLOURS`) shown
    as ``shape`` one after the other, each for an equal share of the ``num_frames`` at its own random place."""
    frames = np.full((num_frames, size, size, 3), background, dtype=np.uint8)
    bounds = np.linspace(0, num_frames, len(order) + 1).round().astype(int)
    for colour, first, last in zip(order, bounds[:-1], bounds[1:], strict=True):
        radius = rng.uniform(0.15, 0.22) * size
        centre = rng.uniform(radius, size - 1 - radius, size=2)
        frames[first:last, shape_mask(shape, centre, radius, size)] = COLOURS[tuple(COLOURS)[colour]]
    return frames


def _draw_clip(
    task: str, rng: np.random.Generator, background: int, size: int, num_frames: int
) -> tuple[np.ndarray, dict]:
    """Frames and EK-100 annotation fields of one clip of ``task``."""
    if task == "event_order":
        verb, shape_id = (int(v) for v in rng.integers((len(EVENT_ORDERS), len(SHAPES))))
        shape = SHAPES[shape_id]
        frames = render_event_order_clip(EVENT_ORDERS[verb], shape, rng, background, size, num_frames)
        caption = " then ".join(tuple(COLOURS)[c] for c in EVENT_ORDERS[verb]) + f" {shape}"
        return frames, {
            "narration": caption,
            "verb": ORDER_VERBS[verb],
            "verb_class": verb,
            "noun": shape,
            "noun_class": shape_id,
            "all_nouns": str([shape]),
            "all_noun_classes": str([shape_id]),
        }
    verb, shape_id, colour_id = (int(v) for v in rng.integers((len(VERBS), len(SHAPES), len(COLOURS))))
    shape, colour = SHAPES[shape_id], tuple(COLOURS)[colour_id]
    frames = render_clip(sample_motion(verb, rng, size, num_frames), shape, colour, background, size)
    return frames, {
        "narration": _caption(verb, shape, colour),
        "verb": VERBS[verb],
        "verb_class": verb,
        "noun": shape,
        "noun_class": shape_id,
        "all_nouns": str([shape, colour]),
        "all_noun_classes": str([shape_id, len(SHAPES) + colour_id]),
    }


def write_video(path: str, frames: np.ndarray, fps: int) -> None:
    """Encode ``frames`` (T, H, W, 3) uint8 to ``path`` with H.264 (near-lossless, no B-frames), pts = index."""
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "8"}
        for index, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def format_timestamp(seconds: float, decimals: int = 2) -> str:
    """EK-100 timestamp ``HH:MM:SS.ff`` (``decimals`` digits after the point)."""
    hundredths = round(seconds * 10**decimals)
    whole, fraction = divmod(hundredths, 10**decimals)
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{fraction:0{decimals}d}"


def _caption(verb: int, shape: str, colour: str) -> str:
    return _CAPTIONS[verb].format(noun=f"{colour} {shape}")


def _write_videos(out_dir: str, video_id: str, frames: np.ndarray, fps: int, chunk_len: int | None) -> None:
    if chunk_len is None:
        write_video(os.path.join(out_dir, "videos", f"{video_id}.mp4"), frames, fps)
        return
    folder = os.path.join(out_dir, "videos", f"{video_id}.mp4")
    os.makedirs(folder, exist_ok=True)
    per_chunk = chunk_len * fps
    for first in range(0, len(frames), per_chunk):
        write_video(os.path.join(folder, f"{first // fps}.mp4"), frames[first : first + per_chunk], fps)


def _sentence_tables(clips: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train-style sentence table with classes, test-style sentence table) of the unique narrations."""
    unique = clips.drop_duplicates("narration", keep="first")
    with_classes = pd.DataFrame(
        {
            "narration_id": unique["narration_id"],
            "narration": unique["narration"],
            "verb_class": unique["verb_class"],
            "noun_classes": unique["all_noun_classes"],
            "verb": unique["verb"],
            "nouns": unique["all_nouns"],
        }
    )
    return with_classes, unique[["narration_id", "narration"]]


def _class_table(keys: tuple[str, ...], categories: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame(
        {"id": range(len(keys)), "key": keys, "instances": [str([k]) for k in keys], "category": categories}
    )


def _sort_by_narration_id(clips: pd.DataFrame) -> pd.DataFrame:
    """Row order of the official files: narration ids sorted as strings (``P01_01_10`` before ``P01_01_2``)."""
    return clips.sort_values("narration_id", kind="stable").reset_index(drop=True)


def generate(
    out_dir: str | os.PathLike,
    num_clips: int,
    seed: int,
    size: int = 32,
    fps: int = 10,
    frames_per_clip: int = 8,
    gap_frames: int = 3,
    max_clips_per_video: int = 3,
    test_fraction: float = 0.25,
    chunk_len: int | None = None,
    layouts: Sequence[str] = (),
    task: str = "actions",
) -> SyntheticSummary:
    """Write the synthetic set to ``out_dir`` (see the module docstring for the files).

    Args:
        out_dir: output folder (created).
        num_clips: total clips over both splits (>= 2); whole videos go to one split.
        seed: everything (annotations and pixels) is a deterministic function of the arguments.
        size: frame height and width in pixels (even, >= 16).
        fps: frame rate, at most 25 so that centisecond timestamps fall strictly between frames.
        frames_per_clip: frames inside each clip window (>= 2).
        gap_frames: empty frames before, between and after the clips of a video (>= 1).
        max_clips_per_video: each video holds 1 to this many clips.
        test_fraction: approximate fraction of clips in the test split.
        chunk_len: ``None`` writes one file per video; an integer writes the pre-chunked layout with chunks of
            this many seconds (``videos/<video_id>.mp4/<chunk start>.mp4``).
        layouts: annotation layouts of `LAYOUTS` written besides the EK-100 files, from the same clips
            (`write_egoclip_layout`, `write_charades_ego_layout`); "egoclip" needs ``max_clips_per_video >= 5``.
        task: ``"actions"`` (time-reversible motions of one object) or ``"event_order"`` (the verb is the order
            of three coloured events; ``frames_per_clip`` >= 3, EK-100 files only).
    """
    _check_arguments(
        num_clips, size, fps, frames_per_clip, gap_frames, max_clips_per_video, test_fraction, chunk_len
    )
    if task not in TASKS:
        raise ValueError(f"`task` must be one of {TASKS}, got {task!r}")
    if task == "event_order" and (layouts or frames_per_clip < len(COLOURS)):
        raise ValueError(
            f"task 'event_order' needs frames_per_clip >= {len(COLOURS)} (got {frames_per_clip}) and writes the "
            f"EK-100 files only (got layouts {list(layouts)})"
        )
    unknown = sorted(set(layouts) - set(LAYOUTS))
    if unknown:
        raise ValueError(f"`layouts` must be among {LAYOUTS}, got {unknown}")
    out_dir = os.fspath(out_dir)
    os.makedirs(os.path.join(out_dir, "videos"), exist_ok=True)
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    video_rows: list[dict] = []
    video_index = 0
    while len(rows) < num_clips:
        participant = f"P{video_index // 10 + 1:02d}"
        video_id = f"{participant}_{video_index % 10 + 1:02d}"
        num_here = min(int(rng.integers(1, max_clips_per_video + 1)), num_clips - len(rows))
        background = int(rng.integers(16, 72))
        frames = [np.full((gap_frames, size, size, 3), background, dtype=np.uint8)]
        for clip_index in range(num_here):
            first = sum(len(f) for f in frames)
            clip_frames, annotation = _draw_clip(task, rng, background, size, frames_per_clip)
            frames.append(clip_frames)
            frames.append(np.full((gap_frames, size, size, 3), background, dtype=np.uint8))
            start, stop = (first - 0.5) / fps, (first + frames_per_clip - 0.5) / fps
            rows.append(
                {
                    "narration_id": f"{video_id}_{clip_index}",
                    "participant_id": participant,
                    "video_id": video_id,
                    "narration_timestamp": format_timestamp((start + stop) / 2, decimals=3),
                    "start_timestamp": format_timestamp(start),
                    "stop_timestamp": format_timestamp(stop),
                    "start_frame": first + 1,
                    "stop_frame": first + frames_per_clip,
                    **annotation,
                }
            )
        video = np.concatenate(frames)
        _write_videos(out_dir, video_id, video, fps, chunk_len)
        video_rows.append(
            {
                "video_id": video_id,
                "duration": len(video) / fps,
                "fps": float(fps),
                "resolution": f"{size}x{size}",
            }
        )
        video_index += 1
    clips = pd.DataFrame(rows, columns=CLIP_COLUMNS)
    test_videos = _pick_test_videos(clips, test_fraction, rng)
    splits = {
        "train": _sort_by_narration_id(clips[~clips["video_id"].isin(test_videos)]),
        "test": _sort_by_narration_id(clips[clips["video_id"].isin(test_videos)]),
    }
    for split, table in splits.items():
        table.to_csv(os.path.join(out_dir, f"EPIC_100_retrieval_{split}.csv"), index=False)
    train_sentences, _ = _sentence_tables(splits["train"])
    _, test_sentences = _sentence_tables(splits["test"])
    train_sentences.to_csv(os.path.join(out_dir, "EPIC_100_retrieval_train_sentence.csv"), index=False)
    test_sentences.to_csv(os.path.join(out_dir, "EPIC_100_retrieval_test_sentence.csv"), index=False)
    verbs = (VERBS, _VERB_CATEGORY) if task == "actions" else (ORDER_VERBS, ("order",) * len(ORDER_VERBS))
    _class_table(*verbs).to_csv(os.path.join(out_dir, "EPIC_100_verb_classes.csv"), index=False)
    noun_categories = ("shape",) * len(SHAPES) + ("colour",) * len(COLOURS)
    _class_table(NOUNS, noun_categories).to_csv(
        os.path.join(out_dir, "EPIC_100_noun_classes.csv"), index=False
    )
    pd.DataFrame(video_rows).to_csv(os.path.join(out_dir, "EPIC_100_video_info.csv"), index=False)
    if "egoclip" in layouts:
        write_egoclip_layout(out_dir, seed)
    if "charades_ego" in layouts:
        write_charades_ego_layout(out_dir)
    return SyntheticSummary(
        out_dir=out_dir,
        num_train=len(splits["train"]),
        num_test=len(splits["test"]),
        num_videos=len(video_rows),
        num_sentences=len(test_sentences),
    )


def _read_split(out_dir: str, split: str) -> pd.DataFrame:
    """The EK-100 clip table of ``split`` written by `generate`, plus ``start`` / ``stop`` in seconds and the
    video ``duration``."""
    paths = [
        os.path.join(out_dir, name) for name in (f"EPIC_100_retrieval_{split}.csv", "EPIC_100_video_info.csv")
    ]
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} not found: write the synthetic set with `generate` first")
    clips = pd.read_csv(paths[0])
    durations = pd.read_csv(paths[1]).set_index("video_id")["duration"]
    clips["start"] = pd.to_timedelta(clips["start_timestamp"]).dt.total_seconds()
    clips["stop"] = pd.to_timedelta(clips["stop_timestamp"]).dt.total_seconds()
    clips["duration"] = clips["video_id"].map(durations)
    return clips


def _egoclip_table(clips: pd.DataFrame) -> pd.DataFrame:
    """EgoClip rows (columns of the EgoVLP ``egoclip.csv``) of EK-100-layout synthetic clips."""
    return pd.DataFrame(
        {
            "video_uid": clips["video_id"],
            "video_dur": clips["duration"],
            "narration_source": "narration_pass_1",
            "narration_ind": clips["narration_id"].str.rsplit("_", n=1).str[1].astype(int),
            "narration_time": ((clips["start"] + clips["stop"]) / 2).round(3),
            "clip_start": clips["start"],
            "clip_end": clips["stop"],
            "clip_text": clips["narration"],
            "tag_verb": clips["verb_class"].map(lambda verb: f"[{verb}]"),
            "tag_noun": clips["all_noun_classes"],
        }
    )


def _mcq_question(
    records: list[dict], answer: int, distractors: Sequence[int], types: int, rng: np.random.Generator
) -> dict:
    order = [int(j) for j in rng.permutation([answer, *distractors])]
    return {
        "query": records[answer],
        "choices": {str(k): records[j] for k, j in enumerate(order)},
        "answer": order.index(answer),
        "types": types,
    }


def egomcq_questions(egoclip: pd.DataFrame, rng: np.random.Generator) -> dict[str, dict]:
    """EgoMCQ questions over EgoClip rows, keyed ``"0", "1", ...``: every clip is the answer of an inter-video
    question (distractors: one clip from each of 4 other videos) and, if its video holds 4 more clips, of an
    intra-video question (distractors: 4 clips of its video). Distractors never share the query's text."""
    records = egoclip.to_dict("records")
    by_video = egoclip.groupby("video_uid", sort=True).indices
    questions = []
    for answer, record in enumerate(records):
        text = record["clip_text"]
        pools = {
            video: [int(j) for j in rows if records[j]["clip_text"] != text]
            for video, rows in by_video.items()
        }
        others = [video for video, pool in pools.items() if video != record["video_uid"] and pool]
        if len(others) >= MCQ_CHOICES - 1:
            videos = rng.choice(len(others), MCQ_CHOICES - 1, replace=False)
            distractors = [int(rng.choice(pools[others[v]])) for v in videos]
            questions.append(_mcq_question(records, answer, distractors, 1, rng))
        same = pools[record["video_uid"]]
        if len(same) >= MCQ_CHOICES - 1:
            distractors = rng.choice(same, MCQ_CHOICES - 1, replace=False)
            questions.append(_mcq_question(records, answer, distractors, 2, rng))
    return {str(index): question for index, question in enumerate(questions)}


def write_egoclip_layout(out_dir: str | os.PathLike, seed: int = 0) -> dict[str, int]:
    """Write ``egoclip.csv`` (the train clips) and ``egomcq.json`` (questions on the test clips, see
    `egomcq_questions`) next to the EK-100 files of a synthetic set; returns the number of rows / questions.

    Raises ``ValueError`` when the test split cannot give both question types (5 test videos and a test video
    with 5 clips are needed: raise ``num_clips``, ``test_fraction`` or ``max_clips_per_video``).
    """
    out_dir = os.fspath(out_dir)
    train = _egoclip_table(_read_split(out_dir, "train"))
    test = _egoclip_table(_read_split(out_dir, "test"))
    questions = egomcq_questions(test, np.random.default_rng([seed, 1]))
    counts = {kind: sum(q["types"] == kind for q in questions.values()) for kind in (1, 2)}
    if not all(counts.values()):
        raise ValueError(
            f"{out_dir}: the test split gives {counts[1]} inter-video and {counts[2]} intra-video EgoMCQ "
            f"questions; both need {MCQ_CHOICES} test videos / {MCQ_CHOICES} clips in one test video (raise "
            "num_clips, test_fraction or max_clips_per_video)"
        )
    train.to_csv(os.path.join(out_dir, "egoclip.csv"), sep="\t", index=False)
    with open(os.path.join(out_dir, "egomcq.json"), "w", encoding="utf-8") as handle:
        json.dump(questions, handle, indent=1)
    return {"egoclip": len(train), "inter_video": counts[1], "intra_video": counts[2]}


def _charades_table(clips: pd.DataFrame) -> pd.DataFrame:
    """One Charades-Ego row per video: its clips as ``actions`` ``"c<verb x shape> start stop;..."``."""
    rows = []
    for video_id, group in clips.groupby("video_id", sort=True):
        labels = group["verb_class"] * len(SHAPES) + group["noun_class"]
        actions = ";".join(
            f"c{label:03d} {start:.2f} {stop:.2f}"
            for label, start, stop in zip(labels, group["start"], group["stop"], strict=True)
        )
        rows.append(
            {
                "id": video_id,
                "subject": group["participant_id"].iloc[0],
                "scene": "synthetic",
                "quality": "",
                "relevance": "",
                "verified": "Yes",
                "script": "; ".join(group["narration"]),
                "objects": ";".join(sorted(set(group["noun"]))),
                "descriptions": "; ".join(group["narration"]),
                "actions": actions,
                "length": group["duration"].iloc[0],
            }
        )
    return pd.DataFrame(rows)


def write_charades_ego_layout(out_dir: str | os.PathLike) -> dict[str, int]:
    """Write ``CharadesEgo_v1_{train,test}_only1st.csv`` (the videos of each split) and
    ``Charades_v1_classes.txt`` (`CHARADES_CLASSES`, class ``verb * 3 + shape``) next to the EK-100 files of a
    synthetic set; returns the number of videos per split."""
    out_dir = os.fspath(out_dir)
    counts = {}
    for split in ("train", "test"):
        table = _charades_table(_read_split(out_dir, split))
        table.to_csv(os.path.join(out_dir, f"CharadesEgo_v1_{split}_only1st.csv"), index=False)
        counts[split] = len(table)
    with open(os.path.join(out_dir, "Charades_v1_classes.txt"), "w", encoding="utf-8") as handle:
        handle.writelines(f"c{index:03d} {name}\n" for index, name in enumerate(CHARADES_CLASSES))
    return counts


def _pick_test_videos(clips: pd.DataFrame, test_fraction: float, rng: np.random.Generator) -> set[str]:
    """Whole videos, in random order, until the test split holds ``test_fraction`` of the clips.

    Both splits get at least one video when there are two or more.
    """
    counts = clips.groupby("video_id", sort=True).size()
    order = rng.permutation(len(counts))
    chosen: set[str] = set()
    total = 0
    for index in order[: max(len(counts) - 1, 1)]:
        if chosen and total >= test_fraction * len(clips):
            break
        chosen.add(counts.index[index])
        total += int(counts.iloc[index])
    return chosen


def _check_arguments(
    num_clips: int,
    size: int,
    fps: int,
    frames_per_clip: int,
    gap_frames: int,
    max_clips_per_video: int,
    test_fraction: float,
    chunk_len: int | None,
) -> None:
    checks = [
        (num_clips >= 2, f"`num_clips` must be >= 2, got {num_clips}"),
        (size >= 16 and size % 2 == 0, f"`size` must be an even number >= 16, got {size}"),
        (1 <= fps <= 25, f"`fps` must be in [1, 25] (centisecond timestamps), got {fps}"),
        (frames_per_clip >= 2, f"`frames_per_clip` must be >= 2, got {frames_per_clip}"),
        (gap_frames >= 1, f"`gap_frames` must be >= 1, got {gap_frames}"),
        (max_clips_per_video >= 1, f"`max_clips_per_video` must be >= 1, got {max_clips_per_video}"),
        (0.0 < test_fraction < 1.0, f"`test_fraction` must be in (0, 1), got {test_fraction}"),
        (chunk_len is None or chunk_len >= 1, f"`chunk_len` must be None or >= 1 second, got {chunk_len}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--num-clips", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=32, help="frame side in pixels")
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--frames-per-clip", type=int, default=8)
    parser.add_argument("--max-clips-per-video", type=int, default=3)
    parser.add_argument("--test-fraction", type=float, default=0.25)
    parser.add_argument("--chunk-len", type=int, default=None, help="write the pre-chunked layout (seconds)")
    parser.add_argument(
        "--layouts", nargs="+", choices=LAYOUTS, default=[], help="also write these annotation layouts"
    )
    parser.add_argument(
        "--task", choices=TASKS, default="actions", help="what the verbs are (module docstring)"
    )
    args = parser.parse_args(argv)
    summary = generate(
        args.out,
        args.num_clips,
        args.seed,
        size=args.size,
        fps=args.fps,
        frames_per_clip=args.frames_per_clip,
        max_clips_per_video=args.max_clips_per_video,
        test_fraction=args.test_fraction,
        chunk_len=args.chunk_len,
        layouts=args.layouts,
        task=args.task,
    )
    print(
        f"wrote {summary.num_train} train and {summary.num_test} test clips ({summary.num_videos} videos, "
        f"{summary.num_sentences} test sentences) to {summary.out_dir}"
    )


if __name__ == "__main__":
    main()
