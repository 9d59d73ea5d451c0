"""transformers pipelines: `zero-shot-video-classification` and `video-text-retrieval` on a tiny saved model and
real video files, in this process (package imported) and, from a saved folder, in one that never imports it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _helpers import save_model_dir
from transformers import pipeline

from eva02at_hf import EVA02ATConfig, EVA02ATForVideoTextRetrieval, EVA02ATProcessor
from eva02at_hf.data.synthetic import write_video
from eva02at_hf.video_io import VideoDecodeError

LABELS = ["open the fridge", "cut the onion", "wash the pan"]
FPS = 10


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny model + processor, and `colours.mp4`: 1 s of red squares then 1 s of blue frames."""
    folder = tmp_path_factory.mktemp("pipeline_model")
    torch.manual_seed(0)
    model = EVA02ATForVideoTextRetrieval(EVA02ATConfig.from_preset("eva02at-tiny"))
    with torch.no_grad():
        model.vision_model.embeddings.temporal_embedding.normal_(std=0.5)
    save_model_dir(folder, model)
    frames = np.full((2 * FPS, 32, 32, 3), 128, dtype=np.uint8)
    frames[:FPS, 8:24, 8:24] = (220, 40, 40)
    frames[FPS:] = (50, 80, 235)
    write_video(str(folder / "colours.mp4"), frames, FPS)
    return folder


@pytest.fixture(scope="module")
def reference(model_dir: Path) -> tuple[EVA02ATForVideoTextRetrieval, EVA02ATProcessor]:
    return EVA02ATForVideoTextRetrieval.from_pretrained(model_dir).eval(), EVA02ATProcessor.from_pretrained(
        model_dir
    )


def forward_outputs(reference, video, texts, **video_kwargs):
    """The model's own forward on the processor's inputs: the independent path the pipelines are checked against."""
    model, processor = reference
    inputs = processor(videos=[video], text=texts, return_tensors="pt", **video_kwargs)
    with torch.no_grad():
        return model(**inputs)


def expected_scores(reference, video, labels, **video_kwargs) -> dict[str, float]:
    logits = forward_outputs(reference, video, labels, **video_kwargs).logits_per_video[0]
    return dict(zip(labels, logits.softmax(-1).tolist(), strict=True))


def as_dict(result: list[dict]) -> dict[str, float]:
    return {entry["label"]: entry["score"] for entry in result}


def test_zero_shot_scores_paths_windows_and_decoded_clips_in_batches(model_dir: Path, reference) -> None:
    path = str(model_dir / "colours.mp4")
    decoded = np.random.default_rng(0).integers(0, 256, (10, 40, 48, 3), dtype=np.uint8)
    classifier = pipeline("zero-shot-video-classification", model=str(model_dir), device="cpu")
    inputs = [path, {"video": path, "start_time": 0.0, "end_time": 0.9}, decoded]
    results = classifier(inputs, candidate_labels=LABELS, batch_size=2)

    expected = [
        expected_scores(reference, path, LABELS),
        expected_scores(reference, path, LABELS, start_time=0.0, end_time=0.9),
        expected_scores(reference, decoded, LABELS),
    ]
    assert len(results) == 3
    for result, want in zip(results, expected, strict=True):
        scores = [entry["score"] for entry in result]
        assert scores == sorted(scores, reverse=True)
        assert sorted(entry["label"] for entry in result) == sorted(LABELS)
        assert sum(scores) == pytest.approx(1.0, abs=1e-5)
        assert as_dict(result) == pytest.approx(want, abs=1e-5)
    # The red-only window is another clip than the whole red-then-blue file.
    assert max(abs(expected[0][label] - expected[1][label]) for label in LABELS) > 1e-3
    # One by one gives what the batch gave.
    assert as_dict(classifier(inputs[1], candidate_labels=LABELS)) == pytest.approx(
        as_dict(results[1]), abs=1e-5
    )


def test_zero_shot_template_top_k_and_call_window(model_dir: Path, reference) -> None:
    path = str(model_dir / "colours.mp4")
    classifier = pipeline("zero-shot-video-classification", model=str(model_dir), device="cpu")
    result = classifier(
        path,
        candidate_labels=LABELS,
        hypothesis_template="a video of {}",
        top_k=2,
        start_time=1.0,
        end_time=2.0,
    )
    want = expected_scores(
        reference, path, [f"a video of {label}" for label in LABELS], start_time=1.0, end_time=2.0
    )
    ranked = sorted(zip(want.values(), LABELS, strict=True), reverse=True)[:2]
    assert [entry["label"] for entry in result] == [label for _, label in ranked]
    assert [entry["score"] for entry in result] == pytest.approx([score for score, _ in ranked], abs=1e-5)


def test_retrieval_ranks_by_cosine_in_both_directions(model_dir: Path, reference) -> None:
    path = str(model_dir / "colours.mp4")
    window = {"video": path, "start_time": 1.0, "end_time": 2.0}
    decoded = np.random.default_rng(1).integers(0, 256, (9, 32, 32, 3), dtype=np.uint8)
    texts = ["open the fridge", "a blue screen", "a red square", "wash the pan"]
    retriever = pipeline("video-text-retrieval", model=str(model_dir), device="cpu")
    text_to_video = retriever([path, window, decoded], texts=texts, batch_size=3)
    video_to_text = retriever([path, window, decoded], texts=texts, direction="video-to-text", top_k=2)

    video_embeds = torch.cat(
        [
            forward_outputs(reference, path, texts).video_embeds,
            forward_outputs(reference, path, texts, start_time=1.0, end_time=2.0).video_embeds,
            forward_outputs(reference, decoded, texts).video_embeds,
        ]
    )
    cosine = forward_outputs(reference, path, texts).text_embeds @ video_embeds.t()  # (texts, videos)
    described = [path, window, None]
    assert len(text_to_video) == len(texts)
    for row, ranking in zip(cosine, text_to_video, strict=True):
        order = row.argsort(descending=True).tolist()
        assert [entry["index"] for entry in ranking] == order
        assert [entry["score"] for entry in ranking] == pytest.approx(row[order].tolist(), abs=1e-5)
        assert [entry["video"] for entry in ranking] == [described[i] for i in order]
    assert len(video_to_text) == 3
    for column, ranking in zip(cosine.t(), video_to_text, strict=True):
        order = column.argsort(descending=True).tolist()[:2]
        assert [(entry["index"], entry["text"]) for entry in ranking] == [(i, texts[i]) for i in order]
        assert [entry["score"] for entry in ranking] == pytest.approx(column[order].tolist(), abs=1e-5)


