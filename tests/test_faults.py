"""The fault campaign as a table: bad inputs, faults and interruptions a hostile user would try.

Each `Fault` row sets up a situation in a temporary folder, runs one action (a library call or ``eva02at ...``
in-process), and states what must happen: the exception type or the exit code, the file / argument / step the
message must name, and the files the user had that must come out byte-identical. Counts per category are
reported in ``docs/reliability.md``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from _helpers import tiny_ek100_loop
from safetensors.torch import load_file, save_file

from eva02at_hf.apps.cli import EXIT_INTERRUPTED, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, main
from eva02at_hf.apps.features import FeatureExtractor
from eva02at_hf.data import BadRowError, synthetic
from eva02at_hf.training import (
    EK100Split,
    TrainingLoop,
    load_model_and_processor,
)
from eva02at_hf.training.loop import checkpoint_steps, latest_checkpoint
from eva02at_hf.utils.reliability import NonFiniteError, atomic_export
from eva02at_hf.video_io import VideoDecodeError, read_clip

# ------------------------------------------------------------------------------------------------- the table

CATEGORIES = ("lost work", "silently wrong", "unclear error", "already held")


@dataclass
class Fault:
    """One row of the campaign.

    ``action(ctx)`` runs the fault and returns an exit code (CLI rows) or anything (library rows). ``raises`` is the
    exception type a library row must raise (None: it must succeed); ``exit_code`` the code a CLI row must return.
    ``names`` are format strings (over ``ctx``) that must appear in the error message (or stderr); ``kept`` are
    paths (format strings) whose bytes must be unchanged by the action; ``check(ctx)`` asserts anything else.
    """

    id: str
    category: str  # one of CATEGORIES
    setup: Callable[[Path, dict], dict]
    action: Callable[[dict], Any]
    raises: type[BaseException] | None = None
    exit_code: int | None = None
    names: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    check: Callable[[dict], None] | None = None
    marks: tuple = field(default_factory=tuple)


def _digest(path: Path) -> dict[str, str]:
    """``relative path -> blake2b`` of a file or of every file below a folder."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p.relative_to(path.parent)): hashlib.blake2b(p.read_bytes()).hexdigest() for p in files}


# --------------------------------------------------------------------------------------------- shared fixtures


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> dict:
    """A synthetic EK-100 set (the other shared pieces are built on first use)."""
    root = tmp_path_factory.mktemp("faults")
    synthetic.generate(root / "data", num_clips=16, seed=3, test_fraction=0.25)
    cache = root / "cache"
    train = EK100Split(root / "data", root / "data" / "videos", "train", cache, datasets_cache_dir=str(cache))
    return {"root": root, "train": train}


def _base_run(shared: dict) -> Path:
    """A finished 4-update run (checkpoints after updates 2 and 4, and ``last/``), trained once."""
    if "run" not in shared:
        run = shared["root"] / "run"
        _trainer(shared["train"], run, max_steps=4, checkpointing_steps=2).train()
        assert checkpoint_steps(str(run)) == [2, 4]
        shared["run"] = run
    return shared["run"]


def _trainer(
    train: EK100Split, output_dir: Path, objective_fault: Callable | None = None, **overrides
) -> TrainingLoop:
    settings = {
        "num_epochs": 4,
        "batch_size": 4,
        "learning_rate": 1e-3,
        "warmup_epochs": 0.0,
        "save_total_limit": 2,
    }
    trainer = tiny_ek100_loop(train, output_dir, **{**settings, **overrides})
    if objective_fault is not None:
        trainer.objective = objective_fault(trainer.objective)
    return trainer


def _nan_from_update(first: int, count: int = 10**9) -> Callable:
    """Wrap an objective so that updates ``first`` .. ``first + count - 1`` (1-based) get a NaN loss."""

    def wrap(objective: Callable) -> Callable:
        calls = []

        def faulty(videos, texts, batch):
            calls.append(1)
            loss = objective(videos, texts, batch)
            return loss * float("nan") if first <= len(calls) < first + count else loss

        return faulty

    return wrap


def _copy_run(tmp: Path, shared: dict) -> dict:
    run = tmp / "run"
    shutil.copytree(_base_run(shared), run)
    return {"run": run, "step_2": run / "checkpoints" / "step_2", "step_4": run / "checkpoints" / "step_4"}


def _finite_weights(folder: Path, name: str = "model.safetensors") -> bool:
    return all(torch.isfinite(t).all() for t in load_file(folder / name).values())


# ----------------------------------------------------------------------------------------------- training rows


def _train_nan_at_update_3(ctx: dict) -> None:
    ctx["trainer"] = _trainer(
        ctx["train"], ctx["out"], _nan_from_update(3), max_steps=6, checkpointing_steps=1, save_total_limit=1
    )
    ctx["trainer"].train()


def _after_nan_stop(ctx: dict) -> None:
    # Stopped at once: the finite checkpoint of update 2 (the first epoch's end) is kept, not rotated away, and
    # nothing later was written.
    assert checkpoint_steps(str(ctx["out"])) == [2]
    assert _finite_weights(ctx["out"] / "checkpoints" / "step_2") and _finite_weights(ctx["out"] / "last")
    assert not (ctx["out"] / "results.json").exists()


