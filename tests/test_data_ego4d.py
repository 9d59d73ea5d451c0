"""EgoClip, EgoClip+ and EgoMCQ builders on annotation files in the EgoVLP / LaViLa layouts."""

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from eva02at_hf.data import (
    BadRowError,
    EgoClipPlusBuilder,
    EgoMCQBuilder,
    load_egoclip,
    load_egoclip_plus,
    load_egomcq,
)

EGOCLIP_HEADER = "video_uid\tvideo_dur\tnarration_source\tnarration_ind\tnarration_time\tclip_start\tclip_end\tclip_text\ttag_verb\ttag_noun"
EGOCLIP_ROWS = [
    "uid-a\t1800.0\tnarration_pass_1\t0\t1.2\t-0.3\t2.7\t#C C picks a bag of clothes from the floor\t[93]\t[192, 115]",
    "uid-a\t1800.0\tnarration_pass_1\t1\t301.0\t299.5\t302.5\t#C C drops the bag\t[12]\t[115]",
    "uid-b\t60.0\tnarration_pass_2\t4\t10.0\t9.0\t11.0\t#C C opens the door\t[4]\t[7]",
    # bad: unparsable tag list, missing clip_end, missing video
    "uid-a\t1800.0\tnarration_pass_1\t2\t5.0\t4.0\t6.0\t#C C waves\t[4\t[7]",
    "uid-a\t1800.0\tnarration_pass_1\t3\t5.0\t4.0\t\t#C C waves\t[4]\t[7]",
    "uid-c\t60.0\tnarration_pass_1\t0\t5.0\t4.0\t6.0\t#C C waves\t[4]\t[7]",
]


def _clip(uid, start, end, text):
    return {
        "video_uid": uid,
        "video_dur": 1800.0,
        "narration_source": "narration_pass_1",
        "narration_ind": 0,
        "narration_time": start,
        "clip_start": start,
        "clip_end": end,
        "clip_text": text,
        "tag_verb": "[1]",
        "tag_noun": "[2]",
    }


MCQ = {
    "0": {
        "query": _clip("uid-a", 1.0, 2.0, "#C C picks a bag"),
        "choices": {
            str(k): _clip("uid-a" if k != 3 else "uid-b", 10.0 * k, 10.0 * k + 1, f"c{k}") for k in range(5)
        },
        "answer": 3,
        "types": 2,
    },
    "1": {
        "query": _clip("uid-b", 1.0, 2.0, "#C C opens the door"),
        "choices": {str(k): _clip("uid-b", 1.0 + k, 2.0 + k, f"d{k}") for k in (4, 0, 1, 2, 3)},
        "answer": 0,
        "types": 1,
    },
    "2": {  # a choice video is missing
        "query": _clip("uid-b", 1.0, 2.0, "#C C"),
        "choices": {str(k): _clip("uid-z" if k == 2 else "uid-b", 1.0, 2.0, "x") for k in range(5)},
        "answer": 0,
        "types": 1,
    },
}


@pytest.fixture
def ego4d(tmp_path):
    data = tmp_path / "meta"
    data.mkdir()
    (data / "egoclip.csv").write_text("\n".join([EGOCLIP_HEADER, *EGOCLIP_ROWS]) + "\n")
    (data / "egomcq.json").write_text(json.dumps(MCQ))
    videos = tmp_path / "videos"
    for uid, chunks in (("uid-a", (0, 300)), ("uid-b", (0,))):
        (videos / f"{uid}.mp4").mkdir(parents=True)
        for start in chunks:
            (videos / f"{uid}.mp4" / f"{start}.mp4").write_bytes(b"")
    return data, videos


def test_egoclip_rows_and_report(ego4d, tmp_path, caplog):
    data, videos = ego4d
    clips = load_egoclip(data, videos, cache_dir=str(tmp_path / "cache"), chunk_len=300)
    assert clips["clip_id"] == [
        "uid-a_narration_pass_1_0",
        "uid-a_narration_pass_1_1",
        "uid-b_narration_pass_2_4",
    ]
    first = clips[0]
    assert first["narration"] == "#C C picks a bag of clothes from the floor"
    assert first["start"] == 0.0 and first["stop"] == 2.7  # negative clip_start clipped to 0
    assert first["verb_classes"] == [93] and first["noun_classes"] == [192, 115]
    assert clips[1]["chunk_starts"] == [0.0, 300.0]  # 299.5 - 302.5 straddles two 300 s chunks
    assert clips[1]["video_paths"] == [
        str(videos / "uid-a.mp4" / "0.mp4"),
        str(videos / "uid-a.mp4" / "300.mp4"),
    ]
    assert "skipped 3 rows" in caplog.text
    assert "unparsable tag_verb: 1" in caplog.text and "missing clip_end: 1" in caplog.text
    assert "missing video: 1" in caplog.text


