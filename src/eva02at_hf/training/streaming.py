"""EgoClip pre-training pairs streamed from ``egoclip.csv``: no dataset build, one group of blocks in memory, exact
mid-epoch resume, the clips and order of the map-style path.

The map-style path (`load_egoclip` + `ClipTextDataset`) parses and locates all 3.8M rows into an Arrow dataset before
the first step. `EgoClipStream` instead finds the byte offset of every block of ``block_rows`` rows in one pass over
the file, then reads, parses and locates rows as training reaches them, in the block-shuffled order of
`block_groups` (`EpochShuffleSampler` with the same ``block_rows`` gives the map-style path this order).
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
from torch.utils.data import IterableDataset, get_worker_info

from ..data._common import BadRow
from ..data.ego4d import EGOCLIP_FILE, EgoClipBuilder, _egoclip_id
from .data import block_groups, example_seed

logger = logging.getLogger(__name__)


def block_offsets(path: str, block_rows: int) -> tuple[list[str], list[int], int]:
    """The header fields, the byte offset of the first row of every block of ``block_rows`` rows plus the file size,
    and the number of rows of the CSV / TSV ``path`` (one row per line)."""
    offsets, num_rows = [], 0
    with open(path, "rb") as handle:
        header = handle.readline().decode("utf-8")
        position = handle.tell()
        for line in handle:
            if line.strip():
                if num_rows % block_rows == 0:
                    offsets.append(position)
                num_rows += 1
            position += len(line)
    return header, offsets + [position], num_rows


class EgoClipStream(IterableDataset):
    """EgoClip pairs (``<data_dir>/egoclip.csv``) as a stream of `ClipTextDataset` items in block-shuffled order.

    Item fields are those of `ClipTextDataset` over `load_egoclip` rows (``clip_index`` is the row number,
    ``text`` the narration, ``frame_seed`` from ``(seed, epoch, row)``), so with no bad rows the stream yields what
    the map-style path yields. A row that is malformed or whose video is missing is not dropped (the epoch length
    is fixed before reading it) but yielded with ``unusable`` set to the reason: `TrainingCollator` masks it like an
    undecodable clip.

    Sharding (`shard`): global batch k is positions ``[k W B, (k + 1) W B)`` of the epoch's order; process r takes
    its slice of B (as accelerate shards a map-style loader's batches), and DataLoader worker w of K takes the
    process's batches w, w + K, ..., which the DataLoader interleaves back in order: the clips and their order do
    not depend on the number of workers, and the global batches not on the number of processes. Each worker reads
    only the groups holding its clips and decodes only its own. `skip_batches` resumes inside an epoch without
    reading the groups already consumed.

    Args:
        data_dir, video_root, chunk_len, ext: as `load_egoclip`.
        block_rows: rows per block (consecutive rows of the file).
        blocks_per_group: blocks shuffled together; one group's rows are held in memory per worker.
        seed: the run's seed.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike,
        video_root: str | os.PathLike,
        chunk_len: float | None = None,
        block_rows: int = 1024,
        blocks_per_group: int = 64,
        seed: int = 0,
        ext: str | None = None,
    ) -> None:
        self.path = os.path.join(os.fspath(data_dir), EGOCLIP_FILE)
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"{EGOCLIP_FILE} not found in data_dir {data_dir}")
        self._builder_kwargs = {
            "data_dir": os.fspath(data_dir),
            "video_root": os.fspath(video_root),
            "chunk_len": chunk_len,
            "ext": ext,
        }
        EgoClipBuilder(**self._builder_kwargs)._open_rows(self.path)  # checks the columns, naming the file
        self.header, self.offsets, self.num_rows = block_offsets(self.path, block_rows)
        self.block_rows, self.blocks_per_group, self.seed = block_rows, blocks_per_group, seed
        self.rank, self.world_size, self.batch_size = 0, 1, 1
        self.epoch, self.start_batch = 0, 0

    def shard(self, rank: int, world_size: int, batch_size: int) -> None:
        """Stream the share of process ``rank`` of ``world_size`` in batches of ``batch_size``."""
        self.rank, self.world_size, self.batch_size = rank, world_size, batch_size

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch, starting at its first batch unless it is the current one (accelerate's loaders set the
        epoch again when iteration starts: a `skip_batches` position must survive that)."""
        if epoch != self.epoch:
            self.epoch, self.start_batch = epoch, 0

    def skip_batches(self, num_batches: int) -> None:
        """Start the epoch after this process's first ``num_batches`` batches (those of every process are skipped)."""
        self.start_batch = num_batches

    @property
    def batches_per_epoch(self) -> int:
        """Batches per process per epoch (the rows past the last full global batch are left out)."""
        return self.num_rows // (self.world_size * self.batch_size)

    def __len__(self) -> int:
        return self.batches_per_epoch * self.batch_size

    def _read_rows(self, indices: np.ndarray) -> dict[int, dict[str, str]]:
        """Raw rows (column -> text) number ``indices``, read block by block (only those rows are parsed)."""
        fields = next(csv.reader([self.header], delimiter="\t"))
        wanted = set(indices.tolist())
        rows = {}
        with open(self.path, "rb") as handle:
            for block in sorted({i // self.block_rows for i in wanted}):
                handle.seek(self.offsets[block])
                text = handle.read(self.offsets[block + 1] - self.offsets[block]).decode("utf-8")
                lines = [line for line in text.splitlines() if line.strip()]
                expected = min(self.block_rows, self.num_rows - block * self.block_rows)
                if len(lines) != expected:
                    raise ValueError(
                        f"{self.path}: block {block} holds {len(lines)} rows, expected {expected}"
                    )
                first = block * self.block_rows
                numbers = [first + i for i in range(len(lines)) if first + i in wanted]
                parsed = csv.reader((lines[n - first] for n in numbers), delimiter="\t")
                rows.update(
                    (n, dict(zip(fields, values, strict=False)))
                    for n, values in zip(numbers, parsed, strict=True)
                )
        return rows

    def _example(
        self, builder: EgoClipBuilder, layout: Any, index: int, row: dict[str, str]
    ) -> dict[str, Any]:
        item = {
            "clip_index": index,
            "sentence_index": index,
            "frame_seed": example_seed(self.seed, self.epoch, index),
        }
        try:
            example = builder._parse_row(index, row)
            source = builder.locate(layout, [example["video_uid"]], example["start"], example["stop"])
        except BadRow as bad:
            logger.warning("%s: row %s (%s) is unusable: %s", self.path, index + 2, _egoclip_id(row), bad)
            return {
                **item,
                "text": "",
                "video_paths": [],
                "chunk_starts": [],
                "start": 0.0,
                "stop": 0.0,
                "unusable": str(bad),
            }
        return {
            **example,
            "video_paths": source.paths,
            "chunk_starts": source.chunk_starts,
            **item,
            "text": example["narration"],
        }

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        builder = EgoClipBuilder(**self._builder_kwargs)
        layout = builder.video_layout()
        global_batch = self.world_size * self.batch_size
        end = self.batches_per_epoch * global_batch
        first = 0
        for group in block_groups(
            self.num_rows, self.block_rows, self.blocks_per_group, self.seed, self.epoch
        ):
            positions = np.arange(first, first + len(group))
            first += len(group)
            batch = positions // global_batch
            mine = (
                (positions < end)
                & ((positions % global_batch) // self.batch_size == self.rank)
                & (batch >= self.start_batch)
                & ((batch - self.start_batch) % num_workers == worker)
            )
            if not mine.any():
                continue
            indices = group[mine]
            rows = self._read_rows(indices)
            for index in indices.tolist():
                yield self._example(builder, layout, index, rows[index])
