"""The synthetic egocentric set: EK-100 layout, determinism, and verbs that need temporal order."""

import re

import numpy as np
import pandas as pd
import pytest

from eva02at_hf.data import BadRowError, ek100_relevancy, load_ek100_mir, load_ek100_sentences, read_window
from eva02at_hf.data.synthetic import (
    REVERSE_VERB,
    SHAPES,
    VERBS,
    format_timestamp,
    generate,
    main,
    render_clip,
    sample_motion,
)

# Header of the real EPIC_100_retrieval_test.csv / train_sentence.csv (see /work/shared/ek100-layout).
REAL_CLIP_HEADER = (
    "narration_id,participant_id,video_id,narration_timestamp,start_timestamp,stop_timestamp,start_frame,"
    "stop_frame,narration,verb,verb_class,noun,noun_class,all_nouns,all_noun_classes"
)
REAL_TRAIN_SENTENCE_HEADER = "narration_id,narration,verb_class,noun_classes,verb,nouns"
FRAMES = 8
SIZE = 32


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    summary = generate(out, num_clips=240, seed=0, size=SIZE, frames_per_clip=FRAMES, test_fraction=0.5)
    return out, summary


@pytest.fixture(scope="module")
def decoded(synthetic, tmp_path_factory):
    """{split: (frames (N, T, H, W, 3) uint8, verbs (N,))} through the EK-100 builder and the window reader."""
    out, _ = synthetic
    cache = str(tmp_path_factory.mktemp("cache"))
    result = {}
    for split in ("train", "test"):
        clips = load_ek100_mir(out, out / "videos", split, cache_dir=cache)
        frames = np.stack(
            [read_window(c["video_paths"], c["chunk_starts"], c["start"], c["stop"], FRAMES) for c in clips]
        )
        result[split] = frames, np.asarray(clips["verb_class"])
    return result


def test_layout_matches_ek100(synthetic):
    out, summary = synthetic
    for split in ("train", "test"):
        text = (out / f"EPIC_100_retrieval_{split}.csv").read_text()
        assert text.splitlines()[0] == REAL_CLIP_HEADER
    assert (out / "EPIC_100_retrieval_train_sentence.csv").read_text().splitlines()[
        0
    ] == REAL_TRAIN_SENTENCE_HEADER
    assert (out / "EPIC_100_retrieval_test_sentence.csv").read_text().splitlines()[
        0
    ] == "narration_id,narration"
    train = pd.read_csv(out / "EPIC_100_retrieval_train.csv")
    test = pd.read_csv(out / "EPIC_100_retrieval_test.csv")
    assert len(train) == summary.num_train and len(test) == summary.num_test and len(train) + len(test) == 240
    assert not set(train["video_id"]) & set(test["video_id"])
    assert all(re.fullmatch(r"\d\d:\d\d:\d\d\.\d\d", t) for t in train["start_timestamp"])
    assert list(train["narration_id"]) == sorted(train["narration_id"])
    assert train.groupby("video_id").size().max() > 1  # clips are windows of longer videos
    sentences = pd.read_csv(out / "EPIC_100_retrieval_test_sentence.csv")
    assert sentences["narration"].is_unique and set(sentences["narration"]) == set(test["narration"])


def test_captions_and_classes(synthetic):
    out, _ = synthetic
    train = pd.read_csv(out / "EPIC_100_retrieval_train.csv")
    for _, row in train.iterrows():
        words = row["narration"].split()
        shape = SHAPES[row["noun_class"]]
        colour = ["red", "green", "blue"][_parse_list(row["all_noun_classes"])[1] - 3]
        assert f"{colour} {shape}" in row["narration"]
        assert row["verb"] == VERBS[row["verb_class"]]
        direction = {"move-left": "left", "move-right": "right", "move-up": "up", "move-down": "down"}
        if row["verb"] in direction:
            assert words[0] == "move" and words[-1] == direction[row["verb"]]


def _parse_list(text: str) -> list[int]:
    return [int(v) for v in text.strip("[]").split(",")]


def test_timestamp_format():
    assert format_timestamp(0.15) == "00:00:00.15"
    assert format_timestamp(3725.5) == "01:02:05.50"
    assert format_timestamp(1.5495, decimals=3) == "00:00:01.550"


def test_deterministic(tmp_path):
    generate(tmp_path / "a", num_clips=12, seed=3)
    generate(tmp_path / "b", num_clips=12, seed=3)
    generate(tmp_path / "c", num_clips=12, seed=4)
    for name in ("EPIC_100_retrieval_train.csv", "EPIC_100_retrieval_test.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "EPIC_100_retrieval_train.csv").read_bytes() != (
        tmp_path / "c" / "EPIC_100_retrieval_train.csv"
    ).read_bytes()
    video = sorted((tmp_path / "a" / "videos").iterdir())[0].name
    frames_a = read_window([str(tmp_path / "a" / "videos" / video)], [0.0], 0.0, 10.0, 6)
    frames_b = read_window([str(tmp_path / "b" / "videos" / video)], [0.0], 0.0, 10.0, 6)
    np.testing.assert_array_equal(frames_a, frames_b)


def test_cli_and_chunked_layout(tmp_path, capsys):
    out = tmp_path / "cli"
    main(["--out", str(out), "--num-clips", "12", "--seed", "1", "--chunk-len", "1"])
    assert "wrote" in capsys.readouterr().out
    clips = load_ek100_mir(out, out / "videos", "train", cache_dir=str(tmp_path / "cache"), chunk_len=1)
    assert len(clips) > 0 and any(len(c) == 2 for c in clips["chunk_starts"])  # some windows straddle chunks
    straddling = next(c for c in clips if len(c["chunk_starts"]) == 2)
    frames = read_window(
        straddling["video_paths"], straddling["chunk_starts"], straddling["start"], straddling["stop"], FRAMES
    )
    assert frames.shape == (FRAMES, SIZE, SIZE, 3)
    # the same chunked root without chunk_len: every video looks missing, and the error says what to pass
    hint = r"skipped \d+ rows \(missing video: \d+\).*pre-chunked.*--chunk_len"
    with pytest.raises(BadRowError, match=hint):
        load_ek100_mir(out, out / "videos", "train", cache_dir=str(tmp_path / "cache"))


