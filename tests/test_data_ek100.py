"""EK-100 MIR builder on annotation files in the official layout (rows copied from the real files)."""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from eva02at_hf.data import (
    BadRowError,
    EK100MIRBuilder,
    clip_sentence_indices,
    compare_with_official,
    ek100_relevancy,
    load_ek100_mir,
    load_ek100_sentences,
)

CLIP_HEADER = (
    "narration_id,participant_id,video_id,narration_timestamp,start_timestamp,stop_timestamp,start_frame,"
    "stop_frame,narration,verb,verb_class,noun,noun_class,all_nouns,all_noun_classes"
)
# First rows of the real EPIC_100_retrieval_test.csv (see /work/shared/ek100-layout).
TEST_ROWS = [
    "P01_11_0,P01,P01_11,00:00:00.560,00:00:00.00,00:00:01.89,1,113,take plate,take,0,plate,2,['plate'],[2]",
    "P01_11_1,P01,P01_11,00:00:01.700,00:00:01.56,00:00:02.45,93,147,put down plate,put-down,1,plate,2,['plate'],[2]",
    "P01_11_102,P01,P01_11,00:05:32.500,00:05:30.62,00:05:35.02,19837,20101,squeeze cloth,squeeze,18,cloth,17,"
    "['cloth'],[17]",
    "P01_11_106,P01,P01_11,00:05:57.240,00:05:56.18,00:05:57.82,21370,21469,squeeze cloth,squeeze,18,cloth,17,"
    "['cloth'],[17]",
    "P01_11_12,P01,P01_11,00:00:52.620,00:00:51.98,00:00:53.03,3118,3181,throw paper into bin,throw-into,13,paper,"
    "49,\"['paper', 'bin']\",\"[49, 36]\"",
    "P01_11_123,P01,P01_11,00:06:47.220,00:06:46.53,00:06:49.64,24391,24578,put bin onto other bin,put-onto,1,bin,"
    "36,\"['bin', 'bin:other']\",\"[36, 36]\"",
]
TEST_SENTENCES = [
    "narration_id,narration",
    "P01_11_0,take plate",
    "P01_11_1,put down plate",
    "P01_11_102,squeeze cloth",
    "P01_11_12,throw paper into bin",
    "P01_11_123,put bin onto other bin",
]
# Rows of the real EPIC_100_retrieval_train_sentence.csv.
TRAIN_SENTENCES = [
    "narration_id,narration,verb_class,noun_classes,verb,nouns",
    "P01_01_0,open door,3,[3],open,['door']",
    "P01_01_102,put cup into cupboard,5,\"[13, 3]\",put-into,\"['cup', 'cupboard']\"",
    "P01_01_106,put container inside container,5,\"[21, 21]\",put-inside,\"['container', 'container']\"",
]
# Relevancy of the 6 clips (rows) to the 5 sentences (columns), by hand: 0.5 * [same verb] + 0.5 * noun IoU.
EXPECTED_RELEVANCY = np.array(
    [
        [1.0, 0.5, 0.0, 0.0, 0.0],  # take plate (0, {2})
        [0.5, 1.0, 0.0, 0.0, 0.5],  # put down plate (1, {2})
        [0.0, 0.0, 1.0, 0.0, 0.0],  # squeeze cloth (18, {17})
        [0.0, 0.0, 1.0, 0.0, 0.0],  # squeeze cloth
        [0.0, 0.0, 0.0, 1.0, 0.25],  # throw paper into bin (13, {49, 36}); vs put bin: |{36}| / |{49, 36}|
        [0.0, 0.5, 0.0, 0.25, 1.0],  # put bin onto other bin (1, {36})
    ],
    dtype=np.float32,
)


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def annotations(tmp_path):
    data = tmp_path / "annotations"
    data.mkdir()
    _write(data / "EPIC_100_retrieval_test.csv", [CLIP_HEADER, *TEST_ROWS])
    _write(data / "EPIC_100_retrieval_test_sentence.csv", TEST_SENTENCES)
    _write(data / "EPIC_100_retrieval_train_sentence.csv", TRAIN_SENTENCES)
    videos = tmp_path / "videos"
    (videos / "P01").mkdir(parents=True)
    (videos / "P01" / "P01_11.MP4").write_bytes(b"")  # the builder only checks that videos exist
    return data, videos


