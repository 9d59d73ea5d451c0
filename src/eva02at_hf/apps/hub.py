"""Hub model cards and publishing: render a card from a config and a results JSON, stage model + processor +
card (with the remote code and `auto_map` entries that make `trust_remote_code=True` work) and upload them in
one commit.

Results JSON (``model_cards/eva02at-b.json`` is an example; ``eva02at eval --output`` writes the same shape)::

    {"model_name": "EVA02-AT-B",
     "base_model": "timm/eva02_base_patch16_clip_224.merged2b",                     (optional)
     "source": {"name": "...", "url": "https://...", "reproduced": false},
     "results": [{"benchmark": "ek100_mir" | "egomcq" | ..., "setting": "zero-shot",    (a registered benchmark)
                  "pretraining": "EgoClip+", "table": "III",                        (optional)
                  "metrics": {"mAP_v2t": 38.3, ...}}]}                              (the benchmark's metrics)

Benchmarks, their metrics and their ``model-index`` metadata come from `eva02at_hf.training.benchmarks`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import CommitOperationAdd, EvalResult, HfApi, ModelCard, ModelCardData

from ..configuration_eva02at import EVA02ATConfig
from ..modeling_eva02at import EVA02ATForVideoTextRetrieval
from ..processing_eva02at import CONTEXT_LENGTH, EVA02ATProcessor
from ..training.benchmarks import BENCHMARKS
from ..video_processing_eva02at import EVA02ATVideoProcessor

DEFAULT_TEMPLATE = Path(__file__).resolve().parents[3] / "model_cards" / "template.md"
PAPER_URL = "https://arxiv.org/abs/2506.14356"
TAGS = ["video-text-retrieval", "egocentric", "eva02", "clip", "ego4d", "epic-kitchens", "eva02-at"]


def load_results(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a results JSON (see the module docstring); errors name the file and the entry."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"results file not found: {path}")
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    check_results(results, str(path))
    return results


def check_results(results: dict[str, Any], where: str = "results") -> None:
    """Raise ``ValueError`` naming the entry if ``results`` does not follow the results JSON schema."""
    if not isinstance(results, dict) or not isinstance(results.get("results"), list):
        raise ValueError(f"{where}: expected an object with a 'results' list")
    for i, entry in enumerate(results["results"]):
        benchmark = entry.get("benchmark")
        if benchmark not in BENCHMARKS:
            raise ValueError(
                f"{where}: results[{i}].benchmark {benchmark!r} is not one of {sorted(BENCHMARKS)}"
            )
        metrics = entry.get("metrics")
        if not isinstance(metrics, dict) or not metrics:
            raise ValueError(f"{where}: results[{i}] has no 'metrics' object")
        unknown = sorted(set(metrics) - set(BENCHMARKS[benchmark].metrics))
        if unknown:
            raise ValueError(
                f"{where}: results[{i}] has metrics {unknown} unknown for {benchmark}; "
                f"expected some of {list(BENCHMARKS[benchmark].metrics)}"
            )
        if not all(v is None or isinstance(v, (int, float)) for v in metrics.values()):
            raise ValueError(f"{where}: results[{i}].metrics must be numbers (or null: not measured)")


def _measured(value: float | None) -> bool:
    """Whether a metric value is a number: null / NaN (e.g. no question of that type) is left out of cards."""
    return value is not None and value == value


def _source(results: dict[str, Any]) -> dict[str, Any]:
    return {"name": "eva02at-hf evaluation", "url": None, "reproduced": True, **results.get("source", {})}


def eval_results(results: dict[str, Any]) -> list[EvalResult]:
    """One Hub `EvalResult` per metric of every entry; the setting and pre-training data go into the dataset
    name and config, the source (paper table or own evaluation) into ``source_name`` / ``source_url``."""
    source = _source(results)
    out = []
    for entry in results["results"]:
        benchmark = BENCHMARKS[entry["benchmark"]]
        setting = ", ".join(part for part in (entry.get("setting"), _pretraining(entry)) if part) or "default"
        table = f", Table {entry['table']}" if entry.get("table") else ""
        for key, value in entry["metrics"].items():
            if not _measured(value):
                continue
            metric, hub = benchmark.metrics[key], benchmark.hub
            out.append(
                EvalResult(
                    task_type=hub.task_type,
                    task_name=hub.task_name,
                    dataset_type=hub.dataset_type,
                    dataset_name=f"{hub.dataset_name} ({setting})",
                    dataset_config=setting,
                    dataset_split=entry.get("split", benchmark.split),
                    metric_type=metric.hub_type,
                    metric_name=metric.display_name,
                    metric_value=float(value),
                    verified=False,
                    source_name=f"{source['name']}{table}" if source["url"] else None,
                    source_url=source["url"],
                )
            )
    return out


def _pretraining(entry: dict[str, Any]) -> str | None:
    return f"{entry['pretraining']} pre-training" if entry.get("pretraining") else None


def results_tables(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Markdown-ready tables, one per benchmark present: ``title``, ``columns`` and ``rows``."""
    source = _source(results)
    tables = []
    for key, benchmark in BENCHMARKS.items():
        entries = [entry for entry in results["results"] if entry["benchmark"] == key]
        if not entries:
            continue
        metric_keys = [key for key in benchmark.metrics if any(key in e["metrics"] for e in entries)]
        columns = [benchmark.metrics[key].display_name for key in metric_keys]
        rows = [
            {
                "setting": entry.get("setting", ""),
                "pretraining": entry.get("pretraining", "–"),
                "cells": [
                    f"{entry['metrics'][m]:.1f}" if _measured(entry["metrics"].get(m)) else "–"
                    for m in metric_keys
                ],
                "source": f"paper, Table {entry['table']}" if entry.get("table") else source["name"],
            }
            for entry in entries
        ]
        tables.append({"title": benchmark.hub.title, "columns": columns, "rows": rows})
    return tables


