"""Model cards (rendering, Hub metadata validation, paper numbers) and publishing against a captured Hub API."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _helpers import save_model_dir
from huggingface_hub import HfApi, ModelCard, ModelCardData
from huggingface_hub.repocard_data import model_index_to_eval_results

from eva02at_hf import EVA02ATConfig, EVA02ATForVideoTextRetrieval
from eva02at_hf.apps.hub import check_results, load_results, parameter_counts, publish, render_model_card
from eva02at_hf.training.models import processor_for

CARDS = Path(__file__).resolve().parents[1] / "model_cards"
PAPER = "https://arxiv.org/abs/2506.14356"


@pytest.fixture(scope="module")
def card_b() -> ModelCard:
    return render_model_card(
        EVA02ATConfig.from_preset("eva02at-b"), load_results(CARDS / "eva02at-b.json"), "me/b"
    )


def _find(results, dataset_fragment: str, metric_name: str) -> float:
    values = [
        r.metric_value for r in results if dataset_fragment in r.dataset_name and r.metric_name == metric_name
    ]
    assert len(values) == 1, (dataset_fragment, metric_name, values)
    return values[0]


def test_rendered_card_validates_and_round_trips(card_b: ModelCard) -> None:
    reparsed = ModelCard(str(card_b), ignore_metadata_errors=False)
    assert reparsed.data.model_name == "EVA02-AT-B"
    assert reparsed.data.library_name == "transformers"
    assert reparsed.data.base_model == "timm/eva02_base_patch16_clip_224.merged2b"
    # 5 EK-100 entries x 6 metrics + EgoMCQ (2) + 3 Charades-Ego entries (1 each)
    assert len(reparsed.data.eval_results) == 35
    metadata = reparsed.data.to_dict()
    name, results = model_index_to_eval_results(metadata["model-index"])
    assert name == "EVA02-AT-B" and len(results) == 35
    ModelCardData(**metadata, ignore_metadata_errors=False)
    assert {r.source_url for r in results} == {PAPER}
    assert all("not reproduced" in r.source_name and r.verified is False for r in results)
    assert {r.task_type for r in results} == {
        "video-text-retrieval",
        "multiple-choice",
        "video-classification",
    }


def test_card_carries_the_paper_numbers(card_b: ModelCard) -> None:
    results = card_b.data.eval_results
    # Table III (zero-shot, EgoClip+), Table I (SMS fine-tuning, EgoClip+), Table II (EgoMCQ, Charades-Ego).
    assert _find(results, "MIR (zero-shot, EgoClip+", "mAP avg") == 34.3
    assert _find(results, "MIR (zero-shot, EgoClip+", "nDCG avg") == 34.1
    assert _find(results, "MIR (fine-tuned (SMS loss), EgoClip+", "mAP V→T") == 64.6
    assert _find(results, "EgoMCQ", "Intra-video accuracy") == 63.2
    assert _find(results, "Charades-Ego (fine-tuned (SMS loss)", "mAP") == 38.0
    large = render_model_card(
        EVA02ATConfig.from_preset("eva02at-l"), load_results(CARDS / "eva02at-l.json"), "me/l"
    )
    assert _find(large.data.eval_results, "MIR (fine-tuned (SMS loss), EgoClip+", "mAP avg") == 63.5
    assert _find(large.data.eval_results, "EgoMCQ", "Inter-video accuracy") == 95.9
    assert _find(large.data.eval_results, "Charades-Ego (zero-shot", "mAP") == 30.9


def test_card_sections(card_b: ModelCard) -> None:
    text = card_b.text
    for section in (
        "## Intended use",
        "## How to load",
        "## Training recipe",
        "## Results",
        "## Limitations",
    ):
        assert section in text
    assert 'AutoModel.from_pretrained("me/b", trust_remote_code=True)' in text
    assert 'AutoProcessor.from_pretrained("me/b", trust_remote_code=True)' in text
    assert "they were not reproduced with this implementation" in text
    assert "| zero-shot | EgoClip+ | 38.3 | 30.3 | 34.3 | 36.0 | 32.2 | 34.1 | paper, Table III |" in text
    assert "arXiv:2506.14356" in text and "Wang, Xiaoqi and Wang, Yi and Chau, Lap-Pui" in text
    assert "{{" not in text and "{%" not in text


def test_parameter_counts_match_the_paper_sizes() -> None:
    # Paper Table III: 86 M + 63 M (B) and 304 M + 124 M (L) for the video and text encoders.
    for preset, (vision, text) in {"eva02at-b": (86e6, 63e6), "eva02at-l": (304e6, 124e6)}.items():
        counted_vision, counted_text = parameter_counts(EVA02ATConfig.from_preset(preset))
        assert abs(counted_vision - vision) / vision < 0.02
        assert abs(counted_text - text) / text < 0.03


@pytest.mark.parametrize(
    ("results", "message"),
    [
        ({"results": [{"benchmark": "msrvtt", "metrics": {"R@1": 1}}]}, "results\\[0\\].benchmark 'msrvtt'"),
        (
            {"results": [{"benchmark": "egomcq", "metrics": {"mAP": 1}}]},
            "metrics \\['mAP'\\] unknown for egomcq",
        ),
        ({"results": [{"benchmark": "egomcq", "metrics": {}}]}, "no 'metrics'"),
        ({"model_name": "x"}, "'results' list"),
    ],
)
def test_check_results_names_the_bad_entry(results: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_results(results)


def test_unmeasured_metrics_are_left_out_of_the_card(tmp_path: Path) -> None:
    # An EgoMCQ evaluation where no intra-video question could be scored: the CLI writes NaN as null.
    from eva02at_hf.apps.cli import _write_json

    path = tmp_path / "mcq.json"
    metrics = {"inter_video_accuracy": 91.25, "intra_video_accuracy": float("nan")}
    _write_json(str(path), {"results": [{"benchmark": "egomcq", "metrics": metrics}]})
    results = json.loads(
        path.read_text(), parse_constant=lambda name: pytest.fail(f"non-JSON constant {name}")
    )
    assert results["results"][0]["metrics"]["intra_video_accuracy"] is None
    card = render_model_card(EVA02ATConfig.from_preset("eva02at-tiny"), load_results(path), "me/tiny")
    assert [(r.metric_name, r.metric_value) for r in ModelCard(str(card)).data.eval_results] == [
        ("Inter-video accuracy", 91.25)
    ]
    assert "| – | 91.2 | – | eva02at-hf evaluation |" in card.text  # pre-training, inter, intra, source


def test_card_without_results_is_valid() -> None:
    card = render_model_card(EVA02ATConfig.from_preset("eva02at-tiny"), None, "me/tiny")
    assert ModelCard(str(card)).data.eval_results is None
    assert "No evaluation results were provided" in card.text


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    save_model_dir(folder)
    return folder


class CapturedHub:
    """Stands in for the Hub: records `create_repo` and the operations of `create_commit`."""

    def __init__(self, remote: Path) -> None:
        self.remote = remote
        self.repos: list[dict] = []
        self.commits: list[dict] = []

    def create_repo(self, repo_id: str, **kwargs) -> str:
        self.repos.append({"repo_id": repo_id, **kwargs})
        return f"https://hub.invalid/{repo_id}"

    def create_commit(self, repo_id: str, operations: list, **kwargs) -> str:
        files = {}
        for op in operations:
            target = self.remote / op.path_in_repo
            shutil.copyfile(op.path_or_fileobj, target)
            files[op.path_in_repo] = target
        self.commits.append({"repo_id": repo_id, "files": files, **kwargs})
        return "commit"


REMOTE_LOAD = """
import json, sys
import torch
from transformers import AutoModel, AutoProcessor
model = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True)
processor = AutoProcessor.from_pretrained(sys.argv[1], trust_remote_code=True)
tokens = processor(text=["open the fridge"], return_tensors="pt")
with torch.no_grad():
    text = model.get_text_features(tokens["input_ids"], tokens["attention_mask"]).pooler_output[0]
