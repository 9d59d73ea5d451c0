"""Embedding with the model: `embed_videos`, the package's one video-embedding routine, and `embed_texts`.

Evaluation (`embed_clips`, `evaluate_ek100_mir`, `evaluate_egomcq`, `evaluate_charades_ego`), `eva02at extract`
and `eva02at search` (`eva02at_hf.apps.features.FeatureExtractor`) embed clips here; the clips come batched by
`eva02at_hf.data.collate.ClipBatcher`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch.utils.data import DataLoader
from tqdm.auto import tqdm


class VideoEmbeddings(NamedTuple):
    """Row-aligned output of `embed_videos`: ``embeddings`` ``(N, D)`` (``(N, C, D)`` for rows of C choices),
    float32, L2-normalised, zero for the rows whose clips could not be decoded; ``valid (N,)``; ``errors`` (each
    row's decode error, ``None`` when decoded; all ``None`` when the batches carry no ``errors``)."""

    embeddings: torch.Tensor
    valid: torch.Tensor
    errors: list[str | None]


@torch.no_grad()
def embed_videos(
    model: torch.nn.Module,
    batches: Iterable[Mapping[str, Any]],
    accelerator: Accelerator | None = None,
    desc: str = "embedding clips",
    progress: bool = True,
) -> VideoEmbeddings:
    """L2-normalised video embeddings of every row of ``batches``, in order.

    Each batch holds ``pixel_values`` ``(B, T, 3, H, W)`` or ``(B, C, T, 3, H, W)`` (all B x C clips go through
    the model in one forward), and optionally ``valid (B,)`` (rows whose clip could not be decoded, embedded as
    zeros) and ``errors`` (B decode errors). It owns the forward pass (the model in eval mode; pixels moved to its
    device and dtype, under ``accelerator.autocast()``), the normalisation, the zeroing of invalid rows, a tqdm
    progress bar (``progress``; on the local main process only) and, with an ``accelerator`` (whose
    ``prepare_data_loader`` sharded ``batches``), the gather of every process's rows in dataset order
    (`gather_for_metrics`). Decoding and its errors are the batcher's; checking the embeddings for non-finite
    values is the caller's (extraction refuses to write them).
    """
    network = (accelerator.unwrap_model(model) if accelerator is not None else model).eval()
    parameter = next(network.parameters())
    device = accelerator.device if accelerator is not None else parameter.device
    autocast = accelerator.autocast if accelerator is not None else contextlib.nullcontext
    show = progress and (accelerator is None or accelerator.is_local_main_process)
    embeddings, valid, errors = [], [], []
    for batch in tqdm(batches, desc=desc, disable=not show, leave=False):
        pixel_values = batch["pixel_values"]
        rows = pixel_values.shape[:-4]
        with autocast():
            embeds = network.get_video_features(
                pixel_values.flatten(0, -5).to(device, parameter.dtype)
            ).pooler_output
            embeds = F.normalize(embeds.float(), dim=-1).unflatten(0, rows)
        decoded = batch.get("valid", torch.ones(rows[0], dtype=torch.bool)).to(embeds.device)
        embeds = embeds * decoded.view(-1, *[1] * (embeds.dim() - 1))
        batch_errors = list(batch.get("errors", [None] * rows[0]))
        if accelerator is not None:
            embeds, decoded = accelerator.gather_for_metrics(embeds), accelerator.gather_for_metrics(decoded)
            if "errors" in batch:
                batch_errors = accelerator.gather_for_metrics(batch_errors, use_gather_object=True)
            else:
                batch_errors = [None] * len(decoded)
        embeddings.append(embeds.cpu())
        valid.append(decoded.cpu())
        errors.extend(batch_errors)
    if not embeddings:
        return VideoEmbeddings(
            torch.empty(0, network.config.projection_dim), torch.zeros(0, dtype=torch.bool), []
        )
    return VideoEmbeddings(torch.cat(embeddings), torch.cat(valid), errors)


@torch.no_grad()
def embed_texts(
    model: torch.nn.Module,
    processor: Any,
    texts: Sequence[str],
    accelerator: Accelerator | None = None,
    batch_size: int = 64,
) -> torch.Tensor:
    """(N_texts, D) float32 L2-normalised text embeddings; with an ``accelerator``, split over its processes and
    gathered in order."""
    loader: Iterable[list[str]] = DataLoader(
        list(texts), batch_size=batch_size, shuffle=False, collate_fn=list
    )
    if accelerator is not None:
        loader = accelerator.prepare_data_loader(loader)
    network = (accelerator.unwrap_model(model) if accelerator is not None else model).eval()
    device = accelerator.device if accelerator is not None else next(network.parameters()).device
    autocast = accelerator.autocast if accelerator is not None else contextlib.nullcontext
    embeddings = []
    for chunk in loader:
        tokens = processor(text=chunk, return_tensors="pt").to(device)
        with autocast():
            embeds = network.get_text_features(tokens["input_ids"], tokens["attention_mask"]).pooler_output
            embeds = F.normalize(embeds.float(), dim=-1)
        embeddings.append(accelerator.gather_for_metrics(embeds) if accelerator is not None else embeds)
    if not embeddings:
        return torch.empty(0, network.config.projection_dim)
    return torch.cat(embeddings).cpu()
