"""The paper's three training recipes assembled from the library's parts: one `build_*_loop` per recipe.

The example scripts are thin wrappers over these (parse flags, load the data and the model, build the loop,
`train`), and the quickstart and the synthetic ablation reuse `build_ek100_loop`, so each recipe has one home:

* `build_ek100_loop`: EK-100 MIR fine-tuning (Fig. 4), hard-mined positives c_ij > epsilon, soft relevancy.
* `build_charades_ego_loop`: Charades-Ego fine-tuning, each trimmed segment paired with its class name.
* `build_egoclip_loop`: EgoClip pre-training, each clip paired with its own narration.

All three train on one-per-segment random frames with the config's random-resized crop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from datasets import Dataset

from ..objectives import HardMiningSampler, RetrievalLoss, RetrievalObjective
from .benchmarks import BENCHMARKS, mir_data
from .data import ClipTextDataset, EK100Split, TrainingCollator, class_incidence
from .loop import TrainingLoop, TrainingLoopConfig
from .streaming import EgoClipStream

Evaluate = Callable[[torch.nn.Module, Accelerator], dict[str, float]]


def ek100_evaluator(
    processor: Any, test: EK100Split, num_frames: int, batch_size: int = 16, num_workers: int = 0
) -> Evaluate:
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
    evaluate: Evaluate | None = None,
    accelerator: Accelerator | None = None,
) -> TrainingLoop:
    """A `TrainingLoop` for EK-100 MIR: each clip's text is hard-mined among sentences with c_ij > ``epsilon``, and
    ``criterion`` sees the global batch with its rebuilt B x B relevancy."""
    dataset = ClipTextDataset(
        train.clips, train.sentences, HardMiningSampler(train.relevancy, epsilon), seed=config.seed
    )
    objective = RetrievalObjective(criterion, train.relevancy)
    return _training_loop(config, model, processor, dataset, objective, num_frames, evaluate, accelerator)


def build_charades_ego_loop(
    config: TrainingLoopConfig,
    model: torch.nn.Module,
    processor: Any,
    train: Dataset,
    class_names: list[str],
    criterion: RetrievalLoss,
    num_frames: int,
    evaluate: Evaluate | None = None,
    accelerator: Accelerator | None = None,
) -> TrainingLoop:
    """A `TrainingLoop` for Charades-Ego: each trimmed segment of ``train`` (`load_charades_ego(...,
    trimmed=True)`) is paired with the name of its (first) class; ``criterion`` sees the hard 0 / 1 relevancy of
    the batch, 1 where a clip's classes include the caption's (a clip can hold several)."""
    dataset = ClipTextDataset(train, class_names, [ids[0] for ids in train["class_ids"]], seed=config.seed)
    objective = RetrievalObjective(criterion, class_incidence(train["class_ids"], len(class_names)))
    return _training_loop(config, model, processor, dataset, objective, num_frames, evaluate, accelerator)


def build_egoclip_loop(
    config: TrainingLoopConfig,
    model: torch.nn.Module,
    processor: Any,
    pairs: Dataset | EgoClipStream,
    criterion: RetrievalLoss,
    num_frames: int,
    evaluate: Evaluate | None = None,
    accelerator: Accelerator | None = None,
) -> TrainingLoop:
    """A `TrainingLoop` for EgoClip pre-training: each clip of ``pairs`` (`load_egoclip`, or an `EgoClipStream`
    that yields the pairs itself) with its own narration; ``criterion`` uses no relevancy (InfoNCE)."""
    dataset = (
        pairs
        if isinstance(pairs, EgoClipStream)
        else ClipTextDataset(pairs, pairs["narration"], np.arange(len(pairs)), seed=config.seed)
    )
    return _training_loop(
        config, model, processor, dataset, RetrievalObjective(criterion), num_frames, evaluate, accelerator
    )


def _training_loop(
    config: TrainingLoopConfig,
    model: torch.nn.Module,
    processor: Any,
    dataset: Any,
    objective: RetrievalObjective,
    num_frames: int,
    evaluate: Evaluate | None,
    accelerator: Accelerator | None,
) -> TrainingLoop:
    """The loop over ``dataset`` with the recipes' collator: one random frame per segment, random-resized crop."""
    collator = TrainingCollator(
        processor,
        num_frames,
        sampling="segment_random",
        crop_scale=config.train_crop_scale,
        keep_columns=("clip_index", "sentence_index"),
    )
    return TrainingLoop(
        config, model, processor, dataset, collator, objective, evaluate, accelerator=accelerator
    )