def test_bfloat16_pipeline_runs_the_model_in_bfloat16(model_dir: Path, reference) -> None:
    path = str(model_dir / "colours.mp4")
    classifier = pipeline(
        "zero-shot-video-classification", model=str(model_dir), device="cpu", dtype=torch.bfloat16
    )
    assert classifier.model.dtype == torch.bfloat16
    assert as_dict(classifier(path, candidate_labels=LABELS)) == pytest.approx(
        expected_scores(reference, path, LABELS), abs=0.03
    )


REMOTE = """
import json, sys
from transformers import pipeline
folder, video = sys.argv[1], sys.argv[2]
classifier = pipeline("zero-shot-video-classification", model=folder, trust_remote_code=True, device="cpu")
retriever = pipeline("video-text-retrieval", model=folder, trust_remote_code=True, device="cpu")
print(json.dumps({
    "classes": [type(classifier).__name__, type(retriever).__name__],
    "zero_shot": classifier({"video": video, "start_time": 0.0, "end_time": 0.9}, candidate_labels=sys.argv[3:]),
    "retrieval": retriever([video], texts=sys.argv[3:]),
    "loaded_package": any(name.startswith("eva02at_hf") for name in sys.modules),
}))
"""


def test_saved_pipeline_loads_with_the_package_and_as_remote_code_without(
    model_dir: Path, tmp_path: Path
) -> None:
    path = str(model_dir / "colours.mp4")
    window = {"video": path, "start_time": 0.0, "end_time": 0.9}
    classifier = pipeline("zero-shot-video-classification", model=str(model_dir), device="cpu")
    saved = tmp_path / "saved"
    classifier.save_pretrained(saved)
    config = json.loads((saved / "config.json").read_text())
    assert config["custom_pipelines"]["zero-shot-video-classification"] == {
        "impl": "pipelines_eva02at.ZeroShotVideoClassificationPipeline",
        "pt": ["AutoModel"],
        "type": "multimodal",
    }
    assert set(config["custom_pipelines"]) == {"zero-shot-video-classification", "video-text-retrieval"}
    assert {"pipelines_eva02at.py", "modeling_eva02at.py", "processor_config.json"} <= set(os.listdir(saved))
    # Saving leaves the model's config as it was.
    assert not hasattr(classifier.model.config, "custom_pipelines")

    # With the package imported, no trust_remote_code is needed: the registered pipelines serve the folder.
    expected = classifier(window, candidate_labels=LABELS)
    reloaded = pipeline("zero-shot-video-classification", model=str(saved), device="cpu")
    assert type(reloaded) is type(classifier)
    assert as_dict(reloaded(window, candidate_labels=LABELS)) == pytest.approx(as_dict(expected), abs=1e-6)
    retrieval = pipeline("video-text-retrieval", model=str(saved), device="cpu")([path], texts=LABELS)

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    env.pop("PYTHONPATH", None)
    completed = subprocess.run(
        [sys.executable, "-c", REMOTE, str(saved), path, *LABELS],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    remote = json.loads(completed.stdout.strip().splitlines()[-1])
    assert remote["loaded_package"] is False
    assert remote["classes"] == ["ZeroShotVideoClassificationPipeline", "VideoTextRetrievalPipeline"]
    assert [entry["label"] for entry in remote["zero_shot"]] == [entry["label"] for entry in expected]
    assert as_dict(remote["zero_shot"]) == pytest.approx(as_dict(expected), abs=1e-5)
    assert [entry["score"] for entry in remote["retrieval"][0]] == pytest.approx(
        [entry["score"] for entry in retrieval[0]], abs=1e-5
    )


def test_bad_inputs_get_clear_errors(model_dir: Path, tmp_path: Path) -> None:
    classifier = pipeline("zero-shot-video-classification", model=str(model_dir), device="cpu")
    retriever = pipeline("video-text-retrieval", model=str(model_dir), device="cpu")
    missing = str(tmp_path / "missing.mp4")
    with pytest.raises(VideoDecodeError, match="missing.mp4"):
        classifier(missing, candidate_labels=LABELS)
    with pytest.raises(ValueError, match="'video' key"):
        classifier({"path": missing}, candidate_labels=LABELS)
    with pytest.raises(ValueError, match="at least one label"):
        classifier(missing, candidate_labels=[])
    with pytest.raises(ValueError, match="must contain"):
        classifier(missing, candidate_labels=LABELS, hypothesis_template="no placeholder")
    with pytest.raises(ValueError, match="direction"):
        retriever([missing], texts=LABELS, direction="sideways")
    with pytest.raises(ValueError, match="4D decoded clip"):
        classifier(np.zeros((32, 32, 3), dtype=np.uint8), candidate_labels=LABELS)
    with pytest.raises(ValueError, match="num_frames=8 frames from a video of total_num_frames=3"):
        classifier(np.zeros((3, 32, 32, 3), dtype=np.uint8), candidate_labels=LABELS)