def _train_skipping(ctx: dict) -> None:
    ctx["trainer"] = _trainer(
        ctx["train"], ctx["out"], _nan_from_update(2, count=2), max_steps=4, max_nonfinite_steps=2
    )
    ctx["results"] = ctx["trainer"].train()


def _after_skipping(ctx: dict) -> None:
    assert ctx["trainer"].state.global_step == 4 and ctx["trainer"].state.num_nonfinite_steps == 2
    assert _finite_weights(ctx["out"] / "last")
    saved = json.loads(Path(latest_checkpoint(str(ctx["out"])), "trainer_state.json").read_text())
    assert saved["num_nonfinite_steps"] == 2 and saved["global_step"] == 4


def _train_huge_lr(ctx: dict) -> None:
    _trainer(ctx["train"], ctx["out"], learning_rate=1e6, max_steps=8, checkpointing_steps=1).train()


def _after_huge_lr(ctx: dict) -> None:
    for step in checkpoint_steps(str(ctx["out"])):
        assert _finite_weights(ctx["out"] / "checkpoints" / f"step_{step}")
    if (ctx["out"] / "last").exists():
        assert _finite_weights(ctx["out"] / "last")


def _setup_training(tmp: Path, shared: dict) -> dict:
    return {"train": shared["train"], "out": tmp / "out"}


def _resume(ctx: dict, checkpoint: str = "latest") -> None:
    """``load_state`` of the run's checkpoint, with one trainer shared by the rows (a refused load leaves it usable)."""
    if "resumer" not in ctx["shared"]:
        ctx["shared"]["resumer"] = _trainer(ctx["train"], ctx["run"], max_steps=8)
    trainer = ctx["shared"]["resumer"]
    trainer.config.output_dir = str(ctx["run"])
    trainer.load_state(checkpoint if checkpoint == "latest" else str(ctx[checkpoint]))


def _corrupt(name: str, how: str) -> Callable[[Path, dict], dict]:
    """Setup: a copy of the shared run whose newest checkpoint's ``name`` is truncated / removed / emptied."""

    def setup(tmp: Path, shared: dict) -> dict:
        ctx = {**_copy_run(tmp, shared), "train": shared["train"], "shared": shared}
        file = ctx["step_4"] / name
        if how == "truncate":
            file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
        elif how == "remove":
            file.unlink()
        elif how == "empty":
            file.write_bytes(b"")
        elif how == "edit_step":
            state = json.loads(file.read_text())
            file.write_text(json.dumps({**state, "global_step": 3}))
        ctx["file"] = file
        return ctx

    return setup


def _latest_skips_incomplete(ctx: dict) -> None:
    ctx["found"] = latest_checkpoint(str(ctx["run"]))
    assert ctx["found"] == str(ctx["step_2"])
    _resume(ctx)


def _disk_full_during(target: str) -> Callable[[dict], None]:
    """Action: resume the shared run for one more checkpoint / export, with the disk 'full' halfway through."""

    def action(ctx: dict) -> None:
        trainer = _trainer(ctx["train"], ctx["run"], max_steps=8)
        trainer.load_state(str(ctx["step_4"]))
        if target == "checkpoint":
            original = trainer.accelerator.save_state

            def save_state(path: str) -> None:
                original(path)
                Path(path, "optimizer.bin").write_bytes(b"partial")
                raise OSError(28, "No space left on device")

            trainer.accelerator.save_state = save_state
            trainer.state.global_step = 6
            trainer.save_state()
        else:
            processor_save = trainer.processor.save_pretrained

            def save_pretrained(folder, **kwargs):
                processor_save(folder, **kwargs)
                tokenizer = Path(folder) / "tokenizer.json"
                tokenizer.write_bytes(tokenizer.read_bytes()[:100])
                raise OSError(28, "No space left on device")

            trainer.processor.save_pretrained = save_pretrained
            trainer.save_pretrained("last")

    return action


def _after_disk_full(ctx: dict) -> None:
    assert checkpoint_steps(str(ctx["run"])) == [2, 4]
    assert latest_checkpoint(str(ctx["run"])) == str(ctx["step_4"])
    assert json.loads((ctx["run"] / "last" / "tokenizer.json").read_text())  # still the complete file