def _load(data, videos, tmp_path, **kwargs):
    return load_ek100_mir(data, videos, "test", cache_dir=str(tmp_path / "cache"), **kwargs)


def test_rows(annotations, tmp_path):
    data, videos = annotations
    clips = _load(data, videos, tmp_path)
    assert clips["narration_id"] == [
        "P01_11_0",
        "P01_11_1",
        "P01_11_102",
        "P01_11_106",
        "P01_11_12",
        "P01_11_123",
    ]
    first = clips[1]
    assert first["participant_id"] == "P01" and first["video_id"] == "P01_11"
    assert first["start"] == pytest.approx(1.56) and first["stop"] == pytest.approx(2.45)
    assert (
        first["narration"] == "put down plate" and first["verb_class"] == 1 and first["noun_classes"] == [2]
    )
    assert first["video_paths"] == [str(videos / "P01" / "P01_11.MP4")] and first["chunk_starts"] == [0.0]
    assert clips[2]["start"] == pytest.approx(5 * 60 + 30.62) and clips[2]["stop"] == pytest.approx(335.02)
    assert clips[4]["noun_classes"] == [49, 36] and clips[5]["noun_classes"] == [36, 36]


def test_a_relative_video_root_gives_absolute_paths(annotations, tmp_path, monkeypatch):
    data, videos = annotations
    monkeypatch.chdir(videos.parent)
    clips = _load(data, Path(videos.name), tmp_path)
    assert clips[0]["video_paths"] == [str(videos / "P01" / "P01_11.MP4")]


def test_relevancy_and_sentence_indices(annotations, tmp_path):
    data, videos = annotations
    clips = _load(data, videos, tmp_path)
    sentences = load_ek100_sentences(data, "test")
    assert sentences["narration"][3] == "throw paper into bin"
    assert sentences["verb_class"] == [0, 1, 18, 13, 1]
    assert sentences["noun_classes"][3] == [49, 36]
    np.testing.assert_allclose(ek100_relevancy(clips, sentences), EXPECTED_RELEVANCY)
    np.testing.assert_allclose(
        ek100_relevancy(clips, sentences, return_sparse=True).toarray(), EXPECTED_RELEVANCY
    )
    np.testing.assert_array_equal(clip_sentence_indices(clips, sentences), [0, 1, 2, 2, 3, 4])


def test_train_sentences(annotations):
    data, _ = annotations
    sentences = load_ek100_sentences(data, "train")
    assert sentences["narration"] == ["open door", "put cup into cupboard", "put container inside container"]
    assert sentences["verb_class"] == [3, 5, 5]
    assert sentences["noun_classes"] == [[3], [13, 3], [21, 21]]


def test_compare_with_official(annotations, tmp_path):
    data, videos = annotations
    clips = _load(data, videos, tmp_path)
    sentences = load_ek100_sentences(data, "test")
    relevancy = ek100_relevancy(clips, sentences)
    assert compare_with_official(relevancy, clips, sentences, data) is None  # no official file
    official = EXPECTED_RELEVANCY.copy()
    official[4, 4] = 0.5
    (data / "relevancy").mkdir()
    with open(data / "relevancy" / "caption_relevancy_EPIC_100_retrieval_test.pkl", "wb") as handle:
        pickle.dump(official, handle)
    report = compare_with_official(relevancy, clips, sentences, data)
    assert report.num_mismatched == 1 and report.max_abs_diff == pytest.approx(0.25)
    assert report.first_mismatches == [("P01_11_12", "P01_11_123", 0.25, 0.5)]
    # a dropped clip (here: the first) is left out by narration id
    report = compare_with_official(relevancy[1:], clips.select(range(1, 6)), sentences, data)
    assert report.shape == (5, 5) and report.num_mismatched == 1


