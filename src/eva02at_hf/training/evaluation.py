"""Distributed evaluation: embed clips and texts on every process, gather with `gather_for_metrics`, score.

* EK-100 MIR: (clips x sentences) similarity against the soft relevancy -> `ek100_mir` (mAP / nDCG in %).
* EgoMCQ: each question's text against its candidate clips -> `egomcq_accuracy` (inter / intra video).
* Charades-Ego: each video against the class-name prompts -> `charades_ego_map`.

Clips that cannot be decoded get a zero embedding (similarity 0, i.e. scored as misses), so the matrices keep
the shape the metrics expect; every evaluation returns their count as ``num_skipped`` (EgoMCQ: the questions
left out because a choice could not be decoded).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, NamedTuple

import datasets
import numpy as np
import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from ..data import MultipleChoiceCollator
from ..metrics import charades_ego_map, egomcq_accuracy, ek100_mir
from .data import TrainingCollator
from .embedding import embed_texts, embed_videos

logger = logging.getLogger(__name__)


def _loader(dataset: Any, batch_size: int, collate_fn: Any, num_workers: int) -> DataLoader:
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_fn, num_workers=num_workers
    )


class ClipEmbeddings(NamedTuple):
    """Video embeddings of a clip table and how many of its clips could not be decoded (zero rows)."""

    embeddings: torch.Tensor
    num_skipped: int


def embed_clips(
    model: torch.nn.Module,
    processor: Any,
    clips: datasets.Dataset,
    accelerator: Accelerator,
    num_frames: int,
    batch_size: int = 16,
    num_workers: int = 0,
    desc: str = "embedding clips",
) -> ClipEmbeddings:
    """(N_clips, D) L2-normalised video embeddings of ``clips`` (uniform frame sampling), on every process, with
    zeros for the clips that could not be decoded, and their count over all processes."""
    batcher = TrainingCollator(processor, num_frames=num_frames, text_column=None, id_column="narration_id")
    loader = accelerator.prepare_data_loader(_loader(clips, batch_size, batcher, num_workers))
    embeddings, valid, _ = embed_videos(model, loader, accelerator, desc)
    num_skipped = int((~valid).sum())
    if num_skipped:
        logger.warning(
            "%s: %d of %d clips could not be decoded and score as misses", desc, num_skipped, len(clips)
        )
    return ClipEmbeddings(embeddings, num_skipped)


def evaluate_ek100_mir(
    model: torch.nn.Module,
    processor: Any,
    clips: datasets.Dataset,
    sentences: Sequence[str],
    relevancy: Any,
    accelerator: Accelerator,
    num_frames: int,
    batch_size: int = 16,
    num_workers: int = 0,
) -> dict[str, float]:
    """EK-100 MIR mAP / nDCG (%) of ``model`` on ``clips`` x ``sentences`` with (clips, sentences) ``relevancy``,
    and ``num_skipped`` (undecodable clips, scored as misses)."""
    videos, num_skipped = embed_clips(
        model, processor, clips, accelerator, num_frames, batch_size, num_workers
    )
    texts = embed_texts(model, processor, sentences, accelerator)
    dense = relevancy.toarray() if hasattr(relevancy, "toarray") else np.asarray(relevancy)
    return {**ek100_mir((videos @ texts.T).numpy(), dense), "num_skipped": num_skipped}


def evaluate_egomcq(
    model: torch.nn.Module,
    processor: Any,
    questions: datasets.Dataset,
    accelerator: Accelerator,
    num_frames: int,
    batch_size: int = 4,
    num_workers: int = 0,
) -> dict[str, float]:
    """EgoMCQ inter- / intra-video accuracy (%); questions with an undecodable choice are skipped and counted."""
    batcher = MultipleChoiceCollator(processor, num_frames=num_frames, on_error="mask")
    loader = accelerator.prepare_data_loader(_loader(questions, batch_size, batcher, num_workers))
    choices, answered, _ = embed_videos(model, loader, accelerator, "EgoMCQ")
    queries = embed_texts(model, processor, questions["query"], accelerator)
    scores = torch.einsum("qcd,qd->qc", choices, queries)[answered]
    keep = answered.numpy()
    results = egomcq_accuracy(
        scores.numpy(), np.asarray(questions["answer"])[keep], np.asarray(questions["types"])[keep]
    )
    results["num_skipped"] = int((~answered).sum())
    return results


def evaluate_charades_ego(
    model: torch.nn.Module,
    processor: Any,
    videos: datasets.Dataset,
    class_names: Sequence[str],
    accelerator: Accelerator,
    num_frames: int,
    batch_size: int = 16,
    num_workers: int = 0,
) -> dict[str, float]:
    """Charades-Ego video-level mAP (%): every video scored against every class-name prompt; ``num_skipped``
    counts the undecodable videos (scored as misses)."""
    video_embeds, num_skipped = embed_clips(
        model, processor, videos, accelerator, num_frames, batch_size, num_workers, desc="Charades-Ego"
    )
    class_embeds = embed_texts(model, processor, class_names, accelerator)
    targets = np.zeros((len(videos), len(class_names)), dtype=np.int64)
    for row, ids in enumerate(videos["class_ids"]):
        targets[row, ids] = 1
    return {**charades_ego_map((video_embeds @ class_embeds.T).numpy(), targets), "num_skipped": num_skipped}
