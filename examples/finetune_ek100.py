"""Fine-tune EVA02-AT on EPIC-KITCHENS-100 multi-instance retrieval with the SMS loss (EVA02-AT Sec. V-A).

Recipe defaults: SMS (gamma 0.6, tau 0.1, lambda = hard-mining epsilon 0.1), 16 frames, batch 64 per GPU,
AdamW, warm-up 1e-6 -> 2e-5 over the first epoch then cosine decay, 100 epochs; EK-100 MIR mAP / nDCG on the test
split every ``--eval_every_epochs`` epochs and at the end. Table V's losses: ``--loss adaptive_mimm|mimm|infonce|
egonce`` (SMS-hard needs hard 0 / 1 labels: it is Charades-Ego's loss, refused here).

    accelerate launch examples/finetune_ek100.py --data_dir annotations/retrieval_annotations \
        --video_root EK100_320p_15sec_30fps_libx264 --chunk_len 15 --model eva02at-b-converted --output_dir out
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

from transformers import HfArgumentParser

from eva02at_hf.hub import BENCHMARKS
from eva02at_hf.training import (
    SOFT_LABEL_LOSSES,
    EK100Split,
    TrainingConfig,
    build_accelerator,
    build_ek100_trainer,
    build_loss,
    check_metric_for_best,
    ek100_evaluator,
    load_model_and_processor,
    print_summary,
)


@dataclass
class EK100Arguments:
    data_dir: str = field(metadata={"help": "Folder with EPIC_100_retrieval_{train,test}[_sentence].csv."})
    video_root: str = field(metadata={"help": "Folder of the videos (raw or pre-chunked)."})
    chunk_len: float | None = field(default=None, metadata={"help": "Chunk seconds of a pre-chunked layout."})
    model: str | None = field(default=None, metadata={"help": "Converted / saved EVA02-AT folder."})
    preset: str = field(
        default="eva02at-tiny", metadata={"help": "Random-init preset when --model is unset."}
    )
    num_frames: int = field(default=16, metadata={"help": "Frames per clip."})
    loss: str = field(
        default="sms",
        metadata={
            "help": "Loss of Table V (EK-100 relevancy is soft: sms_hard is Charades-Ego's).",
            "choices": SOFT_LABEL_LOSSES,
        },
    )
    margin: float | None = field(default=None, metadata={"help": "Loss margin gamma (default: the loss's)."})
    tau: float = field(default=0.1, metadata={"help": "SMS relaxation factor tau."})
    epsilon: float = field(default=0.1, metadata={"help": "Hard-mining threshold epsilon = SMS lambda."})
    temperature: float = field(default=0.05, metadata={"help": "InfoNCE / EgoNCE temperature."})
    zero_shot: bool = field(default=False, metadata={"help": "Also evaluate before training."})


def main(argv: list[str] | None = None) -> dict:
    script, config = HfArgumentParser((EK100Arguments, TrainingConfig)).parse_args_into_dataclasses(argv)
    check_metric_for_best(config, BENCHMARKS["ek100_mir"].metrics)
    accelerator = build_accelerator(config)
    cache = os.path.join(config.output_dir, "cache")
    with accelerator.main_process_first():
        splits = {
            split: EK100Split(script.data_dir, script.video_root, split, cache, chunk_len=script.chunk_len)
            for split in ("train", "test")
        }
    train, test = splits["train"], splits["test"]
    if script.model is None:
        accelerator.print(f"no --model given: training a randomly initialised {script.preset} (--preset)")
    model, processor = load_model_and_processor(script.model, script.preset, num_frames=script.num_frames)

    evaluate = ek100_evaluator(processor, test, script.num_frames, config.eval_batch_size, config.num_workers)
    results = {"args": asdict(script)}
    if script.zero_shot:
        results["zero_shot"] = evaluate(model, accelerator)
    criterion = build_loss(script.loss, script.margin, script.tau, script.epsilon, script.temperature)
    trainer = build_ek100_trainer(
        config, model, processor, train, criterion, script.num_frames, script.epsilon, evaluate, accelerator
    )
    results = trainer.train(results)
    print_summary(accelerator, config, results)
    return results


if __name__ == "__main__":
    main()