def test_egomcq(ego4d, tmp_path):
    data, videos = ego4d
    builder = EgoMCQBuilder(
        data_dir=str(data), video_root=str(videos), cache_dir=str(tmp_path / "c"), chunk_len=300
    )
    builder.download_and_prepare()
    questions = builder.as_dataset("validation")
    assert questions["question_id"] == ["0", "1"]
    first = questions[0]
    assert first["query"] == "#C C picks a bag" and first["answer"] == 3 and first["types"] == 2
    assert [c["video_uid"] for c in first["choices"]] == ["uid-a", "uid-a", "uid-a", "uid-b", "uid-a"]
    assert [c["start"] for c in first["choices"]] == [0.0, 10.0, 20.0, 30.0, 40.0]
    # choices are ordered by their key, not by file order
    assert [c["narration"] for c in questions[1]["choices"]] == ["d0", "d1", "d2", "d3", "d4"]
    assert questions[1]["types"] == 2  # coded 1 (inter-video) in the file, but every choice is from uid-b
    report = builder.bad_row_report("validation")
    assert report.count == 1 and report.examples[0][0] == "2" and report.reasons == {"missing video": 1}
    with pytest.raises(BadRowError, match="row 2: missing video"):
        load_egomcq(data, videos, cache_dir=str(tmp_path / "r"), chunk_len=300, on_bad_row="raise")


def _write_egomcq(tmp_path: Path, cases: list[tuple[int, list[str]]]) -> tuple[Path, Path]:
    """egomcq.json with one question per (file code, choice videos) case, and empty video files."""
    data, videos = tmp_path / "meta", tmp_path / "videos"
    data.mkdir()
    for uid in {uid for _, uids in cases for uid in uids}:
        (videos / f"{uid}.mp4").mkdir(parents=True)
        (videos / f"{uid}.mp4" / "0.mp4").write_bytes(b"")
    mcq = {
        str(q): {
            "query": _clip(uids[0], 1.0, 2.0, f"q{q}"),
            "choices": {str(k): _clip(uid, 1.0 + k, 2.0 + k, f"c{k}") for k, uid in enumerate(uids)},
            "answer": 0,
            "types": code,
        }
        for q, (code, uids) in enumerate(cases)
    }
    (data / "egomcq.json").write_text(json.dumps(mcq))
    return data, videos


FIVE_VIDEOS = [f"v{k}" for k in range(5)]
MIXED = ["v0", "v0", "v1", "v1", "v2"]


def test_egomcq_types_follow_the_choices(tmp_path, caplog):
    # inter agreeing, intra agreeing, coded inter but all from one video, mixed (undecided: the file's code)
    cases = [(1, FIVE_VIDEOS), (2, ["v0"] * 5), (1, ["v1"] * 5), (2, MIXED)]
    questions = load_egomcq(*_write_egomcq(tmp_path, cases), cache_dir=str(tmp_path / "cache"), chunk_len=300)
    assert questions["types"] == [1, 2, 2, 2]
    assert "1 of 3 questions" in caplog.text and "first: question 2" in caplog.text
    assert "look swapped" not in caplog.text


def test_egomcq_with_swapped_type_codes_is_corrected_and_reported(tmp_path, caplog):
    cases = [(2, FIVE_VIDEOS), (1, ["v0"] * 5), (2, FIVE_VIDEOS[::-1]), (1, MIXED)]
    questions = load_egomcq(*_write_egomcq(tmp_path, cases), cache_dir=str(tmp_path / "cache"), chunk_len=300)
    assert questions["types"] == [1, 2, 1, 1]
    assert "3 of 3 questions" in caplog.text and "look swapped" in caplog.text


# ---------------------------------------------------------------- EgoClip+ (LaViLa pickle)

EGOCLIP_PLUS_ROWS = [
    ("uid-a", np.float64(-0.5), np.float64(2.5), "#C C picks a bag"),
    ("uid-a", np.float64(299.5), np.float32(302.25), [" C lifts the bag. ", "", "C raises a bag."]),
    ("uid-b", 9, 11.0, ("C opens the door",)),
    # bad: wrong arity, non-numeric time, inverted window, empty narration, missing video
    ("uid-a", 1.0, 2.0),
    ("uid-a", "1.0", 2.0, "C waves"),
    ("uid-b", np.float64(5.0), np.float64(4.0), "C waves"),
    ("uid-b", 1.0, 2.0, ["", "  "]),
    ("uid-c", 1.0, 2.0, "C waves"),
]