def test_test_split_scores_against_the_official_relevancy_when_present(annotations, tmp_path, caplog):
    from eva02at_hf.training import EK100Split

    data, videos = annotations
    # One clip's row is not a valid clip (inverted window): the split drops it and says so.
    rows = [
        *TEST_ROWS[:3],
        TEST_ROWS[3].replace("00:05:56.18,00:05:57.82", "00:05:58.18,00:05:57.82"),
        *TEST_ROWS[4:],
    ]
    _write(data / "EPIC_100_retrieval_test.csv", [CLIP_HEADER, *rows])
    kept = [0, 1, 2, 4, 5]
    rebuilt = EK100Split(data, videos, "test", tmp_path / "c1", datasets_cache_dir=str(tmp_path / "d1"))
    assert rebuilt.relevancy_source == "rebuilt" and rebuilt.num_missing_clips == 1
    assert "1 of 6 clips" in caplog.text
    np.testing.assert_allclose(rebuilt.relevancy.toarray(), EXPECTED_RELEVANCY[kept])

    official = EXPECTED_RELEVANCY.copy()
    official[5, 1] = 0.75  # differs from Eq. 5's 0.5: the official matrix wins, and the log says so
    (data / "relevancy").mkdir()
    with open(data / "relevancy" / "caption_relevancy_EPIC_100_retrieval_test.pkl", "wb") as handle:
        pickle.dump(official, handle)
    split = EK100Split(data, videos, "test", tmp_path / "c2", datasets_cache_dir=str(tmp_path / "d2"))
    assert split.relevancy_source == "official"
    np.testing.assert_allclose(split.relevancy.toarray(), official[kept])
    assert "1 entries differ" in caplog.text


def test_official_pickle_is_not_executed(annotations, tmp_path):
    data, videos = annotations
    clips = _load(data, videos, tmp_path)
    sentences = load_ek100_sentences(data, "test")

    class Exploit:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    (data / "relevancy").mkdir()
    with open(data / "relevancy" / "caption_relevancy_EPIC_100_retrieval_test.pkl", "wb") as handle:
        pickle.dump(Exploit(), handle)
    with pytest.raises(pickle.UnpicklingError, match="system"):
        compare_with_official(EXPECTED_RELEVANCY, clips, sentences, data)
    assert not (tmp_path / "pwned").exists()


BAD_ROWS = [
    # unparsable list literal
    "P01_11_2,P01,P01_11,00:00:02.000,00:00:02.10,00:00:03.00,1,2,take cup,take,0,cup,13,['cup'],\"[13, \"",
    # missing timestamp
    "P01_11_3,P01,P01_11,00:00:03.000,,00:00:04.00,1,2,take cup,take,0,cup,13,['cup'],[13]",
    # missing video
    "P01_12_0,P01,P01_12,00:00:01.000,00:00:01.00,00:00:02.00,1,2,take cup,take,0,cup,13,['cup'],[13]",
]


def test_bad_rows_are_skipped_and_reported(annotations, tmp_path, caplog):
    data, videos = annotations
    _write(data / "EPIC_100_retrieval_test.csv", [CLIP_HEADER, TEST_ROWS[0], *BAD_ROWS, TEST_ROWS[1]])
    builder = EK100MIRBuilder(data_dir=str(data), video_root=str(videos), cache_dir=str(tmp_path / "cache"))
    builder.download_and_prepare()
    assert builder.as_dataset("test")["narration_id"] == ["P01_11_0", "P01_11_1"]
    report = builder.bad_row_report("test")
    assert report.count == 3
    assert report.reasons == {
        "unparsable all_noun_classes": 1,
        "missing start_timestamp": 1,
        "missing video": 1,
    }
    assert [row_id for row_id, _ in report.examples] == ["P01_11_2", "P01_11_3", "P01_12_0"]
    assert "skipped 3 rows" in caplog.text and "P01_11_2" in caplog.text
    # the report survives a reload from the cache
    again = EK100MIRBuilder(data_dir=str(data), video_root=str(videos), cache_dir=str(tmp_path / "cache"))
    assert again.bad_row_report("test") == report


