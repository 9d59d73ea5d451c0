"""Charades-Ego builder on annotation files in the official layout."""

import pytest

from eva02at_hf.data import CharadesEgoBuilder, charades_ego_class_names, load_charades_ego
from eva02at_hf.data.charades_ego import parse_actions

HEADER = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length"
ROWS = [
    '005BUEGO,XZ5H,Kitchen,6,7,Yes,"A person cooks.",food;stove,"A person cooks food.","c002 11.90 21.20;c001 0.00 12.60",31.17',
    "00HFPEGO,ABCD,Bedroom,7,7,Yes,A person sleeps.,bed,A person sleeps.,,25.00",
    # bad: unparsable actions, missing video
    "01BADEGO,ABCD,Bedroom,7,7,Yes,x,bed,x,c1x 1.0 2.0,25.00",
    "02MISEGO,ABCD,Bedroom,7,7,Yes,x,bed,x,c000 1.0 2.0,25.00",
]
CLASSES = [
    "c000 Holding some clothes",
    "c001 Putting clothes somewhere",
    "c002 Taking some clothes from somewhere",
]


@pytest.fixture
def charades(tmp_path):
    data = tmp_path / "CharadesEgo"
    data.mkdir()
    (data / "Charades_v1_classes.txt").write_text("\n".join(CLASSES) + "\n")
    for name in ("CharadesEgo_v1_train_only1st.csv", "CharadesEgo_v1_test_only1st.csv"):
        (data / name).write_text("\n".join([HEADER, *ROWS]) + "\n")
    videos = tmp_path / "videos"
    videos.mkdir()
    for video in ("005BUEGO", "00HFPEGO", "01BADEGO"):
        (videos / f"{video}.mp4").write_bytes(b"")
    return data, videos


def test_class_names(charades, tmp_path):
    data, _ = charades
    assert charades_ego_class_names(data) == [
        "Holding some clothes",
        "Putting clothes somewhere",
        "Taking some clothes from somewhere",
    ]
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "Charades_v1_classes.txt").write_text("c000 Holding\nc002 Taking\n")
    with pytest.raises(ValueError, match="line 2"):
        charades_ego_class_names(tmp_path / "bad")


def test_parse_actions():
    assert parse_actions("c092 11.90 21.20;c147 0.00 12.60", 157) == [(92, 11.9, 21.2), (147, 0.0, 12.6)]
    assert parse_actions("", 157) == []


def test_trimmed_train_untrimmed_test(charades, tmp_path):
    data, videos = charades
    builder = CharadesEgoBuilder(
        data_dir=str(data), video_root=str(videos), cache_dir=str(tmp_path / "cache")
    )
    builder.download_and_prepare()
    train = builder.as_dataset("train")
    assert train["id"] == ["005BUEGO_0", "005BUEGO_1"]
    assert train["class_ids"] == [[2, 1], [1, 2]]  # 11.90-21.20 and 0.00-12.60 overlap: co-occurring labels
    assert train["narration"] == ["Taking some clothes from somewhere", "Putting clothes somewhere"]
    assert (train[0]["start"], train[0]["stop"]) == (11.9, 21.2)
    assert train[0]["video_paths"] == [str(videos / "005BUEGO.mp4")]
    test = builder.as_dataset("test")
    assert test["id"] == ["005BUEGO", "00HFPEGO"]
    assert test["class_ids"] == [[1, 2], []]
    assert (test[0]["start"], test[0]["stop"]) == (0.0, 31.17)
    report = builder.bad_row_report("test")
    assert report.count == 2 and report.reasons == {"unparsable actions": 1, "missing video": 1}
    assert [row_id for row_id, _ in report.examples] == ["01BADEGO", "02MISEGO"]
    untrimmed = load_charades_ego(data, videos, "train", cache_dir=str(tmp_path / "c2"), trimmed=False)
    own = load_charades_ego(data, videos, "train", cache_dir=str(tmp_path / "c3"), segment_labels="own")
    assert own["class_ids"] == [[2], [1]]
    with pytest.raises(ValueError, match="segment_labels"):
        load_charades_ego(data, videos, "train", cache_dir=str(tmp_path / "c4"), segment_labels="all")
    assert untrimmed["id"] == ["005BUEGO", "00HFPEGO"]


def test_segment_labels_need_a_real_overlap(charades, tmp_path):
    data, videos = charades
    row = '005BUEGO,XZ5H,Kitchen,6,7,Yes,x,food,x,"c000 0.00 5.00;c001 5.00 9.00;c002 4.00 6.00;c000 8.50 9.50",10.0'
    (data / "CharadesEgo_v1_train_only1st.csv").write_text("\n".join([HEADER, row]) + "\n")
    train = load_charades_ego(data, videos, "train", cache_dir=str(tmp_path / "cache"))
    # 0-5 and 5-9 only touch; 4-6 overlaps both; the second c000 (8.5-9.5) overlaps 5-9 only.
    assert train["class_ids"] == [[0, 2], [1, 0, 2], [2, 0, 1], [0, 1]]