TRAINING: list[Fault] = [
    Fault(
        "nan-loss-stops-at-once-keeping-the-finite-checkpoint",
        "lost work",
        _setup_training,
        _train_nan_at_update_3,
        raises=NonFiniteError,
        names=("step 3", "max_nonfinite_steps", "step_2"),
        check=_after_nan_stop,
    ),
    Fault(
        "nan-loss-skipped-up-to-max-nonfinite-steps",
        "lost work",
        _setup_training,
        _train_skipping,
        check=_after_skipping,
    ),
    Fault(
        "learning-rate-1e6-never-saves-nan-weights",
        "lost work",
        _setup_training,
        _train_huge_lr,
        raises=NonFiniteError,
        names=("training stopped at step",),
        check=_after_huge_lr,
    ),
    Fault(
        "disk-full-while-saving-a-checkpoint",
        "lost work",
        lambda tmp, shared: {**_copy_run(tmp, shared), "train": shared["train"]},
        _disk_full_during("checkpoint"),
        raises=OSError,
        names=("No space left",),
        kept=("{run}/checkpoints", "{run}/last"),
        check=_after_disk_full,
    ),
    Fault(
        "disk-full-while-exporting-last",
        "lost work",
        lambda tmp, shared: {**_copy_run(tmp, shared), "train": shared["train"]},
        _disk_full_during("last"),
        raises=OSError,
        names=("No space left",),
        kept=("{run}/checkpoints", "{run}/last"),
        check=_after_disk_full,
    ),
    Fault(
        "latest-skips-a-half-written-checkpoint",
        "lost work",
        _corrupt("optimizer.bin", "remove"),
        _latest_skips_incomplete,
        kept=("{run}/checkpoints",),
    ),
    Fault(
        "resume-truncated-model",
        "unclear error",
        _corrupt("model.safetensors", "truncate"),
        lambda ctx: _resume(ctx, "step_4"),
        raises=ValueError,
        names=("{step_4}/model.safetensors",),
        kept=("{run}",),
    ),
    Fault(
        "resume-missing-model-names-model-safetensors",
        "unclear error",
        _corrupt("model.safetensors", "remove"),
        lambda ctx: _resume(ctx, "step_4"),
        raises=FileNotFoundError,
        names=("{step_4}/model.safetensors",),
        kept=("{run}",),
    ),
    Fault(
        "resume-truncated-optimizer",
        "unclear error",
        _corrupt("optimizer.bin", "truncate"),
        lambda ctx: _resume(ctx, "step_4"),
        raises=ValueError,
        names=("{step_4}/optimizer.bin",),
        kept=("{run}",),
    ),
    Fault(
        "resume-missing-scheduler",
        "unclear error",
        _corrupt("scheduler.bin", "remove"),
        lambda ctx: _resume(ctx, "step_4"),
        raises=FileNotFoundError,
        names=("{step_4}/scheduler.bin",),
        kept=("{run}",),
    ),
    Fault(
        "resume-empty-trainer-state",
        "unclear error",
        _corrupt("trainer_state.json", "empty"),
        lambda ctx: _resume(ctx, "step_4"),
        raises=ValueError,
        names=("{step_4}/trainer_state.json",),
        kept=("{run}",),
    ),
    Fault(
        "resume-edited-trainer-state-step",
        "silently wrong",
        _corrupt("trainer_state.json", "edit_step"),
        lambda ctx: _resume(ctx, "step_4"),
        raises=ValueError,
        names=("{step_4}", "step 3", "scheduler"),
        kept=("{run}",),
    ),
]


# -------------------------------------------------------------------------------- extraction and search rows


def _workspace(shared: dict) -> dict:
    """A saved tiny model (+ processor), its videos and texts, and a finished extraction (built once)."""
    if "features" not in shared:
        root = shared["root"]
        torch.manual_seed(0)
        model, processor = load_model_and_processor(None, num_frames=2)
        model.save_pretrained(root / "model")
        processor.save_pretrained(root / "model")
        (root / "texts.txt").write_text("move the red square\ngrow the blue circle\nshrink the triangle\n")
        shared.update(model=root / "model", videos=root / "data" / "videos", texts=root / "texts.txt")
        assert _cli(shared, "extract", "--output_dir", str(root / "features")) == EXIT_OK
        shared["features"] = root / "features"
    return shared


def _cli(ctx: dict, command: str, *argv: str) -> int:
    """``eva02at <command>`` in-process, with the workspace's model / videos / texts for extract."""
    if command == "extract":
        inputs = ("--model", str(ctx["model"]), "--videos", str(ctx["videos"]), "--texts", str(ctx["texts"]))
        argv = (*inputs, "--shard_size", "2", "--num_frames", "2", "--no_progress", *argv)
    return main([command, *argv])


def _features_copy(tmp: Path, shared: dict) -> dict:
    ctx = dict(_workspace(shared))
    ctx["features"] = tmp / "features"
    shutil.copytree(shared["features"], ctx["features"])
    ctx["shard"] = ctx["features"] / "video-00000.safetensors"
    return ctx


def _with_features(edit: Callable[[dict], None]) -> Callable[[Path, dict], dict]:
    def setup(tmp: Path, shared: dict) -> dict:
        ctx = _features_copy(tmp, shared)
        edit(ctx)
        return ctx

    return setup


def _nan_in_shard(ctx: dict) -> None:
    tensors = load_file(ctx["shard"])
    tensors["embeddings"][1, 0] = float("nan")
    save_file(tensors, ctx["shard"])


def _search(*extra: str) -> Callable[[dict], int]:
    return lambda ctx: _cli(ctx, "search", "--features", str(ctx["features"]), "--query", "red", *extra)


