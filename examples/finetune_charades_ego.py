"""Fine-tune EVA02-AT on Charades-Ego with the hard-label SMS loss (EVA02-AT Eq. 17, Sec. V-A).

Recipe defaults: SMS-hard (gamma 0.3, tau 0.1), LAMB, warm-up 1e-6 -> 3e-5 over the first epoch then cosine
decay, 10 epochs, 16 frames. Training uses the trimmed action segments, each paired with its class name; the test
metric is the video-level mAP of class-name retrieval on the untrimmed test videos.

    accelerate launch examples/finetune_charades_ego.py --data_dir CharadesEgo --video_root CharadesEgo_v1_480 \
        --model eva02at-b-pretrained --output_dir out
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import ClassVar

from eva02at_hf.data import charades_ego_class_names, load_charades_ego
from eva02at_hf.objectives import build_loss, loss_defaults
from eva02at_hf.training import (
    BENCHMARKS,
    OURS,
    PAPER,
    TrainingLoopConfig,
    build_charades_ego_loop,
    load_model_and_processor,
    parse_recipe_args,
    print_summary,
    recipe_default,
    start_run,
)


@dataclass
class CharadesConfig(TrainingLoopConfig):
    SOURCES: ClassVar[dict[str, str]] = {
        **TrainingLoopConfig.SOURCES,
        "num_epochs": PAPER,
        "learning_rate": PAPER,
        "optimizer": PAPER,
        "lr_end": OURS,
    }

    num_epochs: int = recipe_default("num_epochs", 10)
    learning_rate: float = recipe_default("learning_rate", 3e-5)
    optimizer: str = recipe_default("optimizer", "lamb")
    lr_end: float = recipe_default("lr_end", 1e-6)
    eval_every_epochs: int = recipe_default("eval_every_epochs", 1)
    metric_for_best: str = recipe_default("metric_for_best", "mAP")


@dataclass
class CharadesArguments:
    SOURCES: ClassVar[dict[str, str]] = {"num_frames": PAPER, "margin": PAPER, "tau": PAPER}

    data_dir: str = field(
        metadata={"help": "Folder with CharadesEgo_v1_*_only1st.csv and Charades_v1_classes.txt."}
    )
    video_root: str = field(metadata={"help": "Folder of the Charades-Ego videos."})
    model: str | None = field(default=None, metadata={"help": "Converted / saved EVA02-AT folder."})
    preset: str = field(
        default="eva02at-tiny", metadata={"help": "Random-init preset when --model is unset."}
    )
    num_frames: int = field(default=16, metadata={"help": "Frames per clip."})
    margin: float = field(
        default=loss_defaults("sms_hard")["margin"], metadata={"help": "SMS-hard margin gamma."}
    )
    tau: float = field(
        default=loss_defaults("sms_hard")["tau"], metadata={"help": "SMS relaxation factor tau."}
    )


def main(argv: list[str] | None = None) -> dict:
    script, config = parse_recipe_args((CharadesArguments, CharadesConfig), argv)
    benchmark = BENCHMARKS["charades_ego"]
    accelerator = start_run(config, script, metrics=benchmark.metrics)
    class_names = charades_ego_class_names(script.data_dir)
    with accelerator.main_process_first():
        train = load_charades_ego(script.data_dir, script.video_root, "train", trimmed=True)
        test = benchmark.load(script.data_dir, script.video_root, "test")  # untrimmed videos
    if script.model is None:
        accelerator.print(f"no --model given: training a randomly initialised {script.preset} (--preset)")
    model, processor = load_model_and_processor(script.model, script.preset, num_frames=script.num_frames)
    evaluate = benchmark.evaluation(
        processor, test, script.num_frames, config.eval_batch_size, config.num_workers
    )
    criterion = build_loss("sms_hard", margin=script.margin, tau=script.tau)
    trainer = build_charades_ego_loop(
        config, model, processor, train, class_names, criterion, script.num_frames, evaluate, accelerator
    )
    results = trainer.train({"args": asdict(script)})
    print_summary(accelerator, config, results)
    return results


if __name__ == "__main__":
    main()