print(json.dumps({"loaded_package": any(m.startswith("eva02at_hf") for m in sys.modules),
                  "model": type(model).__name__, "processor": type(processor).__name__, "text": text.tolist()}))
"""


def test_publish_uploads_model_processor_code_and_card(model_dir: Path, tmp_path: Path, monkeypatch) -> None:
    remote = tmp_path / "remote"
    remote.mkdir()
    hub = CapturedHub(remote)
    monkeypatch.setattr(HfApi, "create_repo", hub.create_repo)
    monkeypatch.setattr(HfApi, "create_commit", hub.create_commit)
    results = {"results": [{"benchmark": "ek100_mir", "setting": "zero-shot", "metrics": {"mAP_avg": 12.5}}]}
    card = render_model_card(EVA02ATConfig.from_pretrained(model_dir), results, "me/tiny")
    publish(model_dir, "me/tiny", card, tmp_path / "staging", private=True)

    assert hub.repos == [{"repo_id": "me/tiny", "private": True, "exist_ok": True, "repo_type": "model"}]
    assert len(hub.commits) == 1
    files = hub.commits[0]["files"]
    required = {
        "README.md",
        "config.json",
        "model.safetensors",
        "configuration_eva02at.py",
        "modeling_eva02at.py",
        "pipelines_eva02at.py",
        "rope.py",
        "processor_config.json",
        "processing_eva02at.py",
        "video_processing_eva02at.py",
        "tokenizer.json",
        "tokenizer_config.json",
    }
    assert required <= set(files)
    config = json.loads(files["config.json"].read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_eva02at.EVA02ATConfig",
        "AutoModel": "modeling_eva02at.EVA02ATForVideoTextRetrieval",
    }
    assert set(config["custom_pipelines"]) == {"zero-shot-video-classification", "video-text-retrieval"}
    processor_config = json.loads(files["processor_config.json"].read_text())
    assert processor_config["auto_map"]["AutoProcessor"] == "processing_eva02at.EVA02ATProcessor"
    uploaded_card = ModelCard(files["README.md"].read_text())
    assert [r.metric_value for r in uploaded_card.data.eval_results] == [12.5]

    # The uploaded folder works with trust_remote_code in a process that never imports eva02at_hf.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    completed = subprocess.run(
        [sys.executable, "-c", REMOTE_LOAD, str(remote)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr
    loaded = json.loads(completed.stdout.strip().splitlines()[-1])
    assert loaded["loaded_package"] is False
    assert (loaded["model"], loaded["processor"]) == ("EVA02ATForVideoTextRetrieval", "EVA02ATProcessor")
    model = EVA02ATForVideoTextRetrieval.from_pretrained(model_dir).eval()
    processor = processor_for(model.config)
    tokens = processor(text=["open the fridge"], return_tensors="pt")
    with torch.no_grad():
        expected = model.get_text_features(tokens["input_ids"], tokens["attention_mask"]).pooler_output[0]
    torch.testing.assert_close(torch.tensor(loaded["text"]), expected, atol=1e-6, rtol=1e-5)


def test_publish_requires_a_processor(tmp_path: Path) -> None:
    EVA02ATForVideoTextRetrieval(EVA02ATConfig.from_preset("eva02at-tiny")).save_pretrained(tmp_path / "m")
    card = render_model_card(EVA02ATConfig.from_preset("eva02at-tiny"), None, "me/tiny")
    with pytest.raises(FileNotFoundError, match="no processor_config.json"):
        publish(tmp_path / "m", "me/tiny", card, tmp_path / "staging")
