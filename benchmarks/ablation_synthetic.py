"""Ablation on the synthetic egocentric set (EVA02-AT Tables IV and V in miniature).

Temporal position encoding (learnable P_t vs spatial-temporal RoPE vs both) with the SMS loss, the loss (SMS vs
adaptive MI-MM vs InfoNCE) with learnable+RoPE, and the paper's CLIP ViT baseline with each loss (`--rows vit`): a tiny EVA02-AT trained from scratch, same data, budget and seeds
for every row, EK-100 MIR metrics on the synthetic test split. The synthetic verbs come in time-reversed pairs, so
temporal order matters. The first row is the baseline (the paper's setting) and every row prints its difference.

    python benchmarks/ablation_synthetic.py --output_dir /tmp/ablation --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from eva02at_hf.data import synthetic
from eva02at_hf.training import (
    EK100Split,
    TrainingConfig,
    build_accelerator,
    build_ek100_trainer,
    build_loss,
    ek100_evaluator,
    load_model_and_processor,
)

RUNS = (  # (temporal position encoding, loss); the first row is the baseline
    ("learnable+rope", "sms"),
    ("learnable", "sms"),
    ("rope", "sms"),
    ("learnable+rope", "adaptive_mimm"),
    ("learnable+rope", "infonce"),
)
# The paper's ViT baseline (AVION's CLIP ViT: learnable P_t, no RoPE, `vit-tiny` preset at the same width and
# depth): Table IV's "ViT" row (vs the EVA02-AT baseline above) and Table V's losses on ViT.
VIT_ENCODING = "ViT"
VIT_RUNS = ((VIT_ENCODING, "sms"), (VIT_ENCODING, "adaptive_mimm"), (VIT_ENCODING, "infonce"))


def run(args, encoding: str, loss: str, seed: int, train: EK100Split, test: EK100Split, accelerator) -> dict:
    config = TrainingConfig(
        output_dir=os.path.join(args.output_dir, f"{encoding}-{loss}-{seed}"),
        num_epochs=args.num_epochs,
        batch_size=32,
        learning_rate=args.learning_rate,
        weight_decay=0.0,
        eval_every_epochs=args.num_epochs,
        num_workers=0,
        seed=seed,
        report_to="none",
    )
    if encoding == VIT_ENCODING:
        model, processor = load_model_and_processor(None, "vit-tiny", num_frames=args.num_frames)
    else:
        model, processor = load_model_and_processor(
            None, num_frames=args.num_frames, vision_config={"temporal_position_encoding": encoding}
        )
    evaluate = ek100_evaluator(processor, test, args.num_frames, batch_size=64)
    trainer = build_ek100_trainer(
        config, model, processor, train, build_loss(loss), args.num_frames, 0.1, evaluate, accelerator
    )
    return trainer.train()["final"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--num_clips", type=int, default=360)
    parser.add_argument("--num_frames", type=int, default=4)
    parser.add_argument("--num_epochs", type=int, default=20)
    parser.add_argument("--learning_rate", type=float, default=3e-4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument(
        "--rows",
        choices=("all", "eva02at", "vit"),
        default="all",
        help="all rows (default), the EVA02-AT rows, or the ViT rows after the EVA02-AT baseline they compare to",
    )
    args = parser.parse_args()
    data_dir = os.path.join(args.output_dir, "data")
    synthetic.generate(data_dir, num_clips=args.num_clips, seed=0)
    cache = os.path.join(args.output_dir, "cache")
    train = EK100Split(data_dir, os.path.join(data_dir, "videos"), "train", cache, datasets_cache_dir=cache)
    test = EK100Split(data_dir, os.path.join(data_dir, "videos"), "test", cache, datasets_cache_dir=cache)
    accelerator = build_accelerator(TrainingConfig(output_dir=args.output_dir, report_to="none"))
    rows = []
    runs = {"all": RUNS + VIT_RUNS, "eva02at": RUNS, "vit": RUNS[:1] + VIT_RUNS}[args.rows]
    for encoding, loss in runs:
        started = time.perf_counter()
        metrics = [run(args, encoding, loss, seed, train, test, accelerator) for seed in args.seeds]
        mean = {key: float(np.mean([m[key] for m in metrics])) for key in ("mAP_avg", "nDCG_avg")}
        std = float(np.std([m["mAP_avg"] for m in metrics]))
        rows.append(
            {
                "encoding": encoding,
                "loss": loss,
                **mean,
                "mAP_std": std,
                "seconds": time.perf_counter() - started,
            }
        )
    base = rows[0]
    print(
        f"\n{len(args.seeds)} seeds, {args.num_epochs} epochs, {args.num_frames} frames, {len(train.clips)} train clips"
    )
    print(
        f"{'temporal encoding':<18} {'loss':<14} {'mAP avg':>8} {'(std)':>6} {'nDCG avg':>9} {'d mAP':>7} {'s':>5}"
    )
    for row in rows:
        print(
            f"{row['encoding']:<18} {row['loss']:<14} {row['mAP_avg']:8.1f} {row['mAP_std']:6.1f} "
            f"{row['nDCG_avg']:9.1f} {row['mAP_avg'] - base['mAP_avg']:+7.1f} {row['seconds']:5.0f}"
        )
    with open(os.path.join(args.output_dir, "ablation.json"), "w") as handle:
        json.dump({"args": vars(args), "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
