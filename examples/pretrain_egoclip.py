"""Pre-train EVA02-AT on EgoClip (Ego4D) with the bi-directional InfoNCE loss (EVA02-AT Sec. V-A).

Recipe defaults: InfoNCE at temperature 0.05, 4 frames per clip, AdamW at a fixed 3e-5, 5 epochs, batch 256 per
GPU (1024 in total on 4 GPUs), initialised from an EVA02-CLIP image checkpoint converted by
``conversion/convert_eva02_clip.py``. EgoMCQ is evaluated at the end (and every ``--eval_every_epochs``) when
``--egomcq_dir`` is given.

    accelerate launch examples/pretrain_egoclip.py --data_dir egovlp_annotations --video_root ego4d_chunked \
        --chunk_len 300 --model eva02-clip-b16-converted --output_dir out
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import ClassVar

from eva02at_hf.data import load_egoclip
from eva02at_hf.objectives import build_loss, loss_defaults
from eva02at_hf.training import (
    BENCHMARKS,
    PAPER,
    EgoClipStream,
    TrainingLoopConfig,
    build_egoclip_loop,
    load_model_and_processor,
    parse_recipe_args,
    print_summary,
    recipe_default,
    start_run,
)


@dataclass
class PretrainConfig(TrainingLoopConfig):
    SOURCES: ClassVar[dict[str, str]] = {
        **TrainingLoopConfig.SOURCES,
        "num_epochs": PAPER,
        "batch_size": PAPER,
        "learning_rate": PAPER,
        "lr_schedule": PAPER,
        "warmup_epochs": PAPER,
    }

    num_epochs: int = recipe_default("num_epochs", 5)
    batch_size: int = recipe_default("batch_size", 256)
    learning_rate: float = recipe_default("learning_rate", 3e-5)
    lr_schedule: str = recipe_default("lr_schedule", "constant")
    warmup_epochs: float = recipe_default("warmup_epochs", 0.0)
    eval_every_epochs: int = recipe_default("eval_every_epochs", 1)
    metric_for_best: str = recipe_default("metric_for_best", "intra_video_accuracy")


@dataclass
class EgoClipArguments:
    SOURCES: ClassVar[dict[str, str]] = {"num_frames": PAPER, "temperature": PAPER}

    data_dir: str = field(metadata={"help": "Folder with egoclip.csv (and egomcq.json)."})
    video_root: str = field(metadata={"help": "Folder of the Ego4D videos (raw or pre-chunked)."})
    chunk_len: float | None = field(default=None, metadata={"help": "Chunk seconds of a pre-chunked layout."})
    streaming: bool = field(
        default=False,
        metadata={
            "help": "Stream egoclip.csv (EgoClipStream) instead of building the dataset first: blocks of --block_rows "
            "rows (default 1024) shuffled --blocks_per_group at a time."
        },
    )
    egomcq_dir: str | None = field(default=None, metadata={"help": "Folder with egomcq.json (evaluation)."})
    model: str | None = field(
        default=None, metadata={"help": "Converted EVA02-CLIP / saved EVA02-AT folder."}
    )
    preset: str = field(
        default="eva02at-tiny", metadata={"help": "Random-init preset when --model is unset."}
    )
    num_frames: int = field(default=4, metadata={"help": "Frames per clip."})
    temperature: float = field(
        default=loss_defaults("infonce")["temperature"], metadata={"help": "InfoNCE temperature."}
    )


def main(argv: list[str] | None = None) -> dict:
    script, config = parse_recipe_args((EgoClipArguments, PretrainConfig), argv)
    egomcq = BENCHMARKS["egomcq"]
    if script.streaming and config.block_rows is None:
        config.block_rows = 1024
    accelerator = start_run(config, script, metrics=egomcq.metrics if script.egomcq_dir else None)
    with accelerator.main_process_first():
        pairs = (
            EgoClipStream(
                script.data_dir,
                script.video_root,
                script.chunk_len,
                config.block_rows,
                config.blocks_per_group,
                config.seed,
            )
            if script.streaming
            else load_egoclip(script.data_dir, script.video_root, chunk_len=script.chunk_len)
        )
        questions = (
            egomcq.load(script.egomcq_dir, script.video_root, chunk_len=script.chunk_len)
            if script.egomcq_dir
            else None
        )
    if script.model is None:
        accelerator.print(f"no --model given: training a randomly initialised {script.preset} (--preset)")
    model, processor = load_model_and_processor(script.model, script.preset, num_frames=script.num_frames)
    evaluate = (
        egomcq.evaluation(processor, questions, script.num_frames, config.eval_batch_size, config.num_workers)
        if questions is not None
        else None
    )
    criterion = build_loss("infonce", temperature=script.temperature)
    trainer = build_egoclip_loop(
        config, model, processor, pairs, criterion, script.num_frames, evaluate, accelerator
    )
    results = trainer.train({"args": asdict(script)})
    print_summary(accelerator, config, results)
    return results


if __name__ == "__main__":
    main()
