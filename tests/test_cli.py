"""The `eva02at` command line: help, exit codes, extract / search / eval / convert / publish end to end."""

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from _helpers import extract_argv, extraction_workspace, save_model_dir
from PIL import Image
from safetensors.torch import save_file
from transformers import AutoModel

from eva02at_hf import EVA02ATConfig, EVA02ATForVideoTextRetrieval
from eva02at_hf.apps.cli import EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, build_parser, main
from eva02at_hf.apps.hub import load_results
from eva02at_hf.apps.search import faiss_available
from eva02at_hf.data import synthetic
from eva02at_hf.training.models import processor_for

SUBCOMMANDS = {
    "convert": "--checkpoint",
    "extract": "--shard_size",
    "search": "--query_file",
    "eval": "--video_root",
    "publish": "--repo_id",
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    texts = ["move the red square left", "grow the blue circle", "shrink the green triangle"]
    return extraction_workspace(tmp_path_factory.mktemp("cli"), texts, num_clips=8)


@pytest.fixture(scope="module")
def features(workspace: Path) -> Path:
    out = workspace / "features"
    assert (
        main(extract_argv(workspace, out, "--shard_size", "3")) == EXIT_PARTIAL
    )  # broken.mp4 cannot be decoded
    return out


@pytest.mark.parametrize(("command", "flag"), SUBCOMMANDS.items())
def test_help_of_each_subcommand(command: str, flag: str, capsys) -> None:
    assert main([command, "--help"]) == EXIT_OK
    out = capsys.readouterr().out
    assert f"usage: eva02at {command}" in out and flag in out and "exit codes" in out


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    return next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices


def _value(action: argparse.Action) -> list[str]:
    """A valid value for ``action`` that differs from its default (none for a switch)."""
    if action.nargs == 0:
        return []
    if action.choices:
        return [str(list(action.choices)[-1])]
    return ["3"] if action.type not in (None, str) else ["x"]


def _argv(command: str, parser: argparse.ArgumentParser, skip: argparse.Action) -> list[str]:
    """``command`` with its positionals and required flags filled in (but ``skip``)."""
    argv = [command]
    for action in parser._actions:
        if action is not skip and (not action.option_strings or action.required):
            argv += [*action.option_strings[:1], *_value(action)]
    return argv


def test_flags_are_spelled_with_underscores_and_hyphens_are_hidden_aliases() -> None:
    """Every multi-word flag of every subcommand parses the same under both spellings (also ``--flag=value``),
    and only the underscore spelling appears in --help."""
    parser, renamed = build_parser(), []
    for command, subparser in _subcommands().items():
        help_text = subparser.format_help()
        for action in subparser._actions:
            for flag in (f for f in action.option_strings if "_" in f):
                renamed.append(flag)
                assert "-" not in flag[2:], flag  # one style: no flag mixes the two
                hyphen, value, argv = (
                    "--" + flag[2:].replace("_", "-"),
                    _value(action),
                    _argv(command, subparser, action),
                )
                underscore = vars(parser.parse_args([*argv, flag, *value]))
                assert vars(parser.parse_args([*argv, hyphen, *value])) == underscore, flag
                if value:
                    assert vars(parser.parse_args([*argv, f"{hyphen}={value[0]}"])) == underscore, flag
                if action.const != action.default:  # the flag takes effect (``--processor`` is the default)
                    assert vars(parser.parse_args(argv)) != underscore, flag
                assert flag in help_text and f"{hyphen} " not in help_text and f"{hyphen}\n" not in help_text
    for flag in ("--query_file", "--query_video", "--top_k", "--no_processor", "--output_dir", "--dry_run"):
        assert flag in renamed
    # Only flag names are respelled, never values.
    search = ["search", "--features", "f", "--query", "x"]
    assert parser.parse_args([*search, "--output=--top-k.json"]).output == "--top-k.json"
    assert parser.parse_args([*search, "--query-file=my-queries.txt"]).query_file == "my-queries.txt"


def test_every_subcommand_help_states_each_default() -> None:
    """Each optional flag shows its default in --help, as the example scripts' --help does; e.g. ``eva02at extract
    --help`` says the batch size is 16."""
    checked = 0
    for command, subparser in _subcommands().items():
        options = subparser.format_help().split("\noptions:\n", 1)[1]
        entries = {
            block.split()[0].rstrip(","): " ".join(block.split()) for block in re.split(r"\n  (?=-)", options)
        }
        for action in subparser._actions:
            if not action.option_strings or action.required or action.default == argparse.SUPPRESS:
                continue
            assert "(default" in entries[action.option_strings[0]], (command, action.option_strings)
            checked += 1
    extract = " ".join(_subcommands()["extract"].format_help().split())
    assert "--batch_size BATCH_SIZE (default: 16)" in extract
    assert "(default: the model's)" in extract and "(default: the model's) (default" not in extract
    assert checked > 10


def test_usage_errors_exit_2(capsys) -> None:
    assert main([]) == EXIT_USAGE
    assert "required: COMMAND" in capsys.readouterr().err
    assert main(["extract", "--model", "m", "--output_dir", "o", "--no-such-flag"]) == EXIT_USAGE
    assert "unrecognized arguments: --no-such-flag" in capsys.readouterr().err
    assert main(["extract", "--texts", "t.txt"]) == EXIT_USAGE
    assert "required: --model, --output_dir" in capsys.readouterr().err
    assert main(["search", "--features", "f", "--top_k", "0"]) == EXIT_USAGE
    assert "must be >= 1" in capsys.readouterr().err


def test_missing_inputs_are_named(workspace: Path, tmp_path: Path, capsys) -> None:
    model = str(workspace / "model")
    assert (
        main(["extract", "--model", model, "--videos", "nowhere", "--output_dir", str(tmp_path)])
        == EXIT_USAGE
    )
    assert "--videos: not found: nowhere" in capsys.readouterr().err
    assert (
        main(["extract", "--model", "no-model", "--texts", str(workspace / "texts.txt"), "--output_dir", "x"])
        == 2
    )
    assert "--model: folder not found: no-model" in capsys.readouterr().err
    texts = str(workspace / "texts.txt")
    assert main(["extract", "--model", "eva02at-b", "--texts", texts, "--output_dir", "x"]) == EXIT_USAGE
    assert "'eva02at-b' is a preset name, not weights: `eva02at convert`" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert (
            main(["extract", "--model", model, "--texts", texts, "--output_dir", "x", "--device", "cuda"])
            == 2
        )
        assert "--device cuda: no CUDA device is available" in capsys.readouterr().err
    assert main(["convert", "--checkpoint", "none.safetensors", "--output_dir", str(tmp_path)]) == EXIT_USAGE
    assert "--checkpoint: file not found" in capsys.readouterr().err
    assert main(["search", "--features", str(tmp_path), "--query", "x"]) == EXIT_USAGE
    assert "not an `eva02at extract` output folder" in capsys.readouterr().err


def test_extract_lists_bad_files_and_resumes_without_recomputing(
    workspace: Path, features: Path, capsys
) -> None:
    failed = json.loads((features / "failed.json").read_text())
    assert [f["id"] for f in failed] == ["broken.mp4"]
    shards = sorted(features.glob("*.safetensors"))
    mtimes = [p.stat().st_mtime_ns for p in shards]
    argv = extract_argv(workspace, features, "--shard_size", "3")
    capsys.readouterr()
    assert main(argv) == EXIT_PARTIAL
    assert "0 shards computed" in capsys.readouterr().out
    assert [p.stat().st_mtime_ns for p in shards] == mtimes
    assert main([*argv[:-3], "--shard_size", "2", "--no_progress"]) == EXIT_USAGE
    assert "differing: shard_size" in capsys.readouterr().err


def test_text_to_video_search_ranks_by_cosine_and_renders_sheet(
    workspace: Path, features: Path, tmp_path: Path
) -> None:
    from eva02at_hf.apps.features import load_features

    query = "grow the blue circle"
    argv = ["search", "--features", str(features), "--query", query, "--top_k", "3"]
    assert (
        main([*argv, "--output", str(tmp_path / "hits.json"), "--show", str(tmp_path / "top.png")]) == EXIT_OK
    )
    hits = json.loads((tmp_path / "hits.json").read_text())[0]["hits"]

    model = EVA02ATForVideoTextRetrieval.from_pretrained(workspace / "model").eval()
    tokens = processor_for(model.config)(text=[query], return_tensors="pt")
    with torch.no_grad():
        text = model.get_text_features(tokens["input_ids"], tokens["attention_mask"]).pooler_output[0]
    text = torch.nn.functional.normalize(text, dim=-1).numpy()
    videos = load_features(features, "video")
    similarity = videos.embeddings.numpy() @ text
    best = np.argsort(-similarity, kind="stable")[:3]
    assert [h["id"] for h in hits] == [videos.ids[i] for i in best]
    np.testing.assert_allclose([h["score"] for h in hits], similarity[best], rtol=1e-5)
    assert Image.open(tmp_path / "top.png").height > 3 * 96

    if faiss_available():
        assert main([*argv, "--index", "faiss", "--output", str(tmp_path / "faiss.json")]) == EXIT_OK
        faiss_hits = json.loads((tmp_path / "faiss.json").read_text())[0]["hits"]
        assert [h["id"] for h in faiss_hits] == [h["id"] for h in hits]


def test_search_show_from_another_folder_finds_the_videos_of_a_relative_csv(
    workspace: Path, tmp_path: Path, monkeypatch
) -> None:
    """`extract --videos clips.csv` run in one folder, `search --show` in another (holding decoy files)."""
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    colours = {"red": (255, 0, 0), "blue": (0, 0, 255)}
    for folder in (work, elsewhere):
        (folder / "clips").mkdir(parents=True)
    for name, colour in colours.items():
        frames = np.full((8, 32, 32, 3), colour, dtype=np.uint8)
        synthetic.write_video(str(work / "clips" / f"{name}.mp4"), frames, fps=8)
        # what a path relative to the extraction's working directory would hit from here
        (elsewhere / "clips" / f"{name}.mp4").write_bytes(b"not a video")
    (work / "clips.csv").write_text("path,id\nclips/red.mp4,red\nclips/blue.mp4,blue\n")
    monkeypatch.chdir(work)
    model = str(workspace / "model")
    argv = ["extract", "--model", model, "--videos", "clips.csv", "--output_dir", "features", "--no_progress"]
    assert main(argv) == EXIT_OK

    monkeypatch.chdir(elsewhere)
    argv = ["search", "--features", str(work / "features"), "--query", "a red square", "--top_k", "2"]
    assert main([*argv, "--output", "hits.json", "--show", "top.png"]) == EXIT_OK
    hits = json.loads((elsewhere / "hits.json").read_text())[0]["hits"]
    assert sorted((h["id"], h["path"]) for h in hits) == [
        ("blue", str(work / "clips" / "blue.mp4")),
        ("red", str(work / "clips" / "red.mp4")),
    ]
    pixels = np.asarray(Image.open(elsewhere / "top.png").convert("RGB"))
    for rank, hit in enumerate(hits):
        # default layout: 4 px padding, 18 px label bands, 96 px frames; the middle of the row's first frame
        y = 4 + 18 + 4 + rank * (18 + 96 + 4) + 18 + 48
        assert tuple(pixels[y, 4 + 48] // 64) == tuple(c // 64 for c in colours[hit["id"]])  # not grey


def test_search_with_another_model_than_extract_is_refused(features: Path, tmp_path: Path, capsys) -> None:
    config = EVA02ATConfig.from_preset("eva02at-tiny")
    config.projection_dim = 16  # the extracted features are 32-dimensional
    save_model_dir(tmp_path / "other", EVA02ATForVideoTextRetrieval(config))
    argv = ["search", "--features", str(features), "--query", "x", "--model", str(tmp_path / "other")]
    assert main(argv) == EXIT_USAGE
    assert "embeds queries in 16 dimensions but" in capsys.readouterr().err


def test_video_to_text_search_by_extracted_id(features: Path, tmp_path: Path) -> None:
    from eva02at_hf.apps.features import load_features

    videos, texts = load_features(features, "video"), load_features(features, "text")
    out = tmp_path / "v2t.json"
    argv = [
        "search",
        "--features",
        str(features),
        "--query-video",
        videos.ids[0],
        "--top_k",
        "2",
        "--output",
        str(out),
    ]
    assert main(argv) == EXIT_OK
    hits = json.loads(out.read_text())[0]["hits"]
    similarity = texts.embeddings.numpy() @ videos.embeddings[0].numpy()
    assert [h["text"] for h in hits] == [
        texts.table["text"][i] for i in np.argsort(-similarity, kind="stable")[:2]
    ]
    assert (
        main(["search", "--features", str(features), "--query-video", "nope", "--query", "x"]) == EXIT_USAGE
    )


def test_eval_ek100_on_synthetic_set_writes_a_card_ready_json(
    workspace: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "results.json"
    argv = [
        "eval", "ek100_mir",
        "--model", str(workspace / "model"),
        "--data_dir", str(workspace / "data"),
        "--video_root", str(workspace / "data" / "videos"),
        "--cache_dir", str(tmp_path / "cache"),
        "--num_frames", "4",
        "--output", str(out),
    ]  # fmt: skip
    assert main(argv) == EXIT_OK
    assert "mAP_avg" in capsys.readouterr().out
    results = load_results(out)  # the card schema accepts it
    metrics = results["results"][0]["metrics"]
    assert set(metrics) == {"mAP_v2t", "mAP_t2v", "mAP_avg", "nDCG_v2t", "nDCG_t2v", "nDCG_avg"}
    assert all(0.0 <= value <= 100.0 for value in metrics.values())
    assert metrics["mAP_avg"] == pytest.approx((metrics["mAP_v2t"] + metrics["mAP_t2v"]) / 2)
    assert main([*argv[:4], str(tmp_path / "no-data"), *argv[5:]]) == EXIT_USAGE


def _tiny_eva02_clip_checkpoint(path: Path) -> torch.nn.Module:
    """A 2-layer timm EVA02 vision tower + 1-layer open_clip text tower, in one state dict."""
    from open_clip.transformer import TextTransformer
    from timm.models.eva import Eva

    torch.manual_seed(0)
    vision = Eva(
        img_size=32,
        patch_size=8,
        embed_dim=64,
        depth=2,
        num_heads=1,
        mlp_ratio=4 * 2 / 3,
        swiglu_mlp=True,
        scale_mlp=True,
        scale_attn_inner=True,
        use_rot_pos_emb=True,
        ref_feat_shape=(4, 4),
        num_classes=16,
        qkv_fused=False,
        global_pool="token",
    ).eval()
    text = TextTransformer(context_length=77, vocab_size=49408, width=64, heads=1, layers=1, output_dim=16)
    state = {**vision.state_dict(), **text.state_dict(), "logit_scale": torch.tensor(4.6)}
    save_file({k: v.contiguous() for k, v in state.items() if k != "attn_mask"}, str(path))
    return vision


def test_convert_writes_an_automodel_folder_with_processor(tmp_path: Path) -> None:
    vision = _tiny_eva02_clip_checkpoint(tmp_path / "ckpt.safetensors")
    out = tmp_path / "converted"
    convert = ["convert", "--checkpoint", str(tmp_path / "ckpt.safetensors")]
    convert += ["--num_heads", "1", "--text_num_heads", "1"]
    assert main([*convert, "--output_dir", str(out), "--num_frames", "4"]) == 0
    model = AutoModel.from_pretrained(out).eval()
    assert model.config.vision_config.num_frames == 4 and model.config.projection_dim == 16
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = vision(images)
        ours = model.get_video_features(images[:, None]).pooler_output
    torch.testing.assert_close(ours, expected, atol=5e-5, rtol=1e-4)
    processor = json.loads((out / "processor_config.json").read_text())["video_processor"]
    assert processor["num_frames"] == 4 and processor["crop_size"] == {"height": 32, "width": 32}
    assert main([*convert, "--output_dir", str(tmp_path / "np"), "--no-processor"]) == 0
    assert not (tmp_path / "np" / "processor_config.json").exists()


def test_publish_dry_run_lists_the_upload(workspace: Path, tmp_path: Path, capsys) -> None:
    staging = tmp_path / "staging"
    cards = Path(__file__).resolve().parents[1] / "model_cards"
    argv = ["publish", "--model_dir", str(workspace / "model"), "--repo_id", "me/tiny", "--dry_run"]
    assert main([*argv, "--results", str(cards / "eva02at-b.json"), "--staging_dir", str(staging)]) == EXIT_OK
    listed = capsys.readouterr().out
    for name in ("README.md", "config.json", "model.safetensors", "processing_eva02at.py", "tokenizer.json"):
        assert f"  {name}\n" in listed
        assert (staging / name).is_file()
    bad = tmp_path / "bad.json"
    bad.write_text('{"results": [{"benchmark": "imagenet", "metrics": {"top1": 1}}]}')
    assert main([*argv, "--results", str(bad)]) == EXIT_USAGE
    assert "benchmark 'imagenet'" in capsys.readouterr().err


def test_runnable_as_module() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "eva02at_hf", "search", "--features", "/nonexistent", "--query", "x"],
        capture_output=True,
        text=True,
    )
    assert completed.returncode == EXIT_USAGE
    assert "eva02at search: error: --features: folder not found: /nonexistent" in completed.stderr


def _eval_ek100(workspace: Path, tmp_path: Path, name: str) -> tuple[int, dict]:
    output = tmp_path / f"{name}.json"
    code = main(
        [
            "eval", "ek100_mir",
            "--model", str(workspace / "model"),
            "--data_dir", str(workspace / "data"),
            "--video_root", str(workspace / "data" / "videos"),
            "--cache_dir", str(tmp_path / f"cache-{name}"),
            "--num_frames", "2",
            "--output", str(output),
        ]
    )  # fmt: skip
    return code, json.loads(output.read_text())["results"][0]


def test_undecodable_test_clips_are_counted_and_exit_partial(workspace: Path, tmp_path: Path) -> None:
    code, intact = _eval_ek100(workspace, tmp_path, "intact")
    assert code == EXIT_OK and intact["num_skipped"] == 0 and intact["num_missing_clips"] == 0
    assert intact["relevancy"] == "rebuilt"

    test_clips = pd.read_csv(workspace / "data" / "EPIC_100_retrieval_test.csv")
    video_id = test_clips["video_id"].iloc[0]
    expected = int((test_clips["video_id"] == video_id).sum())
    video = workspace / "data" / "videos" / f"{video_id}.mp4"
    original = video.read_bytes()
    try:
        video.write_bytes(original[: len(original) // 8])  # truncated: exists, cannot be decoded
        code, broken = _eval_ek100(workspace, tmp_path, "broken")
    finally:
        video.write_bytes(original)
    assert code == EXIT_PARTIAL
    assert broken["num_skipped"] == expected and broken["num_clips"] == len(test_clips)
    # The undecodable clips stay in the matrix (zero embeddings), so every metric is still defined.
    assert set(broken["metrics"]) == set(intact["metrics"])
    assert all(0.0 <= value <= 100.0 for value in broken["metrics"].values())