def test_bad_rows_raise_policy(annotations, tmp_path):
    data, videos = annotations
    _write(data / "EPIC_100_retrieval_test.csv", [CLIP_HEADER, TEST_ROWS[0], BAD_ROWS[2]])
    with pytest.raises(BadRowError, match="P01_12_0: missing video"):
        _load(data, videos, tmp_path, on_bad_row="raise")
    with pytest.raises(ValueError, match="on_bad_row"):
        _load(data, videos, tmp_path, on_bad_row="ignore")


def test_unknown_split_names_the_argument_and_the_choices(tmp_path):
    with pytest.raises(ValueError, match=r"`split` must be one of \('train', 'test'\), got 'val'"):
        load_ek100_sentences(tmp_path, "val")


def test_missing_files_and_columns(annotations, tmp_path):
    data, videos = annotations
    with pytest.raises(ValueError, match="split 'train' not available"):
        load_ek100_mir(data, videos, "train", cache_dir=str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="video_root"):
        load_ek100_mir(data, tmp_path / "nowhere", "test", cache_dir=str(tmp_path / "cache"))
    _write(data / "EPIC_100_retrieval_test.csv", ["narration_id,video_id", "P01_11_0,P01_11"])
    with pytest.raises(ValueError, match="missing column"):
        _load(data, videos, tmp_path)


def test_chunked_layout(annotations, tmp_path):
    data, videos = annotations
    chunks = tmp_path / "chunks" / "P01" / "P01_11.MP4"
    chunks.mkdir(parents=True)
    for start in (0, 45, 315, 330, 390, 405):
        (chunks / f"{start}.MP4").write_bytes(b"")
    clips = _load(data, tmp_path / "chunks", tmp_path, chunk_len=15)
    by_id = dict(zip(clips["narration_id"], clips["chunk_starts"], strict=True))
    assert by_id["P01_11_0"] == [0.0]
    assert by_id["P01_11_12"] == [45.0]
    assert by_id["P01_11_102"] == [330.0]  # 330.62 - 335.02
    assert by_id["P01_11_123"] == [405.0]  # 406.53 - 409.64
    assert "P01_11_1" in by_id  # 1.56 - 2.45 in chunk 0
    # 5:56.18 - 5:57.82 needs chunk 345, which is missing
    assert "P01_11_106" not in by_id
    paths = dict(zip(clips["narration_id"], clips["video_paths"], strict=True))
    assert paths["P01_11_102"] == [str(chunks / "330.MP4")]


def test_cache_follows_annotation_changes(annotations, tmp_path):
    data, videos = annotations
    assert len(_load(data, videos, tmp_path)) == 6
    _write(data / "EPIC_100_retrieval_test.csv", [CLIP_HEADER, *TEST_ROWS[:2]])
    assert _load(data, videos, tmp_path)["narration_id"] == ["P01_11_0", "P01_11_1"]