@pytest.mark.parametrize("verb", range(len(VERBS)))
def test_reverse_verb_is_the_same_frames_backwards(verb):
    forward = render_clip(
        sample_motion(verb, np.random.default_rng(7), SIZE, FRAMES), "circle", "red", 30, SIZE
    )
    reverse = render_clip(
        sample_motion(REVERSE_VERB[verb], np.random.default_rng(7), SIZE, FRAMES), "circle", "red", 30, SIZE
    )
    np.testing.assert_array_equal(forward, reverse[::-1])
    assert not np.array_equal(forward, reverse)


def _temporal_classifier(frames: np.ndarray) -> int:
    """Hand-written verb classifier on frame differences: visibility, centroid displacement, area change."""
    background = np.median(frames.reshape(-1, 3), axis=0)
    masks = np.abs(frames.astype(np.float64) - background).max(axis=-1) > 40  # (T, H, W)
    areas = masks.sum(axis=(1, 2))
    if areas.min() < 5:
        return VERBS.index("appear") if areas[-1] > areas[0] else VERBS.index("disappear")
    y, x = np.mgrid[0 : frames.shape[1], 0 : frames.shape[2]]
    centroids = np.stack([(masks * x).sum((1, 2)) / areas, (masks * y).sum((1, 2)) / areas], axis=1)
    dx, dy = centroids[-1] - centroids[0]
    if max(abs(dx), abs(dy)) > 0.15 * frames.shape[1]:
        if abs(dx) > abs(dy):
            return VERBS.index("move-right") if dx > 0 else VERBS.index("move-left")
        return VERBS.index("move-down") if dy > 0 else VERBS.index("move-up")
    return VERBS.index("grow") if areas[-1] > areas[0] else VERBS.index("shrink")


def test_frame_differences_recover_the_verb_exactly(decoded):
    for frames, verbs in decoded.values():
        predictions = np.asarray([_temporal_classifier(clip) for clip in frames])
        np.testing.assert_array_equal(predictions, verbs)


def _ridge_scores(train_x, train_y, test_x, num_classes, alpha=10.0):
    """One-vs-rest ridge regression classifier (closed form); returns (N_test, num_classes) scores."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    a, b = (train_x - mean) / std, (test_x - mean) / std
    targets = np.eye(num_classes)[train_y]
    weights = np.linalg.solve(a.T @ a + alpha * np.eye(a.shape[1]), a.T @ (targets - targets.mean(0)))
    return b @ weights


def _pooled(frames: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) -> (N, 8 * 8 * 3) average-pooled pixels."""
    n, h, w, _ = frames.shape
    return frames.reshape(n, 8, h // 8, 8, w // 8, 3).mean(axis=(2, 4)).reshape(n, -1)


def test_single_frame_or_frame_mean_cannot_tell_the_verb(decoded):
    """Order-free views reach chance (1/2) at telling a verb from its reverse; the pair is all they can know.

    Control: the same learner on an order-aware view (last frames minus first frames) is far above chance.
    """
    (train_frames, train_verbs), (test_frames, test_verbs) = decoded["train"], decoded["test"]
    rng = np.random.default_rng(0)
    views = {
        "frame mean": lambda f: _pooled(f.astype(np.float64).mean(axis=1)),
        "random frame": lambda f: _pooled(
            f[np.arange(len(f)), rng.integers(0, f.shape[1], len(f))].astype(float)
        ),
    }
    n = len(test_verbs)
    bound = 0.5 + 3 * 0.5 / np.sqrt(n)  # chance + 3 standard deviations of a fair coin over n clips
    for name, view in views.items():
        scores = _ridge_scores(view(train_frames), train_verbs, view(test_frames), len(VERBS))
        reverse = np.asarray([REVERSE_VERB[v] for v in test_verbs])
        direction_accuracy = np.mean(scores[np.arange(n), test_verbs] > scores[np.arange(n), reverse])
        assert direction_accuracy < bound, f"{name}: {direction_accuracy:.3f} >= {bound:.3f} on {n} clips"
    control = lambda f: _pooled(f[:, -2:].mean(axis=1) - f[:, :2].mean(axis=1))  # noqa: E731
    scores = _ridge_scores(control(train_frames), train_verbs, control(test_frames), len(VERBS))
    reverse = np.asarray([REVERSE_VERB[v] for v in test_verbs])
    assert np.mean(scores[np.arange(n), test_verbs] > scores[np.arange(n), reverse]) > bound


def test_relevancy_runs_on_the_synthetic_set(synthetic, tmp_path):
    out, _ = synthetic
    clips = load_ek100_mir(out, out / "videos", "test", cache_dir=str(tmp_path / "cache"))
    sentences = load_ek100_sentences(out, "test")
    relevancy = ek100_relevancy(clips, sentences)
    assert relevancy.shape == (len(clips), len(sentences))
    # graded values: same verb (1/2) + noun IoU of {shape, colour} sets (1, 1/3, 0) / 2
    levels = np.array([0.0, 1 / 6, 1 / 2, 2 / 3, 1.0])
    assert np.abs(np.unique(relevancy)[:, None] - levels).min(axis=1).max() < 1e-6
    assert (relevancy == 1.0).sum(axis=1).min() == 1
