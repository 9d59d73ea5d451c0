"""EgoClip / EgoMCQ / Charades-Ego end to end: the synthetic set written in those layouts, read by the builders,
used by `examples/pretrain_egoclip.py`, `examples/finetune_charades_ego.py`, `examples/evaluate_zeroshot.py` and
`eva02at eval egomcq | charades_ego` (tiny random model, 2 frames of 32 x 32, 40 clips)."""

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType

import datasets
import pandas as pd
import pytest
import torch
from _helpers import small_synthetic_set
from accelerate.utils import set_seed
from peft import PeftModel
from transformers import AutoModel, AutoProcessor

from eva02at_hf.apps.cli import EXIT_OK, main
from eva02at_hf.apps.hub import load_results
from eva02at_hf.data import charades_ego_class_names, load_charades_ego, load_egoclip, load_egomcq, synthetic
from eva02at_hf.training import LORA_TARGET_MODULES, load_model_and_processor

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FPS, FRAMES_PER_CLIP = 10, 8  # of `small_synthetic_set`
TRAIN_FLAGS = ["--num_frames", "2", "--batch_size", "8", "--num_workers", "0", "--report_to", "none"]


def _example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` (registered in sys.modules: its dataclasses need their module)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module", autouse=True)
def datasets_cache(tmp_path_factory):
    """The example scripts build their datasets in the default cache: point it at a temporary folder."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("hf_datasets")))
        yield


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return small_synthetic_set(tmp_path_factory.mktemp("synthetic"), synthetic.LAYOUTS)


@pytest.fixture(scope="module")
def random_model(tmp_path_factory) -> Path:
    """A randomly initialised tiny model (2 frames) saved with its processor: the zero-shot baseline."""
    path = tmp_path_factory.mktemp("random_model")
    set_seed(0)
    model, processor = load_model_and_processor(None, num_frames=2)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def _ek100(data: Path, split: str) -> pd.DataFrame:
    return pd.read_csv(data / f"EPIC_100_retrieval_{split}.csv")


def _questions(data: Path) -> dict:
    return json.loads((data / "egomcq.json").read_text())


def _num_questions(data: Path, types: int) -> int:
    return sum(q["types"] == types for q in _questions(data).values())


def _check_accuracies(metrics: dict, data: Path) -> None:
    """Accuracies in [0, 100] and multiples of 100 / (questions of that type)."""
    for name, types in (("inter_video_accuracy", 1), ("intra_video_accuracy", 2)):
        correct = metrics[name] * _num_questions(data, types) / 100
        assert 0 <= metrics[name] <= 100 and correct == pytest.approx(round(correct), abs=1e-6)


def _check_saved_model(folder: Path, num_frames: int, video: Path) -> None:
    model = AutoModel.from_pretrained(folder)
    processor = AutoProcessor.from_pretrained(folder)
    assert model.config.vision_config.num_frames == num_frames
    # The saved processor samples the training frame count by default (the preset's processor samples 16).
    assert processor.video_processor.num_frames == num_frames
    assert processor(videos=[str(video)], return_tensors="pt")["pixel_values"].shape[:2] == (1, num_frames)
    tokens = processor(text=["move the red square left"], return_tensors="pt")
    with torch.no_grad():
        embedding = model.get_text_features(tokens["input_ids"], tokens["attention_mask"]).pooler_output
    assert embedding.shape == (1, model.config.projection_dim)
    assert torch.isfinite(embedding).all()


def _eval(benchmark: str, model: Path, data: Path, out: Path, *extra: str) -> dict:
    argv = [
        "eval", benchmark,
        "--model", str(model),
        "--data_dir", str(data),
        "--video_root", str(data / "videos"),
        "--cache_dir", str(out.parent / "eval_cache"),
        "--output", str(out),
        *extra,
    ]  # fmt: skip
    assert main(argv) == EXIT_OK
    return json.loads(out.read_text())["results"][0]


def test_egoclip_and_egomcq_layouts_hold_the_ek100_clips(data, tmp_path):
    train, test = _ek100(data, "train"), _ek100(data, "test")
    egoclip = pd.read_csv(data / "egoclip.csv", sep="\t")
    assert egoclip["clip_text"].tolist() == train["narration"].tolist()
    assert (egoclip["clip_end"] - egoclip["clip_start"]).tolist() == pytest.approx(
        [FRAMES_PER_CLIP / FPS] * len(train)
    )
    pairs = load_egoclip(data, data / "videos", on_bad_row="raise")
    assert len(pairs) == len(train) and pairs["verb_classes"] == [[v] for v in train["verb_class"]]

    questions = _questions(data)
    assert _num_questions(data, 1) > 0 and _num_questions(data, 2) > 0
    test_videos = set(test["video_id"])
    for question in questions.values():
        choices = [question["choices"][str(k)] for k in range(5)]
        assert question["query"] == choices[question["answer"]]
        others = [c for k, c in enumerate(choices) if k != question["answer"]]
        assert all(c["clip_text"] != question["query"]["clip_text"] for c in others)
        videos = [c["video_uid"] for c in choices]
        assert set(videos) <= test_videos
        if question["types"] == 1:
            assert len(set(videos)) == 5
        else:
            assert set(videos) == {question["query"]["video_uid"]}
    mcq = load_egomcq(data, data / "videos", on_bad_row="raise")
    assert len(mcq) == len(questions) and all(len(c) == 5 for c in mcq["choices"])

    copy = tmp_path / "copy"
    copy.mkdir()
    for path in data.glob("EPIC_100_*.csv"):
        shutil.copy(path, copy)
    synthetic.write_egoclip_layout(copy, seed=0)
    assert json.loads((copy / "egomcq.json").read_text()) == questions


def test_egoclip_layout_needs_videos_with_five_clips(tmp_path):
    with pytest.raises(ValueError, match="max_clips_per_video"):
        synthetic.generate(tmp_path, num_clips=12, seed=0, max_clips_per_video=3, layouts=("egoclip",))
    with pytest.raises(ValueError, match="layouts"):
        synthetic.generate(tmp_path, num_clips=2, seed=0, layouts=("ego4d",))


def test_charades_ego_layout_classes_are_verb_x_shape(data):
    names = charades_ego_class_names(data)
    assert len(names) == 24 and names[0] == "move the square left" and names[23] == "shrink the triangle"
    assert names[3 * 4 + 1] == "make the circle appear"
    test = _ek100(data, "test")
    videos = load_charades_ego(data, data / "videos", "test", on_bad_row="raise")
    assert sorted(videos["video_id"]) == sorted(set(test["video_id"]))
    for video in videos:
        clips = test[test["video_id"] == video["video_id"]]
        assert video["class_ids"] == sorted(set(clips["verb_class"] * 3 + clips["noun_class"]))
        assert video["start"] == 0.0 and video["stop"] > clips["start_frame"].max() / FPS
    segments = load_charades_ego(data, data / "videos", "train", on_bad_row="raise")
    assert len(segments) == len(_ek100(data, "train"))
    for segment in segments:
        (label,) = segment["class_ids"]
        verb, shape = divmod(label, 3)
        assert segment["narration"] == names[label]
        assert synthetic.SHAPES[shape] in segment["narration"] and segment["stop"] > segment["start"]


def test_recipe_flags_keep_their_help_and_show_the_recipe_defaults(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "300")  # one line per flag
    expected = {
        "pretrain_egoclip": [
            "--num_epochs NUM_EPOCHS, --num-epochs NUM_EPOCHS Training epochs. (default: 5)",
            "--batch_size BATCH_SIZE, --batch-size BATCH_SIZE Clips per process per forward pass. (default: 256)",
            "--learning_rate LEARNING_RATE, --learning-rate LEARNING_RATE Peak learning rate. (default: 3e-05)",
            "--lr_schedule LR_SCHEDULE, --lr-schedule LR_SCHEDULE One of ('constant', 'cosine'). (default: constant)",
            "Linear warm-up length in epochs (0: none). (default: 0.0)",
            "Evaluate every N epochs and at the end. (default: 1)",
            "Metric selecting the best model. (default: intra_video_accuracy)",
        ],
        "finetune_charades_ego": [
            "--num_epochs NUM_EPOCHS, --num-epochs NUM_EPOCHS Training epochs. (default: 10)",
            "--learning_rate LEARNING_RATE, --learning-rate LEARNING_RATE Peak learning rate. (default: 3e-05)",
            "--optimizer OPTIMIZER One of ('adamw', 'lamb') (LAMB from timm). (default: lamb)",
            "Evaluate every N epochs and at the end. (default: 1)",
            "Metric selecting the best model. (default: mAP)",
        ],
    }
    for script, lines in expected.items():
        with pytest.raises(SystemExit) as exit_:
            _example(script).main(["--help"])
        assert exit_.value.code == 0
        help_text = " ".join(capsys.readouterr().out.split())
        for line in lines:
            assert line in help_text, (script, line)


def test_scripts_refuse_bad_flags_before_loading_data(tmp_path, capsys):
    paths = [
        "--data_dir",
        str(tmp_path / "missing"),
        "--video_root",
        str(tmp_path),
        "--output_dir",
        str(tmp_path),
    ]
    # EK-100 relevancy is soft: SMS-hard (hard 0 / 1 labels) is refused when the arguments are parsed.
    with pytest.raises(SystemExit) as exit_:
        _example("finetune_ek100").main([*paths, "--loss", "sms_hard"])
    assert exit_.value.code == 2
    assert "argument --loss: invalid choice: 'sms_hard'" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"--metric_for_best 'map_avg'.*'mAP_avg'"):
        _example("finetune_ek100").main([*paths, "--metric_for_best", "map_avg"])
    with pytest.raises(ValueError, match="--metric_for_best 'mAP_avg'.*'mAP'"):
        _example("finetune_charades_ego").main([*paths, "--metric_for_best", "mAP_avg"])
    with pytest.raises(ValueError, match="--lora_r must be >= 1"):
        _example("finetune_ek100").main([*paths, "--lora_r", "0"])
    with pytest.raises(ValueError, match="--lora_alpha / --lora_target_modules need --lora_r"):
        _example("finetune_charades_ego").main([*paths, "--lora_target_modules", "q_proj", "v_proj"])
    zero_shot = _example("evaluate_zeroshot").main
    for name in ("ek100", "egomcq", "charades"):
        with pytest.raises(ValueError, match=f"--{name}_dir needs --{name}_videos"):
            zero_shot(["--output_dir", str(tmp_path), f"--{name}_dir", str(tmp_path)])
        with pytest.raises(ValueError, match=f"--{name}_videos needs --{name}_dir"):
            zero_shot(["--output_dir", str(tmp_path), f"--{name}_videos", str(tmp_path)])
    with pytest.raises(ValueError, match="give at least one of --ek100_dir"):
        zero_shot(["--output_dir", str(tmp_path)])


def test_pretrain_egoclip_with_egomcq_evaluation(data, tmp_path, capsys):
    out = tmp_path / "pretrain"
    argv = ["--data_dir", str(data), "--video_root", str(data / "videos"), "--egomcq_dir", str(data)]
    results = _example("pretrain_egoclip").main(
        [*argv, "--output_dir", str(out), *TRAIN_FLAGS, "--num_epochs", "2", "--learning_rate", "1e-3"]
    )
    assert json.loads((out / "results.json").read_text()) == results
    console = capsys.readouterr().out
    assert "no --model given: training a randomly initialised eva02at-tiny (--preset)" in console
    first, final = results["history"][0], results["final"]
    assert f"epoch 1/2 (step 2): inter_video_accuracy {first['inter_video_accuracy']:.2f}, " in console
    assert f"final: inter_video_accuracy {final['inter_video_accuracy']:.2f}, " in console
    assert f"best intra_video_accuracy: {results['best_metric']:.2f}" in console
    assert f"results: {out / 'results.json'}" in console
    # 20 train clips, batches of 8 with drop_last: 2 updates per epoch, EgoMCQ after each epoch.
    assert [(h["epoch"], h["step"]) for h in results["history"]] == [(0, 2), (1, 4)]
    assert set(results["final"]) == {"inter_video_accuracy", "intra_video_accuracy", "num_skipped"}
    assert results["final"]["num_skipped"] == 0 and results["num_skipped_clips"] == 0
    _check_accuracies(results["final"], data)
    assert results["best_metric"] == max(h["intra_video_accuracy"] for h in results["history"])
    _check_saved_model(out / "last", num_frames=2, video=data / "videos" / "P01_01.mp4")
    assert (out / "best" / "model.safetensors").is_file()


def test_finetune_charades_ego_with_lamb_and_sms_hard_learns(data, random_model, tmp_path):
    out = tmp_path / "charades"
    results = _example("finetune_charades_ego").main(
        [
            *("--data_dir", str(data), "--video_root", str(data / "videos"), "--output_dir", str(out)),
            *TRAIN_FLAGS,
            *("--num_epochs", "4", "--learning_rate", "1e-3", "--warmup_epochs", "0"),
        ]
    )
    assert json.loads((out / "results.json").read_text()) == results
    assert len(results["history"]) == 4 and set(results["final"]) == {"mAP", "num_skipped"}
    assert results["final"]["num_skipped"] == 0
    assert 0 < results["final"]["mAP"] <= 100
    optimizer = torch.load(out / "checkpoints" / "step_8" / "optimizer.bin", weights_only=True)
    assert "trust_clip" in optimizer["param_groups"][0]  # timm's Lamb, the recipe default
    _check_saved_model(out / "last", num_frames=2, video=data / "videos" / "P01_01.mp4")
    # Class-prompt mAP on the trimmed training segments: the fine-tuned model beats its random initialisation.
    # Measured: 19.0 zero-shot, 38.4 after 4 epochs.
    zero_shot = _eval("charades_ego", random_model, data, tmp_path / "zs.json", "--split", "train")
    tuned = _eval("charades_ego", out / "last", data, tmp_path / "ft.json", "--split", "train")
    assert tuned["metrics"]["mAP"] > zero_shot["metrics"]["mAP"] + 8


def test_lora_fine_tune_learns_and_saves_merged_weights_and_the_adapter(data, random_model, tmp_path, capsys):
    out = tmp_path / "lora"
    _example("finetune_charades_ego").main(
        [
            *("--data_dir", str(data), "--video_root", str(data / "videos"), "--output_dir", str(out)),
            *("--model", str(random_model), *TRAIN_FLAGS, "--num_epochs", "4", "--eval_every_epochs", "4"),
            *("--learning_rate", "1e-2", "--warmup_epochs", "0", "--lora_r", "8", "--lora_alpha", "16"),
        ]
    )
    # Rank 8 on q, k, v, out and the MLP layers of both 2-layer, 64-wide towers (MLP 128): 8 (in + out) each.
    assert "LoRA rank 8: 31,744 of 3,367,969 parameters train" in capsys.readouterr().out
    # `last` is a plain model folder (adapters merged): the CLI evaluates it. Measured: 19.0 -> 31.1 mAP.
    zero_shot = _eval("charades_ego", random_model, data, tmp_path / "zs.json", "--split", "train")
    tuned = _eval("charades_ego", out / "last", data, tmp_path / "ft.json", "--split", "train")
    assert tuned["metrics"]["mAP"] > zero_shot["metrics"]["mAP"] + 5

    base = AutoModel.from_pretrained(random_model)
    merged = AutoModel.from_pretrained(out / "last").eval()
    base_weights, merged_weights = base.state_dict(), merged.state_dict()
    adapted = {n for n in base_weights if n.endswith(".weight") and n.split(".")[-2] in LORA_TARGET_MODULES}
    assert len(adapted) == 2 * 7 + 2 * 6  # vision: q k v out gate up down; text: q k v out fc1 fc2
    for name, weight in base_weights.items():
        assert torch.equal(weight, merged_weights[name]) != (name in adapted), name
    # The adapter alone, loaded onto the base model, gives the merged model's outputs.
    adapter_model = PeftModel.from_pretrained(base, out / "last" / "adapter").eval()
    processor = AutoProcessor.from_pretrained(out / "last")
    inputs = processor(
        videos=[str(data / "videos" / "P01_01.mp4")], text=["move the red square left"], return_tensors="pt"
    )
    with torch.no_grad():
        expected, got = merged(**inputs), adapter_model(**inputs)
    torch.testing.assert_close(got.video_embeds, expected.video_embeds, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got.text_embeds, expected.text_embeds, atol=1e-5, rtol=1e-4)


def test_zero_shot_script_on_three_benchmarks_matches_the_cli(data, random_model, tmp_path):
    out = tmp_path / "zero_shot"
    videos = str(data / "videos")
    results = _example("evaluate_zeroshot").main(
        [
            *("--model", str(random_model), "--output_dir", str(out), "--num_workers", "0"),
            *("--num_frames", "4", "--egomcq_num_frames", "2"),
            *("--ek100_dir", str(data), "--ek100_videos", videos),
            *("--egomcq_dir", str(data), "--egomcq_videos", videos),
            *("--charades_dir", str(data), "--charades_videos", videos),
        ]
    )
    assert json.loads((out / "zero_shot.json").read_text()) == results
    ek100 = results["ek100_mir"]
    assert set(ek100) == {"mAP_v2t", "mAP_t2v", "mAP_avg", "nDCG_v2t", "nDCG_t2v", "nDCG_avg", "num_skipped"}
    assert ek100["num_skipped"] == 0 and results["charades_ego"]["num_skipped"] == 0
    assert all(0 <= value <= 100 for value in ek100.values())
    assert ek100["mAP_avg"] == pytest.approx((ek100["mAP_v2t"] + ek100["mAP_t2v"]) / 2)
    _check_accuracies(results["egomcq"], data)
    assert 0 < results["charades_ego"]["mAP"] <= 100

    egomcq = _eval("egomcq", random_model, data, tmp_path / "egomcq.json")  # the model's 2 frames
    assert egomcq["num_questions"] == len(_questions(data)) and egomcq["num_skipped"] == 0
    assert egomcq["metrics"] == pytest.approx(
        {k: v for k, v in results["egomcq"].items() if k != "num_skipped"}
    )
    charades = _eval("charades_ego", random_model, data, tmp_path / "charades.json", "--num_frames", "4")
    assert charades["num_videos"] == _ek100(data, "test")["video_id"].nunique()
    assert charades["metrics"] == pytest.approx(
        {k: v for k, v in results["charades_ego"].items() if k != "num_skipped"}
    )
    load_results(tmp_path / "charades.json")  # the model-card schema accepts the CLI output


def test_finetune_ek100_from_a_converted_avion_checkpoint(data, tmp_path):
    """The authors' starting point: an AVION checkpoint (tiny, random) converted by `eva02at convert`, fine-tuned
    with the AVION + SMS recipe by `examples/finetune_ek100.py`, then evaluated by `eva02at eval`."""
    from test_conversion_vit import AvionCLIP, save_avion_checkpoint

    torch.manual_seed(0)
    save_avion_checkpoint(AvionCLIP(num_frames=4, flash=True, context_length=77), tmp_path / "avion.pt")
    converted = tmp_path / "avion-converted"
    argv = ["convert", "--checkpoint", str(tmp_path / "avion.pt"), "--output_dir", str(converted)]
    assert main([*argv, "--num_frames", "2", "--num_heads", "2", "--text_num_heads", "2"]) == EXIT_OK
    out = tmp_path / "finetune"
    results = _example("finetune_ek100").main(
        [
            *("--data_dir", str(data), "--video_root", str(data / "videos"), "--output_dir", str(out)),
            *("--model", str(converted), *TRAIN_FLAGS, "--num_epochs", "1", "--warmup_epochs", "0"),
        ]
    )
    assert results["args"]["loss"] == "sms" and 0 <= results["final"]["mAP_avg"] <= 100
    model = AutoModel.from_pretrained(out / "last")
    assert model.config.uses_vit_backbone and model.config.vision_config.num_frames == 2
    metrics = _eval("ek100_mir", out / "last", data, tmp_path / "eval.json")["metrics"]
    assert metrics["mAP_avg"] == pytest.approx(results["final"]["mAP_avg"], abs=1e-6)