def _interrupted_overwrite(ctx: dict) -> int:
    """``extract --overwrite`` with other texts, interrupted (Ctrl-C) after its first shard; then ``search``."""
    (ctx["features"].parent / "other.txt").write_text("a\nb\nc\nd\n")
    real = FeatureExtractor.embed_texts
    calls = []

    def interrupted(self, texts):
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real(self, texts)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FeatureExtractor, "embed_texts", interrupted)
        code = _cli(
            {**ctx, "texts": ctx["features"].parent / "other.txt"},
            "extract",
            "--output_dir",
            str(ctx["features"]),
            "--overwrite",
        )
    assert code == EXIT_INTERRUPTED
    assert (
        not (ctx["features"] / "videos.parquet").exists() and not (ctx["features"] / "failed.json").exists()
    )
    return _search()(ctx)


def _stale_index(ctx: dict) -> None:
    """The texts index of another extraction run dropped into the folder."""
    other = ctx["features"].parent / "other"
    (ctx["features"].parent / "two.txt").write_text("one\ntwo\n")
    FeatureExtractor(*load_model_and_processor(str(ctx["model"])), num_frames=2, progress=False).run(
        other, texts=["one", "two"]
    )
    shutil.copy(other / "texts.parquet", ctx["features"] / "texts.parquet")


def _nan_embedding_model(ctx: dict) -> None:
    model, processor = load_model_and_processor(str(ctx["model"]))
    real = model.get_text_features

    def broken(*args, **kwargs):
        out = real(*args, **kwargs)
        embeds = out if isinstance(out, torch.Tensor) else out.pooler_output
        embeds[0, 0] = float("nan")
        return out

    model.get_text_features = broken
    ctx["out"] = ctx["features"].parent / "nan-features"
    FeatureExtractor(model, processor, num_frames=2, progress=False).run(ctx["out"], texts=["a", "b"])


def _other_weights(ctx: dict) -> int:
    torch.manual_seed(1)
    model, processor = load_model_and_processor(None, num_frames=2)  # same dimensions, other weights
    model.save_pretrained(ctx["features"].parent / "other-model")
    processor.save_pretrained(ctx["features"].parent / "other-model")
    ctx["other"] = ctx["features"].parent / "other-model"
    return _search("--model", str(ctx["other"]))(ctx)


def _broken_model(edit: Callable[[dict[str, torch.Tensor]], None]) -> Callable[[Path, dict], dict]:
    """Setup: a copy of the workspace model whose weights ``edit`` changed in place."""

    def setup(tmp: Path, shared: dict) -> dict:
        ctx = dict(_workspace(shared))
        ctx["model"] = tmp / "model"
        shutil.copytree(shared["model"], ctx["model"])
        weights = load_file(ctx["model"] / "model.safetensors")
        edit(weights)
        save_file(weights, ctx["model"] / "model.safetensors", metadata={"format": "pt"})
        ctx["out"] = tmp / "features"
        return ctx

    return setup


NAMED_WEIGHT = "text_model.final_layer_norm.weight"


def _set_nan(weights: dict) -> None:
    weights[NAMED_WEIGHT][3] = float("nan")


def _as_int(weights: dict) -> None:
    weights[NAMED_WEIGHT] = weights[NAMED_WEIGHT].long()


def _drop(weights: dict) -> None:
    del weights[NAMED_WEIGHT]


def _extract_into_out(ctx: dict) -> int:
    return _cli(ctx, "extract", "--output_dir", str(ctx["out"]))


def _no_output(ctx: dict) -> None:
    assert not ctx["out"].exists()


def _video(shared: dict) -> Path:
    return sorted(_workspace(shared)["videos"].glob("*.mp4"))[0]


def _read_window(start: Any, end: Any) -> Callable[[dict], Any]:
    return lambda ctx: read_clip(ctx["video"], start, end, 2)


def _video_ctx(tmp: Path, shared: dict) -> dict:
    return {"video": _video(shared)}


def _bad_video(content: bytes) -> Callable[[Path, dict], dict]:
    def setup(tmp: Path, shared: dict) -> dict:
        (tmp / "clip.mp4").write_bytes(content)
        return {"video": tmp / "clip.mp4"}

    return setup


