"""Zero-shot evaluation of any EVA02-AT checkpoint on the registered benchmarks (EVA02-AT Tables II-III): EK-100 MIR,
EgoMCQ, Charades-Ego and the synthetic set.

Each benchmark runs when its folders are given; results go to ``<output_dir>/zero_shot.json`` and stdout. The
per-benchmark flags (``--<prefix>_dir``, ``_videos``, ``_chunk_len``, ``_num_frames``) come from the benchmark
registry (`eva02at_hf.training.benchmarks`): a registered benchmark gets them without editing this script.

    accelerate launch examples/evaluate_zeroshot.py --model eva02at-b --output_dir out \
        --ek100_dir retrieval_annotations --ek100_videos EK100_chunked --ek100_chunk_len 15 \
        --egomcq_dir egovlp_annotations --egomcq_videos ego4d_chunked --egomcq_chunk_len 300 \
        --charades_dir CharadesEgo --charades_videos CharadesEgo_v1_480
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, make_dataclass
from typing import Any

from eva02at_hf.training import (
    BENCHMARKS,
    TrainingLoopConfig,
    build_accelerator,
    load_model_and_processor,
    parse_recipe_args,
    recipe_default,
)
from eva02at_hf.utils.reliability import atomic_write_json


@dataclass
class ZeroShotArguments:
    output_dir: str = field(metadata={"help": "Where zero_shot.json and the dataset / relevancy cache go."})
    model: str | None = field(default=None, metadata={"help": "Converted / saved EVA02-AT folder."})
    preset: str = field(
        default="eva02at-tiny", metadata={"help": "Random-init preset when --model is unset."}
    )
    num_frames: int = field(
        default=16, metadata={"help": "Frames per clip (unless the benchmark's --<prefix>_num_frames says)."}
    )
    batch_size: int = field(default=32, metadata={"help": "Clips per process per batch."})
    num_workers: int = field(default=2, metadata={"help": "DataLoader workers."})
    mixed_precision: str = recipe_default("mixed_precision", "auto")


def _benchmark_fields() -> list[tuple[str, Any, Any]]:
    """``--<prefix>_dir``, ``_videos``, ``_chunk_len`` and ``_num_frames`` of every registered benchmark."""
    fields = []
    for benchmark in BENCHMARKS.values():
        name, title = benchmark.prefix, benchmark.hub.dataset_name
        frames = benchmark.num_frames
        fields += [
            (
                f"{name}_dir",
                str | None,
                field(default=None, metadata={"help": f"{title} annotation folder."}),
            ),
            (f"{name}_videos", str | None, field(default=None, metadata={"help": f"{title} video folder."})),
            (
                f"{name}_chunk_len",
                float | None,
                field(default=None, metadata={"help": f"{title}: chunk seconds of a pre-chunked layout."}),
            ),
            (
                f"{name}_num_frames",
                int | None,
                field(
                    default=frames,
                    metadata={
                        "help": f"Frames per {title} clip"
                        + (" (the paper's setup)." if frames else "; unset: --num_frames.")
                    },
                ),
            ),
        ]
    return fields


def _check_folders(self: Any) -> None:
    for benchmark in BENCHMARKS.values():
        name = benchmark.prefix
        folder, videos = getattr(self, f"{name}_dir"), getattr(self, f"{name}_videos")
        if folder and not videos:
            raise ValueError(f"--{name}_dir needs --{name}_videos (the video folder)")
        if videos and not folder:
            raise ValueError(f"--{name}_videos needs --{name}_dir (the annotation folder)")
    if not any(getattr(self, f"{b.prefix}_dir") for b in BENCHMARKS.values()):
        raise ValueError(
            "give at least one of " + ", ".join(f"--{b.prefix}_dir" for b in BENCHMARKS.values())
        )


# One flag group per registered benchmark (built when the script is imported, so `--help` lists them).
BenchmarkFolders = make_dataclass(
    "BenchmarkFolders", _benchmark_fields(), namespace={"__post_init__": _check_folders}
)


def main(argv: list[str] | None = None) -> dict:
    args, folders = parse_recipe_args((ZeroShotArguments, BenchmarkFolders), argv)
    config = TrainingLoopConfig(
        output_dir=args.output_dir, mixed_precision=args.mixed_precision, report_to="none"
    )
    accelerator = build_accelerator(config)
    if args.model is None:
        accelerator.print(f"no --model given: evaluating a randomly initialised {args.preset} (--preset)")
    model, processor = load_model_and_processor(args.model, args.preset)
    model.to(accelerator.device)
    cache = os.path.join(args.output_dir, "cache")
    results: dict[str, dict] = {}
    for name, benchmark in BENCHMARKS.items():
        data_dir = getattr(folders, f"{benchmark.prefix}_dir")
        if not data_dir:
            continue
        with accelerator.main_process_first():
            data = benchmark.load(
                data_dir,
                getattr(folders, f"{benchmark.prefix}_videos"),
                cache_dir=cache,
                chunk_len=getattr(folders, f"{benchmark.prefix}_chunk_len"),
            )
        num_frames = getattr(folders, f"{benchmark.prefix}_num_frames") or args.num_frames
        results[name] = benchmark.evaluate(
            model, processor, data, accelerator, num_frames, args.batch_size, args.num_workers
        )
    if accelerator.is_main_process:
        os.makedirs(args.output_dir, exist_ok=True)
        atomic_write_json(os.path.join(args.output_dir, "zero_shot.json"), results)
        print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
