"""EVA02-AT quickstart, offline: synthetic egocentric clips -> zero-shot -> SMS fine-tuning -> save, reload, search.

    python examples/quickstart.py --output_dir quickstart_out            # small random EVA02-AT, ~2-3 min on CPU
    python examples/quickstart.py --output_dir out --model <folder>      # real (converted) weights

Writes ``<output_dir>/results.json`` = {"zero_shot": {...}, "fine_tuned": {...}, "reloaded": {...}} with the
EK-100 MIR metrics (mAP / nDCG in %, on the synthetic test split) and the model + processor in
``<output_dir>/last`` (loadable with ``AutoModel`` / ``AutoProcessor.from_pretrained``).
"""

from __future__ import annotations

import argparse
import logging
import os
import time

import torch
from transformers import AutoModel, AutoProcessor

import eva02at_hf  # noqa: F401  (registers EVA02-AT with the Auto classes)
from eva02at_hf.data import synthetic
from eva02at_hf.objectives import DEFAULT_SMS_PRESET, SMS_PRESETS, build_loss
from eva02at_hf.training import (
    EK100Split,
    HelpFormatter,
    TrainingLoopConfig,
    build_accelerator,
    build_ek100_loop,
    ek100_evaluator,
    embed_clips,
    embed_texts,
    load_model_and_processor,
    save_recipe,
)
from eva02at_hf.utils.reliability import atomic_write_json


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=HelpFormatter)
    parser.add_argument("--output_dir", required=True, help="where the data, model and results.json go")
    parser.add_argument(
        "--model", default=None, help="a saved / converted EVA02-AT folder (default: random tiny)"
    )
    parser.add_argument("--num_clips", type=int, default=360, help="synthetic clips (train + test)")
    parser.add_argument("--num_frames", type=int, default=4, help="frames per clip")
    parser.add_argument("--num_epochs", type=int, default=20, help="training epochs")
    parser.add_argument("--batch_size", type=int, default=32, help="clips per batch")
    parser.add_argument(
        "--learning_rate", type=float, default=3e-4, help="peak; random init needs more than 2e-5"
    )
    parser.add_argument(
        "--crop_scale",
        type=float,
        nargs=2,
        default=[0.5, 1.0],
        metavar=("LOW", "HIGH"),
        help="area fraction range of the train-time random-resized crop",
    )
    parser.add_argument(
        "--no_random_resized_crop",
        dest="random_resized_crop",
        action="store_false",
        help="train on resize + centre crop (the evaluation transform) instead of random-resized crops "
        "(default: random-resized crops)",
    )
    parser.add_argument(
        "--sms_preset", default=DEFAULT_SMS_PRESET, choices=sorted(SMS_PRESETS), help="SMS edge"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of data, initialisation and training")
    parser.add_argument("--num_workers", type=int, default=0, help="DataLoader workers")
    return parser.parse_args(argv)


def print_queries(model, processor, split: EK100Split, accelerator, num_frames: int, top_k: int = 5) -> None:
    """Answer a few text-to-video queries on the test clips and print the ranked clips."""
    videos = embed_clips(
        model, processor, split.clips, accelerator, num_frames, desc="indexing clips"
    ).embeddings
    queries = split.sentences[:3]
    texts = embed_texts(model, processor, queries, accelerator)
    scores = texts @ videos.T
    dense = split.relevancy.toarray()
    for q, query in enumerate(queries):
        print(f"\nquery: {query!r}")
        for rank, clip in enumerate(scores[q].argsort(descending=True)[:top_k].tolist(), start=1):
            row = split.clips[clip]
            relevancy = dense[clip, q]
            print(
                f"  {rank}. {row['narration_id']:<12} {scores[q, clip]:+.3f}  {row['narration']!r}"
                f"  (relevancy {relevancy:.2f})"
            )


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    torch.manual_seed(args.seed)
    data_dir = os.path.join(args.output_dir, "data")
    summary = synthetic.generate(data_dir, num_clips=args.num_clips, seed=args.seed)
    print(f"[1/5] synthetic set: {summary.num_train} train / {summary.num_test} test clips in {data_dir}")
    video_root = os.path.join(data_dir, "videos")
    cache = os.path.join(args.output_dir, "cache")
    train = EK100Split(data_dir, video_root, "train", cache, datasets_cache_dir=cache)
    test = EK100Split(data_dir, video_root, "test", cache, datasets_cache_dir=cache)

    model, processor = load_model_and_processor(args.model, "eva02at-tiny", num_frames=args.num_frames)
    config = TrainingLoopConfig(
        output_dir=args.output_dir,
        num_epochs=args.num_epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        warmup_epochs=1.0,
        weight_decay=0.0,
        eval_every_epochs=args.num_epochs,
        num_workers=args.num_workers,
        seed=args.seed,
        random_resized_crop=args.random_resized_crop,
        crop_scale=args.crop_scale,
        report_to="none",
    )
    accelerator = build_accelerator(config)
    criterion = build_loss("sms", sms_preset=args.sms_preset)
    save_recipe(accelerator, args.output_dir, config, criterion=(repr(criterion), "resolved"))

    evaluate = ek100_evaluator(processor, test, args.num_frames, batch_size=64)
    zero_shot = evaluate(model, accelerator)
    print(f"[2/5] zero-shot:  mAP avg {zero_shot['mAP_avg']:.1f}  nDCG avg {zero_shot['nDCG_avg']:.1f}")

    trainer = build_ek100_loop(
        config, model, processor, train, criterion, args.num_frames, 0.1, evaluate, accelerator
    )
    fine_tuned = trainer.train()["final"]
    print(f"[3/5] fine-tuned: mAP avg {fine_tuned['mAP_avg']:.1f}  nDCG avg {fine_tuned['nDCG_avg']:.1f}")

    saved = os.path.join(args.output_dir, "last")
    reloaded_model = AutoModel.from_pretrained(saved)
    reloaded_processor = AutoProcessor.from_pretrained(saved)
    reloaded = ek100_evaluator(reloaded_processor, test, args.num_frames, batch_size=64)(
        reloaded_model, accelerator
    )
    print(f"[4/5] reloaded {type(reloaded_model).__name__} from {saved}: mAP avg {reloaded['mAP_avg']:.1f}")

    print("[5/5] text-to-video search on the test clips:")
    print_queries(reloaded_model, reloaded_processor, test, accelerator, args.num_frames)
    results = {"zero_shot": zero_shot, "fine_tuned": fine_tuned, "reloaded": reloaded}
    atomic_write_json(os.path.join(args.output_dir, "results.json"), results)
    print(
        f"\nresults: {os.path.join(args.output_dir, 'results.json')} ({time.perf_counter() - started:.0f} s)"
    )
    return results


if __name__ == "__main__":
    main()
