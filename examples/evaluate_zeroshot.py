"""Zero-shot evaluation of any EVA02-AT checkpoint: EK-100 MIR, EgoMCQ and Charades-Ego (EVA02-AT Tables II-III).

Each benchmark runs when its folders are given; results go to ``<output_dir>/zero_shot.json`` and stdout.

    accelerate launch examples/evaluate_zeroshot.py --model eva02at-b --output_dir out \
        --ek100_dir retrieval_annotations --ek100_videos EK100_chunked --ek100_chunk_len 15 \
        --egomcq_dir egovlp_annotations --egomcq_videos ego4d_chunked --egomcq_chunk_len 300 \
        --charades_dir CharadesEgo --charades_videos CharadesEgo_v1_480
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from eva02at_hf.data import charades_ego_class_names, load_charades_ego, load_egomcq
from eva02at_hf.training import (
    EK100Split,
    TrainingLoopConfig,
    build_accelerator,
    ek100_evaluator,
    evaluate_charades_ego,
    evaluate_egomcq,
    load_model_and_processor,
    parse_recipe_args,
    recipe_default,
)
from eva02at_hf.utils.reliability import atomic_write_json


@dataclass
class ZeroShotArguments:
    output_dir: str = field(metadata={"help": "Where zero_shot.json and the relevancy cache go."})
    model: str | None = field(default=None, metadata={"help": "Converted / saved EVA02-AT folder."})
    preset: str = field(
        default="eva02at-tiny", metadata={"help": "Random-init preset when --model is unset."}
    )
    num_frames: int = field(
        default=16, metadata={"help": "Frames per clip (EgoMCQ: 4 in the paper's setup)."}
    )
    egomcq_num_frames: int = field(default=4, metadata={"help": "Frames per EgoMCQ clip."})
    batch_size: int = field(default=32, metadata={"help": "Clips per process per batch."})
    num_workers: int = field(default=2, metadata={"help": "DataLoader workers."})
    mixed_precision: str = recipe_default("mixed_precision", "auto")
    ek100_dir: str | None = field(default=None, metadata={"help": "EK-100 retrieval annotation folder."})
    ek100_videos: str | None = field(default=None, metadata={"help": "EK-100 video folder."})
    ek100_chunk_len: float | None = field(default=None, metadata={"help": "EK-100 chunk seconds."})
    egomcq_dir: str | None = field(default=None, metadata={"help": "Folder with egomcq.json."})
    egomcq_videos: str | None = field(default=None, metadata={"help": "Ego4D video folder."})
    egomcq_chunk_len: float | None = field(default=None, metadata={"help": "Ego4D chunk seconds."})
    charades_dir: str | None = field(default=None, metadata={"help": "Charades-Ego annotation folder."})
    charades_videos: str | None = field(default=None, metadata={"help": "Charades-Ego video folder."})

    def __post_init__(self) -> None:
        for name in ("ek100", "egomcq", "charades"):
            folder, videos = getattr(self, f"{name}_dir"), getattr(self, f"{name}_videos")
            if folder and not videos:
                raise ValueError(f"--{name}_dir needs --{name}_videos (the video folder)")
            if videos and not folder:
                raise ValueError(f"--{name}_videos needs --{name}_dir (the annotation folder)")
        if not (self.ek100_dir or self.egomcq_dir or self.charades_dir):
            raise ValueError("give at least one of --ek100_dir, --egomcq_dir, --charades_dir")


def main(argv: list[str] | None = None) -> dict:
    (args,) = parse_recipe_args((ZeroShotArguments,), argv)
    config = TrainingLoopConfig(
        output_dir=args.output_dir, mixed_precision=args.mixed_precision, report_to="none"
    )
    accelerator = build_accelerator(config)
    if args.model is None:
        accelerator.print(f"no --model given: evaluating a randomly initialised {args.preset} (--preset)")
    model, processor = load_model_and_processor(args.model, args.preset)
    model.to(accelerator.device)
    results: dict[str, dict] = {}
    if args.ek100_dir:
        with accelerator.main_process_first():
            test = EK100Split(
                args.ek100_dir,
                args.ek100_videos,
                "test",
                os.path.join(args.output_dir, "cache"),
                chunk_len=args.ek100_chunk_len,
            )
        evaluate = ek100_evaluator(processor, test, args.num_frames, args.batch_size, args.num_workers)
        results["ek100_mir"] = evaluate(model, accelerator)
    if args.egomcq_dir:
        with accelerator.main_process_first():
            questions = load_egomcq(args.egomcq_dir, args.egomcq_videos, chunk_len=args.egomcq_chunk_len)
        results["egomcq"] = evaluate_egomcq(
            model, processor, questions, accelerator, args.egomcq_num_frames, num_workers=args.num_workers
        )
    if args.charades_dir:
        with accelerator.main_process_first():
            videos = load_charades_ego(args.charades_dir, args.charades_videos, "test", trimmed=False)
        results["charades_ego"] = evaluate_charades_ego(
            model,
            processor,
            videos,
            charades_ego_class_names(args.charades_dir),
            accelerator,
            args.num_frames,
            args.batch_size,
            args.num_workers,
        )
    if accelerator.is_main_process:
        os.makedirs(args.output_dir, exist_ok=True)
        atomic_write_json(os.path.join(args.output_dir, "zero_shot.json"), results)
        print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
