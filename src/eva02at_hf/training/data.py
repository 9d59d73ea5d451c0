"""Training data plumbing: clip-text pairs with resumable randomness, a shape-stable collator, relevancy cache.

Every random choice of an example (its hard-mined positive sentence, its frame offsets) is a function of
``(seed, epoch, clip index)`` only, so a run gives the same batches whatever the number of processes or data
workers, and a resumed run replays exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

import datasets
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from torch.utils.data import Dataset, Sampler

from ..data.collate import ClipBatcher, check_crop_scale, example_seed  # noqa: F401 (check_crop_scale: re-export)
from ..objectives.relevancy import HardMiningSampler

logger = logging.getLogger(__name__)


def block_groups(
    num_rows: int, block_rows: int, blocks_per_group: int, seed: int, epoch: int
) -> list[np.ndarray]:
    """Epoch ``epoch``'s block-shuffled order of ``range(num_rows)``, as groups of row indices (visited in order).

    The rows are cut into blocks of ``block_rows`` consecutive rows; the blocks are permuted (seed ``(seed, epoch)``)
    and taken ``blocks_per_group`` at a time; the rows of a group are permuted together (seed ``(seed, epoch,
    group)``). A stream thus holds one group in memory and reads only its blocks (`EgoClipStream`)."""
    if block_rows < 1 or blocks_per_group < 1:
        raise ValueError(
            f"block_rows and blocks_per_group must be >= 1, got {block_rows}, {blocks_per_group}"
        )
    num_blocks = -(-num_rows // block_rows)
    blocks = np.random.default_rng([seed, epoch]).permutation(num_blocks)
    groups = []
    for group, first in enumerate(range(0, num_blocks, blocks_per_group)):
        rows = np.concatenate(
            [
                np.arange(b * block_rows, min((b + 1) * block_rows, num_rows))
                for b in blocks[first : first + blocks_per_group]
            ]
        )
        groups.append(np.random.default_rng([seed, epoch, group]).permutation(rows))
    return groups


class EpochShuffleSampler(Sampler[int]):
    """A permutation of ``range(num_samples)`` seeded by ``seed + epoch``; `set_epoch` selects the epoch.

    With ``block_rows``, the block-shuffled order of `block_groups` instead (the order `EgoClipStream` streams).
    Accelerate shards its batches across processes and `accelerate.skip_first_batches` resumes inside an epoch.
    """

    def __init__(
        self,
        num_samples: int,
        seed: int = 0,
        shuffle: bool = True,
        block_rows: int | None = None,
        blocks_per_group: int = 1,
    ) -> None:
        self.num_samples, self.seed, self.shuffle, self.epoch = num_samples, seed, shuffle, 0
        self.block_rows, self.blocks_per_group = block_rows, blocks_per_group

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.num_samples))
        if self.block_rows:
            groups = block_groups(
                self.num_samples, self.block_rows, self.blocks_per_group, self.seed, self.epoch
            )
            return iter(np.concatenate(groups).tolist())
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.num_samples, generator=generator).tolist())

    def __len__(self) -> int:
        return self.num_samples


class ClipTextDataset(Dataset):
    """Clip rows of a builder dataset, each paired with a positive sentence.

    Item ``i`` is the clip row plus ``clip_index = i``, ``sentence_index`` (row of ``sentences``), ``text`` and
    ``frame_seed`` (the seed of its frame sampling). The positive is either fixed per clip (``positives`` an
    integer array, e.g. the clip's own narration or action class) or drawn every epoch by a `HardMiningSampler`
    among ``{j : c_ij > epsilon}`` (EVA02-AT Fig. 4).

    Args:
        clips: builder rows (``video_paths``, ``chunk_starts``, ``start``, ``stop``, ...).
        sentences: text of every sentence index.
        positives: (N_clips,) fixed sentence index per clip, or a `HardMiningSampler` over (clips, sentences).
        seed: base seed of the per-example randomness.
    """

    def __init__(
        self,
        clips: datasets.Dataset,
        sentences: Sequence[str],
        positives: np.ndarray | HardMiningSampler,
        seed: int = 0,
    ) -> None:
        num = positives.num_clips if isinstance(positives, HardMiningSampler) else len(positives)
        if num != len(clips):
            raise ValueError(f"`positives` covers {num} clips but `clips` has {len(clips)} rows")
        self.clips, self.sentences, self.positives, self.seed = clips, list(sentences), positives, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict[str, Any]:
        seed = example_seed(self.seed, self.epoch, index)
        if isinstance(self.positives, HardMiningSampler):
            sentence = int(self.positives.sample([index], rng=seed)[0])
        else:
            sentence = int(self.positives[index])
        return {
            **self.clips[index],
            "clip_index": index,
            "sentence_index": sentence,
            "text": self.sentences[sentence],
            "frame_seed": seed,
        }


class TrainingCollator(ClipBatcher):
    """`ClipBatcher` for the training loop and evaluation: batches keep their size (clips that fail to decode are
    counted, logged and masked: ``valid`` False, zero pixels) so every process gathers equal shapes; the text is
    the ``text`` column of `ClipTextDataset` items and rows are named by ``clip_index``.

    A row's frames are sampled with a generator seeded by its ``frame_seed`` (training), and with ``crop_scale``
    every clip gets the train-time random-resized crop seeded by it; without it, the evaluation transform (see
    `ClipBatcher`). Returns ``pixel_values (B, T, 3, H, W)``, ``input_ids``, ``attention_mask``, ``valid (B,)``
    and the ``keep_columns`` of every row.
    """

    def __init__(
        self,
        processor: Any,
        num_frames: int,
        sampling: str = "uniform",
        crop_scale: Sequence[float] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("text_column", "text")
        kwargs.setdefault("id_column", "clip_index")
        kwargs.setdefault("on_error", "mask")
        super().__init__(processor, num_frames, sampling, crop_scale=crop_scale, **kwargs)


def annotation_fingerprint(paths: Sequence[str | os.PathLike], *keys: Sequence[str]) -> str:
    """SHA-256 (first 16 hex digits) of the files' bytes and of extra key sequences (e.g. the clip ids kept)."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            digest.update(hashlib.sha256(handle.read()).digest())
    for key in keys:
        digest.update("\n".join(map(str, key)).encode())
    return digest.hexdigest()[:16]


def cached_relevancy(
    cache_dir: str | os.PathLike,
    name: str,
    fingerprint: str,
    build: Any,
) -> sp.csr_array:
    """Load ``<cache_dir>/<name>-<fingerprint>.npz`` (scipy sparse, no pickle) or ``build()`` and save it.

    ``build`` returns a dense array or scipy sparse matrix; the matrix is stored as float32 CSR.
    """
    path = os.path.join(os.fspath(cache_dir), f"{name}-{fingerprint}.npz")
    if os.path.isfile(path):
        logger.info("loading cached relevancy %s", path)
        return sp.csr_array(sp.load_npz(path))
    matrix = sp.csr_array(build(), dtype=np.float32)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f"{path}.tmp-{os.getpid()}.npz"
    sp.save_npz(temporary, matrix)
    os.replace(temporary, path)
    logger.info("saved relevancy %s (%d x %d, %d non-zeros)", path, *matrix.shape, matrix.nnz)
    return matrix


def class_incidence(class_ids: Sequence[Sequence[int]], num_classes: int) -> sp.csr_array:
    """(N, num_classes) 0/1 CSR matrix, row n = the classes of example n (hard-label relevancy, Eq. 17)."""
    rows = np.repeat(np.arange(len(class_ids)), [len(ids) for ids in class_ids])
    cols = np.asarray([c for ids in class_ids for c in ids], dtype=np.int64)
    data = np.ones(len(cols), dtype=np.float32)
    matrix = sp.csr_array((data, (rows, cols)), shape=(len(class_ids), num_classes))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


class EK100Split:
    """One EK-100 MIR split ready for training or evaluation: ``clips`` (builder rows), ``sentences`` (unique
    narrations), ``relevancy`` (clips x sentences, CSR) and ``clip_sentences`` (each clip's own narration index).

    The relevancy is rebuilt from the verb / noun classes (Eq. 5, cached on disk), except on the test split when
    ``data_dir`` holds the official ``relevancy/caption_relevancy_EPIC_100_retrieval_test.pkl``: then the
    official matrix is used (``relevancy_source == "official"``), as the official evaluation does, and the
    rebuilt one is compared with it in the log. ``num_missing_clips`` counts the clip-file rows the builder
    dropped (no video, malformed): scores over a test split missing clips are not the official protocol's.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike,
        video_root: str | os.PathLike,
        split: str,
        cache_dir: str | os.PathLike,
        datasets_cache_dir: str | None = None,
        **builder_kwargs: Any,
    ) -> None:
        from ..data import (
            clip_sentence_indices,
            compare_relevancy,
            ek100_relevancy,
            load_ek100_mir,
            load_ek100_sentences,
            load_official_relevancy,
        )
        from ..data.ek100 import CLIP_FILE, SENTENCE_FILE

        self.clips = load_ek100_mir(
            data_dir, video_root, split, cache_dir=datasets_cache_dir, **builder_kwargs
        )
        sentences = load_ek100_sentences(data_dir, split)
        self.sentences: list[str] = list(sentences["narration"])
        files = [
            os.path.join(os.fspath(data_dir), name.format(split=split)) for name in (CLIP_FILE, SENTENCE_FILE)
        ]
        fingerprint = annotation_fingerprint(files, self.clips["narration_id"])
        self.relevancy = cached_relevancy(
            cache_dir,
            f"relevancy-{split}",
            fingerprint,
            lambda: ek100_relevancy(self.clips, sentences, return_sparse=True),
        )
        self.clip_sentences = clip_sentence_indices(self.clips, sentences)
        self.relevancy_source = "rebuilt"
        official = (
            load_official_relevancy(self.clips, sentences, data_dir, split) if split == "test" else None
        )
        if official is not None:
            compare_relevancy(self.relevancy, official, self.clips, sentences)
            self.relevancy, self.relevancy_source = sp.csr_array(official), "official"
        num_rows = len(pd.read_csv(files[0], usecols=["narration_id"], dtype=str))
        self.num_missing_clips = num_rows - len(self.clips)
        if self.num_missing_clips:
            logger.warning(
                f"EK-100 {split}: {self.num_missing_clips} of {num_rows} clips of {files[0]} were dropped (see the "
                "builder's bad-row report); results on this split are not over the full official set."
            )