def parameter_counts(config: EVA02ATConfig) -> tuple[int, int]:
    """(video tower + projection, text tower + projection) parameter counts, built on the meta device."""
    with torch.device("meta"):
        model = EVA02ATForVideoTextRetrieval(config)
    vision = sum(p.numel() for n, p in model.named_parameters() if n.startswith(("vision_model.", "visual_")))
    text = sum(
        p.numel() for n, p in model.named_parameters() if n.startswith(("text_model.", "text_projection"))
    )
    return vision, text


def _millions(count: int) -> str:
    return f"{count / 1e6:.1f} M" if count >= 1e5 else f"{count / 1e3:.1f} K"


def render_model_card(
    config: EVA02ATConfig,
    results: dict[str, Any] | None,
    repo_id: str,
    template_path: str | os.PathLike | None = None,
) -> ModelCard:
    """Fill the Jinja model-card template from ``config`` and ``results`` (a results JSON, or None).

    The YAML header holds `ModelCardData` with the `model-index` built by `eval_results`.
    """
    template_path = Path(template_path or DEFAULT_TEMPLATE)
    if not template_path.is_file():
        raise FileNotFoundError(f"model card template not found: {template_path}")
    results = results or {"results": []}
    check_results(results)
    source = _source(results)
    model_name = results.get("model_name") or repo_id.split("/")[-1]
    card_data = ModelCardData(
        model_name=model_name,
        base_model=results.get("base_model"),
        library_name="transformers",
        pipeline_tag="feature-extraction",
        tags=TAGS,
        eval_results=eval_results(results) or None,
    )
    vision, text = config.vision_config, config.text_config
    vision_params, text_params = parameter_counts(config)
    if not results["results"]:
        note = "No evaluation results were provided for this checkpoint."
    elif source["reproduced"]:
        note = f"Measured with the eva02at-hf evaluation (`eva02at eval`): {source['name']}."
    else:
        note = (
            f"**These numbers are reported by the EVA02-AT paper ([{source['url']}]({source['url']})); they were "
            "not reproduced with this implementation.** Percentages; V→T: video-to-text, T→V: text-to-video."
        )
    return ModelCard.from_template(
        card_data,
        template_path=str(template_path),
        model_name=model_name,
        repo_id=repo_id,
        base_model=results.get("base_model") or ("AVION" if config.uses_vit_backbone else "EVA02-CLIP"),
        projection_dim=config.projection_dim,
        num_frames=vision.num_frames,
        image_size=vision.image_size,
        patch_size=vision.patch_size,
        grid=vision.image_size // vision.patch_size,
        vit_backbone=config.uses_vit_backbone,
        vision=vision,
        text=text,
        vision_params=_millions(vision_params),
        text_params=_millions(text_params),
        context_length=CONTEXT_LENGTH,
        results_note=note,
        results_tables=results_tables(results),
        reproduced=source["reproduced"],
    )


def register_remote_code() -> None:
    """Make `save_pretrained` of the processor write its code files and `auto_map` (the model's are registered
    by `import eva02at_hf`), so `AutoProcessor.from_pretrained(..., trust_remote_code=True)` works without the
    package."""
    EVA02ATProcessor.register_for_auto_class("AutoProcessor")
    EVA02ATVideoProcessor.register_for_auto_class("AutoVideoProcessor")


def stage_for_hub(model_dir: str | os.PathLike, staging_dir: str | os.PathLike, card: ModelCard) -> list[str]:
    """Write model (weights, config with `auto_map`, modeling code), processor (configs, tokenizer files, code)
    and README.md for ``model_dir`` into ``staging_dir``; returns the staged file names.

    Raises:
        FileNotFoundError: ``model_dir`` has no config or no processor files.
    """
    model_dir, staging_dir = Path(model_dir), Path(staging_dir)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir} has no config.json: not a saved EVA02-AT model folder")
    if not (model_dir / "processor_config.json").is_file():
        raise FileNotFoundError(
            f"{model_dir} has no processor_config.json: save a processor there (e.g. `eva02at convert --processor`)"
        )
    register_remote_code()
    model = EVA02ATForVideoTextRetrieval.from_pretrained(model_dir)
    EVA02ATProcessor.from_pretrained(model_dir).save_pretrained(staging_dir)
    model.save_pretrained(staging_dir)
    card.save(staging_dir / "README.md")
    return sorted(p.relative_to(staging_dir).as_posix() for p in staging_dir.rglob("*") if p.is_file())


def publish(
    model_dir: str | os.PathLike,
    repo_id: str,
    card: ModelCard,
    staging_dir: str | os.PathLike,
    private: bool = False,
    revision: str | None = None,
    commit_message: str = "Upload EVA02-AT model, processor and model card",
    token: str | None = None,
) -> Any:
    """Stage ``model_dir`` (`stage_for_hub`) and upload it to ``repo_id`` in a single commit.

    Returns the `huggingface_hub.CommitInfo` of the commit.
    """
    files = stage_for_hub(model_dir, staging_dir, card)
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    operations = [
        CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(Path(staging_dir) / name)) for name in files
    ]
    return api.create_commit(
        repo_id=repo_id,
        operations=operations,
        commit_message=commit_message,
        revision=revision,
        repo_type="model",
    )


__all__ = [
    "check_results",
    "eval_results",
    "load_results",
    "parameter_counts",
    "publish",
    "register_remote_code",
    "render_model_card",
    "results_tables",
    "stage_for_hub",
]
