"""Ablations on the synthetic egocentric set (EVA02-AT Tables IV and V in miniature).

Two studies, each a table of rows trained with the same data, budget and seeds (a tiny EVA02-AT from scratch,
the package's training recipe with its random-resized crop, EK-100 MIR metrics on the synthetic test split):

* ``loss`` (Table V) on the ``actions`` set, whose verbs come in time-reversed pairs: SMS with the authors' edge
  (lambda = 1.1 / 240 on uint8 relevancy, the recipes' default) vs the paper's (lambda = epsilon = 0.1),
  adaptive MI-MM and InfoNCE, all with learnable P_t + spatial-temporal RoPE, then the paper's CLIP ViT baseline
  (AVION's: learnable P_t, no RoPE, the ``vit-tiny`` preset at the same width and depth) with each loss.
* ``temporal`` (Table IV) on the ``event_order`` set, whose verb is the order of three coloured events: temporal
  position encodings trained at ``--num_frames`` (4) frames and evaluated at each of ``--eval_frames`` (4 8 16),
  where a learnable P_t is interpolated and RoPE sees positions it was not trained on; the last row is the ViT
  baseline (Table IV's "ViT, learnable").

A row is one entry of `STUDIES`: a label, the model preset and its config overrides, and the loss settings. The
first row of each study is its baseline; every row prints its mean over seeds, the standard deviation and the
difference. ``--rows eva02at`` or ``--rows vit`` (the baseline and the ViT rows) trains part of a study.

    python benchmarks/ablation_synthetic.py --output_dir /tmp/ablation --study loss --seeds 0 1
    python benchmarks/ablation_synthetic.py --output_dir /tmp/ablation --study temporal --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from eva02at_hf.data import synthetic
from eva02at_hf.objectives import build_loss
from eva02at_hf.training import (
    EK100Split,
    HelpFormatter,
    TrainingLoopConfig,
    build_accelerator,
    build_ek100_loop,
    ek100_evaluator,
    load_model_and_processor,
)


@dataclass(frozen=True)
class Row:
    """One trained configuration: ``model`` overrides `EVA02ATConfig.from_preset` (e.g. ``vision_config``)."""

    label: str
    model: dict[str, Any] = field(default_factory=dict)
    preset: str = "eva02at-tiny"
    loss: str = "sms"
    sms_preset: str = "authors_code"


VIT_PRESET = "vit-tiny"


def _temporal(use_temporal_embedding: bool, temporal_rope: str, **vision: Any) -> dict[str, Any]:
    """The vision-config overrides of one temporal-encoding row (Table IV)."""
    return {
        "vision_config": {
            "use_temporal_embedding": use_temporal_embedding,
            "temporal_rope": temporal_rope,
            **vision,
        }
    }


@dataclass(frozen=True)
class Study:
    task: str  # the synthetic set (`synthetic.TASKS`)
    frames_per_clip: int  # frames of each synthetic clip
    rows: tuple[Row, ...]


STUDIES = {
    "loss": Study(
        "actions",
        8,
        (
            Row("SMS, authors' edge 1.1/240", _temporal(True, "additive")),
            Row("SMS, paper's edge 0.1", _temporal(True, "additive"), sms_preset="paper"),
            Row("adaptive MI-MM", _temporal(True, "additive"), loss="adaptive_mimm"),
            Row("InfoNCE", _temporal(True, "additive"), loss="infonce"),
            Row("ViT, SMS", preset=VIT_PRESET),
            Row("ViT, adaptive MI-MM", preset=VIT_PRESET, loss="adaptive_mimm"),
            Row("ViT, InfoNCE", preset=VIT_PRESET, loss="infonce"),
        ),
    ),
    "temporal": Study(
        "event_order",
        24,
        (
            Row("learnable+RoPE", _temporal(True, "additive")),
            Row("learnable", _temporal(True, "none")),
            Row("RoPE", _temporal(False, "additive")),
            Row("RoPE, rescaled positions", _temporal(False, "additive", temporal_rope_positions="rescaled")),
            Row("ViT, learnable", preset=VIT_PRESET),
        ),
    ),
}


def train_and_evaluate(
    args: argparse.Namespace, row: Row, seed: int, train: EK100Split, test: EK100Split, accelerator
) -> dict[int, dict[str, float]]:
    """Train ``row`` at ``args.num_frames`` frames; EK-100 MIR metrics at every ``args.eval_frames`` count."""
    config = TrainingLoopConfig(
        output_dir=os.path.join(args.output_dir, args.study, f"{row.label}-{seed}".replace(" ", "_")),
        num_epochs=args.num_epochs,
        batch_size=32,
        learning_rate=args.learning_rate,
        weight_decay=0.0,
        eval_every_epochs=args.num_epochs,
        num_workers=0,
        seed=seed,
        random_resized_crop=not args.no_random_resized_crop,
        report_to="none",
    )
    model, processor = load_model_and_processor(None, row.preset, num_frames=args.num_frames, **row.model)
    criterion = build_loss(row.loss, sms_preset=row.sms_preset)
    trainer = build_ek100_loop(
        config, model, processor, train, criterion, args.num_frames, 0.1, None, accelerator
    )
    trainer.train()
    network = accelerator.unwrap_model(trainer.model).eval()
    return {
        frames: ek100_evaluator(processor, test, frames, batch_size=64)(network, accelerator)
        for frames in args.eval_frames
    }


def summarise(
    study: Study, results: dict[str, list[dict[int, dict[str, float]]]], frames: list[int]
) -> list[dict]:
    rows = []
    for row in study.rows:
        runs = results[row.label]
        entry: dict[str, Any] = {
            "label": row.label,
            "preset": row.preset,
            "loss": row.loss,
            "sms_preset": row.sms_preset,
            **row.model,
        }
        for count in frames:
            maps = [run[count]["mAP_avg"] for run in runs]
            entry[f"mAP@{count}"] = float(np.mean(maps))
            entry[f"mAP_std@{count}"] = float(np.std(maps))
            entry[f"nDCG@{count}"] = float(np.mean([run[count]["nDCG_avg"] for run in runs]))
        entry["per_seed_mAP"] = {count: [run[count]["mAP_avg"] for run in runs] for count in frames}
        rows.append(entry)
    return rows


def print_table(rows: list[dict], frames: list[int]) -> None:
    base = rows[0]
    header = "| row | " + " | ".join(f"mAP @{f} fr (std) | nDCG @{f} | d mAP @{f}" for f in frames) + " |"
    print(header)
    print("|" + " --- |" * (1 + 3 * len(frames)))
    for row in rows:
        cells = [row["label"]]
        for f in frames:
            delta = row[f"mAP@{f}"] - base[f"mAP@{f}"]
            cells += [
                f"{row[f'mAP@{f}']:.1f} ({row[f'mAP_std@{f}']:.1f})",
                f"{row[f'nDCG@{f}']:.1f}",
                "baseline" if row is base else f"{delta:+.1f}",
            ]
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=HelpFormatter)
    parser.add_argument("--output_dir", required=True, help="data, runs and ablation-<study>.json")
    parser.add_argument("--study", choices=sorted(STUDIES), required=True, help="which table")
    parser.add_argument("--num_clips", type=int, default=360, help="synthetic clips (train + test)")
    parser.add_argument("--num_frames", type=int, default=4, help="training frames per clip")
    parser.add_argument(
        "--eval_frames",
        type=int,
        nargs="+",
        default=None,
        help="evaluation frame counts (default: the training count for 'loss', 4 8 16 for 'temporal')",
    )
    parser.add_argument("--num_epochs", type=int, default=20, help="training epochs")
    parser.add_argument("--learning_rate", type=float, default=3e-4, help="peak learning rate")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="training seeds")
    parser.add_argument(
        "--no_random_resized_crop",
        action="store_true",
        help="train on resize + centre crop (default: the recipe's random-resized crop)",
    )
    parser.add_argument(
        "--rows",
        choices=("all", "eva02at", "vit"),
        default="all",
        help="all rows, the EVA02-AT rows, or the ViT rows after the baseline they compare to",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    study = STUDIES[args.study]
    if args.rows != "all":
        vit = [row for row in study.rows if row.preset == VIT_PRESET]
        kept = (
            study.rows[:1] + tuple(vit)
            if args.rows == "vit"
            else tuple(r for r in study.rows if r not in vit)
        )
        study = Study(study.task, study.frames_per_clip, kept)
    if args.eval_frames is None:
        args.eval_frames = [args.num_frames] if args.study == "loss" else [4, 8, 16]
    data_dir = os.path.join(args.output_dir, f"data-{study.task}")
    if not os.path.isfile(os.path.join(data_dir, "EPIC_100_retrieval_test_sentence.csv")):
        synthetic.generate(
            data_dir, num_clips=args.num_clips, seed=0, frames_per_clip=study.frames_per_clip, task=study.task
        )
    cache = os.path.join(args.output_dir, f"cache-{study.task}")
    videos = os.path.join(data_dir, "videos")
    train = EK100Split(data_dir, videos, "train", cache, datasets_cache_dir=cache)
    test = EK100Split(data_dir, videos, "test", cache, datasets_cache_dir=cache)
    accelerator = build_accelerator(TrainingLoopConfig(output_dir=args.output_dir, report_to="none"))
    started = time.perf_counter()
    results: dict[str, list[dict[int, dict[str, float]]]] = {}
    for row in study.rows:  # each finished row is saved, so an interrupted study keeps what it measured
        results[row.label] = [
            train_and_evaluate(args, row, seed, train, test, accelerator) for seed in args.seeds
        ]
        with open(os.path.join(args.output_dir, f"ablation-{args.study}.partial.json"), "w") as handle:
            json.dump(results, handle, indent=1)
    rows = summarise(study, results, args.eval_frames)
    minutes = (time.perf_counter() - started) / 60
    print(
        f"\n{args.study}: {study.task} set, {len(args.seeds)} seeds, {args.num_epochs} epochs, trained at "
        f"{args.num_frames} frames, {len(train.clips)} train / {len(test.clips)} test clips, random-resized crop "
        f"{'off' if args.no_random_resized_crop else 'on'}, {minutes:.1f} min"
    )
    print_table(rows, args.eval_frames)
    with open(os.path.join(args.output_dir, f"ablation-{args.study}.json"), "w") as handle:
        json.dump({"args": vars(args), "minutes": minutes, "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