@pytest.mark.parametrize("protocol", [2, 5])
def test_egoclip_plus_rows_and_report(ego4d, tmp_path, protocol):
    data, videos = ego4d
    (data / "narrator.pkl").write_bytes(pickle.dumps(EGOCLIP_PLUS_ROWS, protocol=protocol))
    builder = EgoClipPlusBuilder(
        data_dir=str(data),
        video_root=str(videos),
        annotation_file="narrator.pkl",
        cache_dir=str(tmp_path / "cache"),
        chunk_len=300,
    )
    builder.download_and_prepare()
    clips = builder.as_dataset("train")
    assert clips["clip_id"] == ["uid-a_0", "uid-a_1", "uid-b_2"]
    assert clips["narration"] == ["#C C picks a bag", "C lifts the bag.", "C opens the door"]
    assert clips["narrations"] == [
        ["#C C picks a bag"],
        ["C lifts the bag.", "C raises a bag."],
        ["C opens the door"],
    ]
    assert clips["start"] == [0.0, 299.5, 9.0]  # negative start clipped to 0
    assert clips["stop"] == [2.5, 302.25, 11.0]
    assert clips["verb_classes"] == [[], [], []] and clips["noun_classes"] == [[], [], []]
    assert clips[1]["chunk_starts"] == [0.0, 300.0]
    assert clips[1]["video_paths"] == [
        str(videos / "uid-a.mp4" / "0.mp4"),
        str(videos / "uid-a.mp4" / "300.mp4"),
    ]
    report = builder.bad_row_report("train")
    assert report.source == str(data / "narrator.pkl")
    assert report.count == 5
    assert report.reasons == {
        "malformed row": 1,
        "bad start_second": 1,
        "bad window": 1,
        "empty narration": 1,
        "missing video": 1,
    }
    assert [row_id for row_id, _ in report.examples] == [
        "uid-a_3",
        "uid-a_4",
        "uid-b_5",
        "uid-b_6",
        "uid-c_7",
    ]


def test_egoclip_plus_loader_default_file_and_raise_policy(ego4d, tmp_path):
    data, videos = ego4d
    # numpy scalars as numpy 1.x names them (`numpy.core.multiarray.scalar`)
    numpy1 = pickle.dumps(EGOCLIP_PLUS_ROWS[:4], protocol=2).replace(b"numpy._core.", b"numpy.core.")
    assert b"numpy.core.multiarray\nscalar" in numpy1
    (data / "ego4d_train.rephraser.no_punkt_top3.pkl").write_bytes(numpy1)
    clips = load_egoclip_plus(data, videos, cache_dir=str(tmp_path / "cache"), chunk_len=300)
    assert clips["start"] == [0.0, 299.5, 9.0] and clips["stop"] == [2.5, 302.25, 11.0]
    with pytest.raises(BadRowError, match="row uid-a_3: malformed row"):
        load_egoclip_plus(data, videos, cache_dir=str(tmp_path / "raise"), chunk_len=300, on_bad_row="raise")
    with pytest.raises(FileNotFoundError, match="other.pkl not found in data_dir"):
        load_egoclip_plus(data, videos, annotation_file="other.pkl", cache_dir=str(tmp_path / "missing"))
    (data / "dict.pkl").write_bytes(pickle.dumps({"uid-a": EGOCLIP_PLUS_ROWS[0]}))
    with pytest.raises(ValueError, match=r"dict\.pkl: expected a pickled list"):
        load_egoclip_plus(data, videos, annotation_file="dict.pkl", cache_dir=str(tmp_path / "dict"))


class _System:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {self.marker}",)


class _Print:
    def __reduce__(self) -> tuple:
        return print, ("pwned",)


def test_egoclip_plus_refuses_code_in_pickle(ego4d, tmp_path, capsys):
    data, videos = ego4d
    marker = tmp_path / "pwned"
    (data / "system.pkl").write_bytes(pickle.dumps([("uid-a", 1.0, 2.0, _System(str(marker)))]))
    with pytest.raises(
        pickle.UnpicklingError, match=r"system\.pkl: refusing to load `(posix|os|nt)\.system`"
    ):
        load_egoclip_plus(data, videos, annotation_file="system.pkl", cache_dir=str(tmp_path / "c1"))
    assert not marker.exists()
    (data / "print.pkl").write_bytes(pickle.dumps([("uid-a", 1.0, 2.0, "x"), _Print()], protocol=2))
    with pytest.raises(
        pickle.UnpicklingError, match=r"print\.pkl: refusing to load `(__builtin__|builtins)\.print`"
    ):
        load_egoclip_plus(data, videos, annotation_file="print.pkl", cache_dir=str(tmp_path / "c2"))
    assert "pwned" not in capsys.readouterr().out
