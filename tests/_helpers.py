"""Builders shared by the test modules: saved tiny models, extraction workspaces, runs of a saved model's remote
code without the package, tiny EK-100 training loops, and CPU launches of the example scripts."""

from __future__ import annotations

import os
import site
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from eva02at_hf import EVA02ATConfig, EVA02ATForVideoTextRetrieval
from eva02at_hf.data import synthetic
from eva02at_hf.objectives import build_loss
from eva02at_hf.training import (
    EK100Split,
    TrainingLoop,
    TrainingLoopConfig,
    build_ek100_loop,
    load_model_and_processor,
)
from eva02at_hf.training.models import processor_for


def save_model_dir(
    folder: Path, model: EVA02ATForVideoTextRetrieval | None = None
) -> EVA02ATForVideoTextRetrieval:
    """Save ``model`` (default: a random ``eva02at-tiny`` model drawn after ``torch.manual_seed(0)``) and its
    processor in ``folder``, as `from_pretrained` and the CLI read them; returns the model."""
    if model is None:
        torch.manual_seed(0)
        model = EVA02ATForVideoTextRetrieval(EVA02ATConfig.from_preset("eva02at-tiny"))
    model.save_pretrained(folder)
    processor_for(model.config).save_pretrained(folder)
    return model


def extraction_workspace(root: Path, texts: Sequence[str], **generate) -> Path:
    """``root/model`` (`save_model_dir`), ``root/data``: a synthetic set (``synthetic.generate(seed=1,
    **generate)``) whose videos include a corrupt ``broken.mp4``, and ``root/texts.txt``, one text a line."""
    save_model_dir(root / "model")
    synthetic.generate(root / "data", seed=1, **generate)
    (root / "data" / "videos" / "broken.mp4").write_bytes(b"\x00" * 64)
    (root / "texts.txt").write_text("\n".join(texts) + "\n")
    return root


def extract_argv(workspace: Path, output_dir: Path, *options: str) -> list[str]:
    """``eva02at extract`` of an `extraction_workspace`'s videos and texts into ``output_dir``, without progress
    bars; ``options`` come before ``--no_progress``."""
    return [
        "extract",
        "--model", str(workspace / "model"),
        "--videos", str(workspace / "data" / "videos"),
        "--texts", str(workspace / "texts.txt"),
        "--output_dir", str(output_dir),
        *options,
        "--no_progress",
    ]  # fmt: skip


def remote_code_logits(
    folder: Path, inputs: dict[str, torch.Tensor], tmp_path: Path, checks: str = ""
) -> torch.Tensor:
    """``logits_per_video`` of ``inputs`` from ``AutoModel.from_pretrained(folder, trust_remote_code=True)`` in a
    fresh interpreter that sees the virtualenv's packages but not `eva02at_hf` (asserted there), so only the code
    saved in ``folder`` runs. ``checks``: more script lines over ``model``, run before the forward."""
    torch.save(inputs, tmp_path / "inputs.pt")
    script = f"""
import torch
from transformers import AutoModel
model = AutoModel.from_pretrained({str(folder)!r}, trust_remote_code=True).eval()
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
{checks}
inputs = torch.load({str(tmp_path / "inputs.pt")!r})
with torch.no_grad():
    torch.save(model(**inputs).logits_per_video, {str(tmp_path / "out.pt")!r})
"""
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    result = subprocess.run(
        [sys.executable, "-S", "-c", _with_site_packages_only(script)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return torch.load(tmp_path / "out.pt")


def _with_site_packages_only(script: str) -> str:
    """Prefix a script run with `python -S` so it sees the venv's site-packages but not the editable install."""
    paths = [p for p in site.getsitepackages() if "site-packages" in p]
    return (
        "import sys, site\n"
        f"for p in {paths!r}: site.addsitedir(p)\n"
        "sys.path = [p for p in sys.path if not p.endswith('/src') and '__editable__' not in p]\n"
        "sys.meta_path = [f for f in sys.meta_path if 'editable' not in type(f).__module__.lower() "
        "and 'editable' not in type(f).__name__.lower()]\n"
        "import importlib.util\n"
        "assert importlib.util.find_spec('eva02at_hf') is None, 'package still importable'\n" + script
    )


def tiny_ek100_loop(
    train: EK100Split,
    output_dir: Path | str,
    evaluate: Callable | None = None,
    **settings,
) -> TrainingLoop:
    """`build_ek100_loop` of a random tiny model drawn after ``torch.manual_seed(0)``, on 2-frame clips with the
    SMS loss, in-process data loading and no tracker; ``settings`` are the other `TrainingLoopConfig` fields."""
    torch.manual_seed(0)
    model, processor = load_model_and_processor(None, num_frames=2)
    config = TrainingLoopConfig(output_dir=str(output_dir), num_workers=0, report_to="none", **settings)
    return build_ek100_loop(
        config, model, processor, train, build_loss("sms"), num_frames=2, evaluate=evaluate
    )


def python_processes(nproc: int) -> list[str]:
    """The command that runs a Python program in ``nproc`` processes: this interpreter for one, torchrun for more."""
    if nproc == 1:
        return [sys.executable]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]


def cpu_environment(**variables: str) -> dict[str, str]:
    """This process's environment for launched ranks: CPU only (no GPU, accelerate on CPU), one thread each,
    plus ``variables``."""
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "ACCELERATE_USE_CPU": "1",
        **variables,
    }


def small_synthetic_set(root: Path, layouts: Sequence[str]) -> Path:
    """40 synthetic clips (10 fps, 8 frames each, at most 6 per video, half of them test) in ``layouts``."""
    synthetic.generate(
        root,
        num_clips=40,
        seed=0,
        fps=10,
        frames_per_clip=8,
        max_clips_per_video=6,
        test_fraction=0.5,
        layouts=tuple(layouts),
    )
    return root
