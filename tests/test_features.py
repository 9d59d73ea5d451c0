"""Feature extraction (resumable shards, bad files), exact / FAISS top-k search and contact sheets."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from eva02at_hf import EVA02ATConfig, EVA02ATForVideoTextRetrieval
from eva02at_hf.apps import features as features_module
from eva02at_hf.apps.contact_sheet import Hit, SheetLayout, render_contact_sheet
from eva02at_hf.apps.features import (
    FeatureExtractor,
    FingerprintMismatchError,
    VideoItem,
    load_features,
    read_text_list,
    read_video_list,
)
from eva02at_hf.apps.search import FaissIndex, faiss_available, search, topk_exact
from eva02at_hf.data import synthetic
from eva02at_hf.training.models import processor_for
from eva02at_hf.video_io import read_clip

TEXTS = [
    "move the red square left",
    "grow the blue circle",
    "shrink the green triangle",
    "make it appear",
    "x",
]


@pytest.fixture(scope="module")
def model_and_processor():
    torch.manual_seed(0)
    model = EVA02ATForVideoTextRetrieval(EVA02ATConfig.from_preset("eva02at-tiny")).eval()
    return model, processor_for(model.config)


@pytest.fixture(scope="module")
def video_items(tmp_path_factory) -> list[VideoItem]:
    root = tmp_path_factory.mktemp("synthetic")
    synthetic.generate(root, num_clips=5, seed=3, max_clips_per_video=1)
    (root / "videos" / "corrupt.mp4").write_bytes(b"not a video at all")
    items = read_video_list(root / "videos")
    assert len(items) == 6  # 5 synthetic videos + the corrupt file
    return [*items, VideoItem("missing", str(root / "videos" / "missing.mp4"), 0.0, 1.0)]


def _extractor(model_and_processor, **kwargs) -> FeatureExtractor:
    model, processor = model_and_processor
    options = {"num_frames": 4, "batch_size": 2, "shard_size": 2, "progress": False, **kwargs}
    return FeatureExtractor(model, processor, **options)


def test_read_video_list_csv_resolves_paths_and_windows(tmp_path: Path) -> None:
    (tmp_path / "clips").mkdir()
    (tmp_path / "list.csv").write_text("path,start,end,id\nclips/a.mp4,1.5,3,first\nclips/b.mp4,,,\n")
    items = read_video_list(tmp_path / "list.csv")
    assert items == [
        VideoItem("first", str(tmp_path / "clips" / "a.mp4"), 1.5, 3.0),
        VideoItem("clips/b.mp4", str(tmp_path / "clips" / "b.mp4"), None, None),
    ]


def test_extracted_paths_are_absolute_and_survive_a_change_of_cwd(
    model_and_processor, tmp_path: Path, monkeypatch
) -> None:
    """A relative CSV read in one folder: the index and the contact sheet still find its videos from another."""
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    for folder, colours in (
        (work, {"red": (255, 0, 0), "blue": (0, 0, 255)}),
        (elsewhere, {"red": (0, 255, 0)}),
    ):
        (folder / "data" / "videos").mkdir(parents=True)
        for name, colour in colours.items():  # elsewhere/data/videos/red.mp4 is a green decoy
            synthetic.write_video(
                str(folder / "data" / "videos" / f"{name}.mp4"),
                np.full((8, 32, 32, 3), colour, np.uint8),
                fps=8,
            )
    (work / "data" / "clips.csv").write_text("path,id\nvideos/red.mp4,red\nvideos/blue.mp4,blue\n")
    monkeypatch.chdir(work)
    expected = [str(work / "data" / "videos" / "red.mp4"), str(work / "data" / "videos" / "blue.mp4")]
    assert [item.path for item in read_video_list("data/clips.csv")] == expected
    assert [item.path for item in read_video_list("data/videos")] == expected[::-1]  # sorted: blue, red
    _extractor(model_and_processor).run("features", read_video_list("data/clips.csv"))

    monkeypatch.chdir(elsewhere)
    table = load_features(work / "features", "video").table
    assert table["id"].tolist() == ["red", "blue"] and table["path"].tolist() == expected
    assert all(Path(path).is_absolute() for path in table["path"])
    hits = [Hit(path, None, None, 1.0, name) for path, name in zip(table["path"], table["id"], strict=True)]
    pixels = np.asarray(render_contact_sheet([("q", hits)], SheetLayout(num_frames=2, thumb_height=20)))
    red, blue = pixels[4 + 22 + 18 + 10, 4 + 10], pixels[4 + 22 + 42 + 18 + 10, 4 + 10]
    assert red[0] > 200 and red[1] < 40 and red[2] < 40  # the real red video, not the green decoy
    assert blue[2] > 200 and blue[0] < 40 and blue[1] < 40


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("file,start\na.mp4,1\n", "missing column\\(s\\) \\['path'\\]"),
        ("path,start\na.mp4,soon\n", "column 'start' must be a number"),
        ("path,id\na.mp4,x\nb.mp4,x\n", "duplicate video ids"),
        (
            "path,start\na.mp4,0\na.mp4,5\n",
            "duplicate video ids \\['a.mp4'\\]; give each window its own value in an 'id'",
        ),
    ],
)
def test_read_video_list_rejects_bad_csv(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "list.csv").write_text(content)
    with pytest.raises(ValueError, match=message):
        read_video_list(tmp_path / "list.csv")


def test_read_text_list_skips_blank_lines(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text("  open the fridge \n\ncut onion\n")
    assert read_text_list(tmp_path / "t.txt") == ["open the fridge", "cut onion"]


def test_interrupted_extraction_resumes_to_identical_features(
    model_and_processor, video_items, tmp_path: Path, monkeypatch
) -> None:
    reference = _extractor(model_and_processor).run(tmp_path / "reference", video_items, TEXTS)
    assert reference.computed_shards == {"video": [0, 1, 2, 3], "text": [0, 1, 2]}

    # Crash while writing the third shard, leaving a half-written temporary file behind.
    real_save = features_module._atomic_save_shard
    calls = []

    def crashing_save(path: Path, tensors: dict) -> None:
        calls.append(path.name)
        if len(calls) == 3:
            path.with_name(f".{path.name}.tmp").write_bytes(b"partial")
            raise KeyboardInterrupt
        real_save(path, tensors)

    monkeypatch.setattr(features_module, "_atomic_save_shard", crashing_save)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        _extractor(model_and_processor).run(out, video_items, TEXTS)
    assert sorted(p.name for p in out.glob("*.safetensors")) == [
        "video-00000.safetensors",
        "video-00001.safetensors",
    ]
    assert sorted(json.loads((out / "manifest.json").read_text())["shards"]["video"]) == ["0", "1"]
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.safetensors")}

    monkeypatch.setattr(features_module, "_atomic_save_shard", real_save)
    resumed = _extractor(model_and_processor).run(out, video_items, TEXTS)
    assert resumed.reused_shards == {"video": [0, 1], "text": []}
    assert resumed.computed_shards == {"video": [2, 3], "text": [0, 1, 2]}
    assert {name: (out / name).stat().st_mtime_ns for name in mtimes} == mtimes

    for kind in ("video", "text"):
        expected, got = load_features(tmp_path / "reference", kind), load_features(out, kind)
        assert torch.equal(expected.embeddings, got.embeddings)
        assert expected.ids == got.ids
    assert [f["id"] for f in resumed.failed] == ["corrupt.mp4", "missing"]
    assert "not a readable video container" in resumed.failed[0]["error"]
    assert "does not exist" in resumed.failed[1]["error"]
    assert json.loads((out / "failed.json").read_text()) == resumed.failed


def test_stored_embeddings_match_direct_model_calls(model_and_processor, video_items, tmp_path: Path) -> None:
    model, processor = model_and_processor
    _extractor(model_and_processor).run(tmp_path, video_items, TEXTS)
    videos, texts = load_features(tmp_path, "video"), load_features(tmp_path, "text")
    assert videos.ids == [item.id for item in video_items[:-2]]
    assert list(videos.table["status"]) == ["ok"] * (len(video_items) - 2)
    item = video_items[3]
    with torch.no_grad():
        pixels = processor(
            videos=[read_clip(item.path, None, None, 4)], do_sample_frames=False, return_tensors="pt"
        )
        expected_video = F.normalize(
            model.get_video_features(pixels["pixel_values"]).pooler_output[0], dim=-1
        )
        tokens = processor(text=[TEXTS[2]], return_tensors="pt")
        text = model.get_text_features(tokens["input_ids"], tokens["attention_mask"]).pooler_output[0]
        expected_text = F.normalize(text, dim=-1)
    torch.testing.assert_close(videos.embeddings[3], expected_video, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(texts.embeddings[2], expected_text, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(videos.embeddings.norm(dim=1), torch.ones(len(videos.ids)))
    assert texts.table["text"].tolist() == TEXTS


def test_resume_with_other_settings_is_refused(model_and_processor, video_items, tmp_path: Path) -> None:
    items = video_items[:2]
    _extractor(model_and_processor).run(tmp_path, items, TEXTS[:1])
    with pytest.raises(FingerprintMismatchError, match="differing: num_frames"):
        _extractor(model_and_processor, num_frames=2).run(tmp_path, items, TEXTS[:1])
    with pytest.raises(FingerprintMismatchError, match="differing: texts"):
        _extractor(model_and_processor).run(tmp_path, items, TEXTS[:2])
    redone = _extractor(model_and_processor, num_frames=2).run(tmp_path, items, TEXTS[:1], overwrite=True)
    assert redone.computed_shards == {"video": [0], "text": [0]}


def test_topk_exact_hand_example_with_block_merging() -> None:
    keys = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.6, 0.8]])
    queries = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    scores, indices = topk_exact(queries, keys, k=3, block_size=1)
    assert indices.tolist() == [[0, 2, 3], [1, 2, 3]]
    torch.testing.assert_close(scores, torch.tensor([[1.0, 0.6, 0.6], [1.0, 0.8, 0.8]]))
    assert topk_exact(queries, keys, k=10)[1].shape == (2, 4)


def test_topk_exact_matches_full_sort() -> None:
    generator = torch.Generator().manual_seed(0)
    queries, keys = torch.randn(7, 16, generator=generator), torch.randn(1000, 16, generator=generator)
    scores, indices = topk_exact(queries, keys, k=10, block_size=128)
    full = (queries @ keys.T).numpy()
    expected = np.argsort(-full, axis=1, kind="stable")[:, :10]
    assert indices.tolist() == expected.tolist()
    np.testing.assert_allclose(scores.numpy(), np.take_along_axis(full, expected, axis=1), rtol=1e-5)


def test_search_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="must share D"):
        search(torch.zeros(2, 3), torch.zeros(5, 4), k=1)
    with pytest.raises(ValueError, match="backend"):
        search(torch.zeros(2, 3), torch.zeros(5, 3), k=1, backend="annoy")


@pytest.mark.skipif(not faiss_available(), reason="faiss-cpu is not installed (optional `search` extra)")
def test_faiss_matches_exact() -> None:
    generator = torch.Generator().manual_seed(1)
    keys = torch.nn.functional.normalize(torch.randn(500, 32, generator=generator), dim=1)
    queries = torch.nn.functional.normalize(torch.randn(6, 32, generator=generator), dim=1)
    exact_scores, exact_indices = topk_exact(queries, keys, k=8)
    index = FaissIndex(keys)
    faiss_scores, faiss_indices = index.search(queries, k=8)
    assert index.size == 500
    assert faiss_indices.tolist() == exact_indices.tolist()
    torch.testing.assert_close(faiss_scores, exact_scores, atol=1e-5, rtol=1e-5)


def test_contact_sheet_layout_and_pixels(tmp_path: Path) -> None:
    for name, colour in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
        synthetic.write_video(
            str(tmp_path / f"{name}.mp4"), np.full((5, 32, 32, 3), colour, dtype=np.uint8), fps=5
        )
    hits = [
        Hit(str(tmp_path / "red.mp4"), None, None, 0.9, "red clip"),
        Hit(str(tmp_path / "blue.mp4"), 0.2, 0.8, 0.5, "blue clip"),
        Hit(str(tmp_path / "gone.mp4"), None, None, 0.1, "missing clip"),
    ]
    layout = SheetLayout(num_frames=3, thumb_height=20, label_height=18, padding=4)
    sheet = render_contact_sheet([("a query", hits)], layout)
    # title band (18 + 4) + 3 rows of (18 label + 20 frames + 4), plus the top padding; width: the 320 px minimum
    assert sheet.size == (4 + 320 + 4, 4 + 22 + 3 * 42)
    pixels = np.asarray(sheet)
    first_row_y, second_row_y, third_row_y = 4 + 22 + 18 + 10, 4 + 22 + 42 + 18 + 10, 4 + 22 + 84 + 18 + 10
    red = pixels[first_row_y, 4 + 10]
    blue = pixels[second_row_y, 4 + 2 * (20 + 4) + 10]
    assert red[0] > 200 and red[1] < 40 and red[2] < 40
    assert blue[2] > 200 and blue[0] < 40 and blue[1] < 40
    assert tuple(pixels[third_row_y, 4 + 10]) == (128, 128, 128)
    sheet.save(tmp_path / "sheet.png")
    assert Image.open(tmp_path / "sheet.png").size == sheet.size
    assert os.path.getsize(tmp_path / "sheet.png") > 0
