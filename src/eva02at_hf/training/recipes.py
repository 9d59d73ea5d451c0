"""The EK-100 MIR fine-tuning recipe (EVA02-AT Fig. 4) assembled from the library's parts, shared by
`examples/finetune_ek100.py`, the quickstart and the synthetic ablation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from accelerate import Accelerator

from ..objectives import HardMiningSampler, RetrievalLoss, RetrievalObjective
from .benchmarks import BENCHMARKS, mir_data
from .data import ClipTextDataset, EK100Split, TrainingCollator
from .loop import TrainingLoop, TrainingLoopConfig


def ek100_evaluator(
    processor: Any, test: EK100Split, num_frames: int, batch_size: int = 16, num_workers: int = 0
) -> Callable[[torch.nn.Module, Accelerator], dict[str, float]]:
    """``evaluate(model, accelerator)``: EK-100 MIR mAP / nDCG (%) of a model on the ``test`` split."""
    return BENCHMARKS["ek100_mir"].evaluation(processor, mir_data(test), num_frames, batch_size, num_workers)


def build_ek100_loop(
    config: TrainingLoopConfig,
    model: torch.nn.Module,
    processor: Any,
    train: EK100Split,
    criterion: RetrievalLoss,
    num_frames: int,
    epsilon: float = 0.1,
    evaluate: Callable[[torch.nn.Module, Accelerator], dict[str, float]] | None = None,
    accelerator: Accelerator | None = None,
) -> TrainingLoop:
    """A `TrainingLoop` for EK-100 MIR: each clip's text is hard-mined among sentences with c_ij > ``epsilon``,
    frames are sampled one per segment at random, clips get the config's random-resized crop, and ``criterion`` sees the global batch with its rebuilt
    B x B relevancy."""
    dataset = ClipTextDataset(
        train.clips, train.sentences, HardMiningSampler(train.relevancy, epsilon), seed=config.seed
    )
    collator = TrainingCollator(
        processor,
        num_frames,
        sampling="segment_random",
        crop_scale=config.train_crop_scale,
        keep_columns=("clip_index", "sentence_index"),
    )
    objective = RetrievalObjective(criterion, train.relevancy)
    return TrainingLoop(
        config, model, processor, dataset, collator, objective, evaluate, accelerator=accelerator
    )