def _truncated_video(tmp: Path, shared: dict) -> dict:
    data = _video(shared).read_bytes()
    (tmp / "clip.mp4").write_bytes(data[: len(data) // 2])
    return {"video": tmp / "clip.mp4"}


def _processor_skip(ctx: dict) -> None:
    """The processor with ``on_error="skip"``: bad windows are counted skips, the good clip is kept."""
    _, processor = load_model_and_processor(None, num_frames=2)
    video = str(ctx["video"])
    out = processor.video_processor(
        [video] * 5, start_time=[0.0, 10.0, float("nan"), 0.0, 0.0], end_time=[0.5, 20.0, 1.0, float("inf"), -1.0],
        on_error="skip", num_frames=2,
    )  # fmt: skip
    assert len(out["pixel_values"]) == 1 and list(out["failed_indices"]) == [1, 2, 3, 4]


def _overhang(ctx: dict) -> None:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("eva02at_hf.video_io")
    logger.addHandler(handler)
    try:
        frames = read_clip(ctx["video"], 0.0, 3600.0, 4)
    finally:
        logger.removeHandler(handler)
    assert frames.shape[0] == 4
    [record] = records
    assert "runs past the video's end" in record.getMessage() and str(ctx["video"]) in record.getMessage()


def _csv_with_nan_window(ctx: dict) -> int:
    csv = ctx["features"].parent / "clips.csv"
    csv.write_text(f"path,start,end,id\n{ctx['video']},0,0.5,good\n{ctx['video']},nan,1,bad\n")
    ctx["out"] = ctx["features"].parent / "csv-features"
    return main(["extract", "--model", str(ctx["model"]), "--videos", str(csv), "--output_dir",
                 str(ctx["out"]), "--num_frames", "2", "--no_progress"])  # fmt: skip


def _failed_listed(ctx: dict) -> None:
    failed = json.loads((ctx["out"] / "failed.json").read_text())
    assert [f["id"] for f in failed] == ["bad"] and "not finite" in failed[0]["error"]


def _rerun_reuses(ctx: dict) -> int:
    return _cli(ctx, "extract", "--output_dir", str(ctx["features"]))


EXTRACTION: list[Fault] = [
    Fault(
        "extract-overwrite-interrupted-then-search",
        "silently wrong",
        _features_copy,
        _interrupted_overwrite,
        exit_code=EXIT_USAGE,
        names=("{features}/videos.parquet", "did not finish"),
    ),
    Fault(
        "search-index-of-another-run",
        "silently wrong",
        _with_features(_stale_index),
        lambda ctx: _cli(
            ctx, "search", "--features", str(ctx["features"]), "--query-video", str(ctx["videos"])
        ),
        exit_code=EXIT_USAGE,
        names=("{features}/texts.parquet", "another extraction run"),
        kept=("{features}",),
    ),
    Fault(
        "nan-embeddings-refused-when-written",
        "silently wrong",
        _features_copy,
        _nan_embedding_model,
        raises=NonFiniteError,
        names=("{out}/text-00000.safetensors", "rows [0]"),
        check=lambda ctx: (
            not list(ctx["out"].glob("*.safetensors")) or pytest.fail("a NaN shard was written")
        ),
    ),
    Fault(
        "nan-embeddings-refused-when-loaded",
        "silently wrong",
        _with_features(_nan_in_shard),
        _search(),
        exit_code=EXIT_USAGE,
        names=("{shard}", "NaN"),
        kept=("{features}",),
    ),
    Fault(
        "search-truncated-shard",
        "unclear error",
        _with_features(lambda ctx: ctx["shard"].write_bytes(ctx["shard"].read_bytes()[:200])),
        _search(),
        exit_code=EXIT_USAGE,
        names=("{shard}", "truncated or corrupt"),
        kept=("{features}",),
    ),
    Fault(
        "search-corrupt-manifest",
        "unclear error",
        _with_features(lambda ctx: (ctx["features"] / "manifest.json").write_text('{"version": 1, "fin')),
        _search(),
        exit_code=EXIT_USAGE,
        names=("{features}/manifest.json", "corrupt"),
        kept=("{features}",),
    ),
    Fault(
        "extract-over-a-corrupt-manifest",
        "unclear error",
        _with_features(lambda ctx: (ctx["features"] / "manifest.json").write_text("\x00\x01")),
        lambda ctx: _cli(ctx, "extract", "--output_dir", str(ctx["features"])),
        exit_code=EXIT_USAGE,
        names=("{features}/manifest.json", "--overwrite"),
        kept=("{features}",),
    ),
    Fault(
        "search-with-other-weights-of-the-same-dimension",
        "silently wrong",
        _features_copy,
        _other_weights,
        exit_code=EXIT_USAGE,
        names=("--model", "{other}", "not the model"),
        kept=("{features}",),
    ),
    Fault(
        "search-empty-query",
        "silently wrong",
        _features_copy,
        lambda ctx: _cli(ctx, "search", "--features", str(ctx["features"]), "--query", "  "),
        exit_code=EXIT_USAGE,
        names=("--query", "empty"),
        kept=("{features}",),
    ),
    Fault(
        "load-model-with-nan-weights",
        "silently wrong",
        _broken_model(_set_nan),
        _extract_into_out,
        exit_code=EXIT_USAGE,
        names=("--model", "{model}", NAMED_WEIGHT, "NaN"),
        kept=("{model}",),
        check=_no_output,
    ),
    Fault(
        "load-model-with-integer-weights",
        "silently wrong",
        _broken_model(_as_int),
        _extract_into_out,
        exit_code=EXIT_USAGE,
        names=("{model}", NAMED_WEIGHT, "I64"),
        kept=("{model}",),
        check=_no_output,
    ),
    Fault(
        "load-model-with-missing-tensors",
        "silently wrong",
        _broken_model(_drop),
        _extract_into_out,
        exit_code=EXIT_USAGE,
        names=("{model}", "missing keys", NAMED_WEIGHT),
        kept=("{model}",),
        check=_no_output,
    ),
    Fault(
        "window-starting-after-the-last-frame",
        "silently wrong",
        _video_ctx,
        _read_window(3600.0, None),
        raises=VideoDecodeError,
        names=("{video}", "after the video's last frame"),
    ),
    Fault(
        "window-start-nan",
        "unclear error",
        _video_ctx,
        _read_window(float("nan"), 1.0),
        raises=VideoDecodeError,
        names=("{video}", "start nan is not finite"),
    ),  # fmt: skip
    Fault(
        "window-end-inf",
        "unclear error",
        _video_ctx,
        _read_window(0.0, float("inf")),
        raises=VideoDecodeError,
        names=("{video}", "end inf is not finite"),
    ),  # fmt: skip
    Fault(
        "window-end-negative",
        "unclear error",
        _video_ctx,
        _read_window(None, -1.0),
        raises=VideoDecodeError,
        names=("{video}", "end -1.0 must be >= 0"),
    ),  # fmt: skip
    Fault("processor-bad-windows-are-counted-skips", "silently wrong", _video_ctx, _processor_skip),
    Fault(
        "video-missing",
        "already held",
        lambda tmp, shared: {"video": tmp / "gone.mp4"},
        _read_window(None, None),
        raises=VideoDecodeError,
        names=("{video}", "does not exist"),
    ),  # fmt: skip
    Fault(
        "video-empty",
        "already held",
        _bad_video(b""),
        _read_window(None, None),
        raises=VideoDecodeError,
        names=("{video}", "empty"),
    ),  # fmt: skip
    Fault(
        "video-not-a-container",
        "already held",
        _bad_video(b"\x00" * 64),
        _read_window(None, None),
        raises=VideoDecodeError,
        names=("{video}", "not a readable video"),
    ),  # fmt: skip
    Fault(
        "video-truncated",
        "already held",
        _truncated_video,
        _read_window(None, None),
        raises=VideoDecodeError,
        names=("{video}",),
    ),  # fmt: skip
    Fault("window-overhanging-the-end-is-clamped-with-a-warning", "silently wrong", _video_ctx, _overhang),
    Fault(
        "extract-csv-with-a-nan-window",
        "unclear error",
        lambda tmp, shared: {**_features_copy(tmp, shared), "video": _video(shared)},
        _csv_with_nan_window,
        exit_code=EXIT_PARTIAL,
        names=("bad", "not finite"),
        check=_failed_listed,
    ),
    Fault(
        "extract-rerun-reuses-finished-shards",
        "already held",
        _features_copy,
        _rerun_reuses,
        exit_code=EXIT_OK,
        kept=("{features}/video-00000.safetensors", "{features}/text-00000.safetensors"),
    ),
]


# -------------------------------------------------------------------------- annotations, captions and pickles

TRAIN_CSV = "EPIC_100_retrieval_train.csv"
TEST_CSV = "EPIC_100_retrieval_test.csv"


def _annotations(edit: Callable[[Path], None]) -> Callable[[Path, dict], dict]:
    """Setup: a copy of the synthetic EK-100 annotation files that ``edit(data_dir)`` changes."""

    def setup(tmp: Path, shared: dict) -> dict:
        data = tmp / "annotations"
        data.mkdir()
        for file in (shared["root"] / "data").glob("*.csv"):
            shutil.copy(file, data)
        edit(data)
        return {**shared, "data": data, "cache": tmp / "cache"}

    return setup


def _edit_line(name: str, line: int, edit: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def apply(data: Path) -> None:
        lines = (data / name).read_bytes().splitlines(keepends=True)
        lines[line - 1] = edit(lines[line - 1])
        (data / name).write_bytes(b"".join(lines))

    return apply


def _set_field(index: int, value: bytes) -> Callable[[bytes], bytes]:
    """Line edit: field ``index`` (before any quoted field) becomes ``value``."""

    def edit(line: bytes) -> bytes:
        fields = line.split(b",")
        fields[index] = value
        return b",".join(fields)

    return edit


def _duplicate_row(data: Path) -> None:
    lines = (data / TRAIN_CSV).read_text().splitlines(keepends=True)
    (data / TRAIN_CSV).write_text("".join([*lines, lines[1]]))


def _load_train(on_bad_row: str) -> Callable[[dict], Any]:
    def action(ctx: dict) -> Any:
        from eva02at_hf.data._common import load_split
        from eva02at_hf.data.ek100 import EK100MIRBuilder

        videos = str(ctx["root"] / "data" / "videos")
        builder = EK100MIRBuilder(
            data_dir=str(ctx["data"]), video_root=videos, cache_dir=str(ctx["cache"]), on_bad_row=on_bad_row
        )
        ctx["num_rows"] = len(load_split(builder, "train"))
        ctx["report"] = builder.bad_row_report("train")
        ctx["train_rows"] = len((ctx["data"] / TRAIN_CSV).read_text().splitlines()) - 1

    return action


def _one_skipped(reason: str) -> Callable[[dict], None]:
    def check(ctx: dict) -> None:
        assert ctx["report"].count == 1 and ctx["num_rows"] == ctx["train_rows"] - 1
        assert reason in ctx["report"].examples[0][1], ctx["report"].examples

    return check


def _eval(ctx: dict) -> int:
    _workspace(ctx)
    argv = ["eval", "ek100_mir", "--model", str(ctx["model"]), "--data_dir", str(ctx["data"])]
    return main(
        [*argv, "--video_root", str(ctx["root"] / "data" / "videos"), "--cache_dir", str(ctx["cache"])]
    )


def _caption(text: Any) -> Callable[[dict], Any]:
    def action(ctx: dict) -> Any:
        _, processor = load_model_and_processor(None, num_frames=2)
        return processor(text=text, return_tensors="pt")

    return action


def _pickle_file(payload: bytes) -> Callable[[Path, dict], dict]:
    def setup(tmp: Path, shared: dict) -> dict:
        (tmp / "relevancy.pkl").write_bytes(payload)
        return {"pickle": tmp / "relevancy.pkl", "marker": tmp / "pwned"}

    return setup


def _load_pickle(ctx: dict) -> Any:
    from eva02at_hf.utils.safe_pickle import NUMPY_ARRAY_GLOBALS, restricted_pickle_load

    return restricted_pickle_load(ctx["pickle"], NUMPY_ARRAY_GLOBALS, "numpy arrays")


def _extract_list(name: str, content: bytes) -> Callable[[dict], int]:
    def action(ctx: dict) -> int:
        _workspace(ctx)
        ctx["list"] = ctx["tmp"] / name
        ctx["list"].write_bytes(content)
        flag = "--videos" if name.endswith(".csv") else "--texts"
        return main(["extract", "--model", str(ctx["model"]), flag, str(ctx["list"]), "--output_dir",
                     str(ctx["tmp"] / "out"), "--no_progress"])  # fmt: skip

    return action


def _broken_video_folder(tmp: Path, shared: dict) -> dict:
    ctx = {**_workspace(shared), "tmp": tmp}
    ctx["videos"] = tmp / "clips"
    ctx["videos"].mkdir()
    shutil.copy(_video(shared), ctx["videos"] / "good.mp4")
    (ctx["videos"] / "broken.mp4").write_bytes(b"\x00" * 64)
    return ctx


def _extract_broken_folder(ctx: dict) -> int:
    return main(["extract", "--model", str(ctx["model"]), "--videos", str(ctx["videos"]), "--output_dir",
                 str(ctx["tmp"] / "out"), "--num_frames", "2", "--no_progress"])  # fmt: skip


ANNOTATIONS: list[Fault] = [
    Fault(
        "duplicate-narration-id-is-a-counted-bad-row",
        "silently wrong",
        _annotations(_duplicate_row),
        _load_train("skip"),
        check=_one_skipped("duplicate narration_id"),
    ),
    Fault(
        "duplicate-narration-id-raises-under-on-bad-row-raise",
        "silently wrong",
        _annotations(_duplicate_row),
        _load_train("raise"),
        raises=BadRowError,
        names=("{data}/" + TRAIN_CSV, "duplicate narration_id", "line 2"),
    ),
    Fault(
        "negative-verb-class-is-a-counted-bad-row",
        "silently wrong",
        _annotations(_edit_line(TRAIN_CSV, 3, _set_field(10, b"-5"))),
        _load_train("skip"),
        check=_one_skipped("bad verb_class: -5"),
    ),
    Fault(
        "negative-verb-class-raises-naming-the-row",
        "silently wrong",
        _annotations(_edit_line(TRAIN_CSV, 3, _set_field(10, b"-5"))),
        _load_train("raise"),
        raises=BadRowError,
        names=("{data}/" + TRAIN_CSV, "verb_class", "-5"),
    ),
    Fault(
        "eval-csv-missing-a-column-exits-2",
        "unclear error",
        _annotations(_edit_line(TEST_CSV, 1, lambda header: header.replace(b"verb_class", b"verb_klass"))),
        _eval,
        exit_code=EXIT_USAGE,
        names=("{data}/" + TEST_CSV, "verb_class"),
        kept=("{data}",),
    ),
    Fault(
        "eval-csv-not-utf8",
        "unclear error",
        _annotations(_edit_line(TEST_CSV, 3, _set_field(8, "caf\u00e9".encode("latin-1")))),
        _eval,
        exit_code=EXIT_USAGE,
        names=("{data}/" + TEST_CSV, "line 3", "UTF-8"),
    ),
    Fault(
        "eval-binary-csv",
        "unclear error",
        _annotations(lambda data: (data / TEST_CSV).write_bytes(bytes(range(256)) * 64)),
        _eval,
        exit_code=EXIT_USAGE,
        names=("{data}/" + TEST_CSV, "line 2", "UTF-8"),  # line 1 holds bytes 0-9: ASCII
    ),
    Fault(
        "eval-csv-oversized-field",
        "unclear error",
        _annotations(_edit_line(TEST_CSV, 2, _set_field(8, b"x" * 200_000))),
        _eval,
        exit_code=EXIT_USAGE,
        names=("{data}/" + TEST_CSV, "line 2", "field larger than field limit"),
    ),
    Fault(
        "caption-none",
        "unclear error",
        _setup_nothing := (lambda tmp, shared: {}),
        _caption([None]),
        raises=TypeError,
        names=("`text`[0]", "NoneType"),
    ),  # fmt: skip
    Fault(
        "caption-number",
        "unclear error",
        _setup_nothing,
        _caption(["ok", 3.5]),
        raises=TypeError,
        names=("`text`[1]", "float"),
    ),  # fmt: skip
    Fault(
        "caption-bytes",
        "unclear error",
        _setup_nothing,
        _caption([b"open the door"]),
        raises=TypeError,
        names=("`text`[0]", "bytes"),
    ),  # fmt: skip
    Fault(
        "caption-empty-list",
        "unclear error",
        _setup_nothing,
        _caption([]),
        raises=TypeError,
        names=("`text`", "non-empty list"),
    ),  # fmt: skip
    Fault(
        "pickle-with-an-ext-opcode",
        "unclear error",
        _pickle_file(b"\x80\x02\x82\x01."),
        _load_pickle,
        raises=pickle.UnpicklingError,
        names=("{pickle}", "extension code"),
        kept=("{pickle}",),
    ),
    Fault(
        "pickle-calling-os-system-is-refused",
        "already held",
        _pickle_file(b"cos\nsystem\n(S'touch pwned'\ntR."),
        _load_pickle,
        raises=pickle.UnpicklingError,
        names=("{pickle}", "os.system"),
        check=lambda ctx: not ctx["marker"].exists() or pytest.fail("the pickle ran code"),
    ),
    Fault(
        "extract-video-csv-not-utf8",
        "unclear error",
        lambda tmp, shared: {**shared, "tmp": tmp},
        _extract_list("clips.csv", b"path,id\nclip\xe9.mp4,a\n"),
        exit_code=EXIT_USAGE,
        names=("{list}", "line 2", "UTF-8"),
    ),
    Fault(
        "extract-text-file-not-utf8",
        "unclear error",
        lambda tmp, shared: {**shared, "tmp": tmp},
        _extract_list("texts.txt", b"open the door\n\xff\xfe cut\n"),
        exit_code=EXIT_USAGE,
        names=("{list}", "UTF-8"),
    ),
    Fault(
        "extract-corrupt-video-is-listed-and-the-run-finishes",
        "already held",
        _broken_video_folder,
        _extract_broken_folder,
        exit_code=EXIT_PARTIAL,
        names=("broken.mp4",),
        kept=("{videos}",),
    ),
]


# --------------------------------------------------------------------------------------------- exported folders


def _user_folder(tmp: Path, shared: dict) -> dict:
    folder = tmp / "eva02at-b"
    folder.mkdir()
    (folder / "config.json").write_text('{"old": true}')
    (folder / "NOTES.md").write_text("my notes")
    return {"folder": folder}


def _export_interrupted(ctx: dict) -> None:
    with atomic_export(ctx["folder"]) as staging:
        (staging / "config.json").write_text('{"new": tr')  # half-written when the disk fills up
        raise OSError(28, "No space left on device")


def _export_finished(ctx: dict) -> None:
    with atomic_export(ctx["folder"]) as staging:
        (staging / "config.json").write_text('{"new": true}')


def _after_export(ctx: dict) -> None:
    assert json.loads((ctx["folder"] / "config.json").read_text()) == {"new": True}
    assert (ctx["folder"] / "NOTES.md").read_text() == "my notes"  # the user's other files stay
    assert not list(ctx["folder"].parent.glob(".*incomplete"))


EXPORTS: list[Fault] = [
    Fault(
        "disk-full-while-exporting-into-a-user-folder",
        "lost work",
        _user_folder,
        _export_interrupted,
        raises=OSError,
        names=("No space left",),
        kept=("{folder}",),
        check=lambda ctx: not list(ctx["folder"].parent.glob(".*incomplete")) or pytest.fail("staging left"),
    ),
    Fault(
        "export-into-a-user-folder-keeps-other-files",
        "lost work",
        _user_folder,
        _export_finished,
        kept=("{folder}/NOTES.md",),
        check=_after_export,
    ),
]

FAULTS: list[Fault] = [*TRAINING, *EXTRACTION, *ANNOTATIONS, *EXPORTS]


@pytest.mark.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])
def test_fault(fault: Fault, shared: dict, tmp_path: Path, capsys) -> None:
    ctx = fault.setup(tmp_path, shared)
    kept = {pattern: _digest(Path(pattern.format(**ctx))) for pattern in fault.kept}
    message = ""
    if fault.raises is not None:
        with pytest.raises(fault.raises) as error:
            fault.action(ctx)
        message = str(error.value)
    else:
        result = fault.action(ctx)
        if fault.exit_code is not None:
            captured = capsys.readouterr()
            assert result == fault.exit_code, captured.err
            message = captured.err
    for name in fault.names:
        assert name.format(**ctx) in message, f"{name.format(**ctx)!r} not in {message!r}"
    for pattern, digest in kept.items():
        assert _digest(Path(pattern.format(**ctx))) == digest, f"{pattern.format(**ctx)} changed"
    if fault.check is not None:
        fault.check(ctx)


def test_every_row_has_a_known_category_and_its_own_id() -> None:
    assert {f.category for f in FAULTS} == set(CATEGORIES)
    assert len({f.id for f in FAULTS}) == len(FAULTS)


def test_reliability_doc_counts_match_the_table() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "reliability.md").read_text()
    counts = {category: sum(f.category == category for f in FAULTS) for category in CATEGORIES}
    for category, count in counts.items():
        assert f"| {category} | {count} |" in doc, category
    assert f"| **total** | **{len(FAULTS)}** |" in doc