def test_cache_follows_video_root_changes_and_warns_on_cache_hits(annotations, tmp_path, caplog):
    data, videos = annotations
    _write(data / "EPIC_100_retrieval_test.csv", [CLIP_HEADER, TEST_ROWS[0], BAD_ROWS[2]])  # P01_12: no video

    def skipped_warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "skipped" in r.message]

    assert _load(data, videos, tmp_path)["narration_id"] == ["P01_11_0"]
    assert len(skipped_warnings()) == 1  # the fresh build warns once
    caplog.clear()
    assert _load(data, videos, tmp_path)["narration_id"] == ["P01_11_0"]  # cache hit: the saved report
    assert skipped_warnings() == [
        f"{data / 'EPIC_100_retrieval_test.csv'}: skipped 1 rows (missing video: 1); first: P01_12_0 "
        f"(missing video: P01/P01_12 [1.00, 2.00] s under {videos})"
    ]
    (videos / "P01" / "P01_12.MP4").write_bytes(b"")
    caplog.clear()
    clips = _load(data, videos, tmp_path)
    assert clips["narration_id"] == ["P01_11_0", "P01_12_0"]
    assert clips[1]["video_paths"] == [str(videos / "P01" / "P01_12.MP4")]
    assert skipped_warnings() == []
    os.remove(videos / "P01" / "P01_12.MP4")
    assert _load(data, videos, tmp_path)["narration_id"] == ["P01_11_0"]


def test_split_with_every_row_skipped_says_why(annotations, tmp_path):
    data, videos = annotations
    clip_file = data / "EPIC_100_retrieval_test.csv"
    chunked = tmp_path / "chunked"
    (chunked / "P01" / "P01_11.MP4").mkdir(parents=True)
    (chunked / "P01" / "P01_11.MP4" / "0.MP4").write_bytes(b"")
    # a pre-chunked root read as raw: every video is "missing"
    with pytest.raises(BadRowError) as raised:
        _load(data, chunked, tmp_path)
    message = str(raised.value)
    assert f"{clip_file}: skipped 6 rows (missing video: 6)" in message and "split 'test'" in message
    assert f"Is the video root {chunked} pre-chunked" in message and "--chunk_len" in message
    assert isinstance(raised.value, ValueError)
    # a raw root read as chunked
    with pytest.raises(BadRowError, match=rf"Is the video root {videos} raw .* Drop chunk_len=15"):
        _load(data, videos, tmp_path, chunk_len=15)
    # not a layout problem: no hint
    _write(clip_file, [CLIP_HEADER, BAD_ROWS[0], BAD_ROWS[1]])
    with pytest.raises(BadRowError, match="skipped 2 rows") as raised:
        _load(data, videos, tmp_path)
    assert "missing start_timestamp: 1, unparsable all_noun_classes: 1" in str(raised.value)
    assert "chunk_len" not in str(raised.value)
    _write(clip_file, [CLIP_HEADER])
    with pytest.raises(BadRowError, match=f"{clip_file}: split 'test' has no rows"):
        _load(data, videos, tmp_path)


def test_malformed_sentence_classes_name_the_file_they_come_from(annotations):
    data, _ = annotations
    # test: the classes come from the clip file (line 3 = second clip row), not from the sentence file
    bad_clip = TEST_ROWS[1].replace(",[2]", ',"[2, "')
    _write(data / "EPIC_100_retrieval_test.csv", [CLIP_HEADER, TEST_ROWS[0], bad_clip, *TEST_ROWS[2:]])
    with pytest.raises(ValueError) as raised:
        load_ek100_sentences(data, "test")
    assert str(raised.value) == (
        f"{data / 'EPIC_100_retrieval_test.csv'}: line 3: clip 'P01_11_1' (classes of test sentence 'P01_11_1' "
        f"of {data / 'EPIC_100_retrieval_test_sentence.csv'}): unparsable all_noun_classes: '[2, '"
    )
    # train: the sentence file itself
    _write(
        data / "EPIC_100_retrieval_train_sentence.csv",
        [*TRAIN_SENTENCES[:2], 'P01_01_102,put cup into cupboard,5,"[13, 3",put-into,"[\'cup\']"'],
    )
    with pytest.raises(ValueError) as raised:
        load_ek100_sentences(data, "train")
    assert str(raised.value) == (
        f"{data / 'EPIC_100_retrieval_train_sentence.csv'}: line 3: sentence 'P01_01_102': "
        "unparsable noun_classes: '[13, 3'"
    )
