"""Streaming EgoClip (`EgoClipStream`) against the map-style path (`load_egoclip` + `ClipTextDataset` +
`EpochShuffleSampler` + accelerate's batch sharding): same clips, same order per process, exact mid-epoch resume."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from _helpers import cpu_environment, python_processes, small_synthetic_set
from accelerate.data_loader import BatchSamplerShard, DataLoaderShard
from safetensors.torch import load_file
from torch.utils.data import BatchSampler

from eva02at_hf.data import load_egoclip
from eva02at_hf.training import ClipTextDataset, EgoClipStream, EpochShuffleSampler, block_groups

REPO = Path(__file__).resolve().parents[1]
BLOCK_ROWS, BLOCKS_PER_GROUP, SEED = 3, 2, 7
FIELDS = ("clip_index", "clip_id", "text", "start", "stop", "video_paths", "chunk_starts", "frame_seed")


@pytest.fixture(scope="module")
def egoclip(tmp_path_factory) -> Path:
    return small_synthetic_set(tmp_path_factory.mktemp("egoclip"), ("egoclip",))


def _map_style(root: Path, rank: int, world_size: int, batch_size: int, epoch: int) -> list[dict]:
    """The clips process ``rank`` gets from the map-style path, in order (accelerate's batch sharding)."""
    clips = load_egoclip(root, root / "videos", cache_dir=str(root / "cache"))
    dataset = ClipTextDataset(clips, clips["narration"], np.arange(len(clips)), seed=SEED)
    dataset.set_epoch(epoch)
    sampler = EpochShuffleSampler(len(clips), SEED, block_rows=BLOCK_ROWS, blocks_per_group=BLOCKS_PER_GROUP)
    sampler.set_epoch(epoch)
    batches = BatchSamplerShard(BatchSampler(sampler, batch_size, drop_last=True), world_size, rank)
    return [dataset[i] for batch in batches for i in batch]


def _streamed(
    root: Path, rank: int, world_size: int, batch_size: int, epoch: int, workers: int, skip: int = 0
):
    stream = EgoClipStream(
        root, root / "videos", block_rows=BLOCK_ROWS, blocks_per_group=BLOCKS_PER_GROUP, seed=SEED
    )
    stream.shard(rank, world_size, batch_size)
    loader = DataLoaderShard(
        stream, batch_size=batch_size, num_workers=workers, collate_fn=list
    )  # as the TrainingLoop
    loader.set_epoch(epoch)
    stream.skip_batches(skip)  # a resumed TrainingLoop's order of calls; iterating sets the epoch again
    return [row for batch in loader for row in batch], stream


def test_block_order_is_a_permutation_of_block_shuffled_groups():
    groups = block_groups(10, 3, 2, seed=0, epoch=0)
    assert [len(g) for g in groups] in ([6, 4], [6, 3], [4, 6], [3, 6], [6, 1], [4, 3])
    order = np.concatenate(groups)
    assert sorted(order.tolist()) == list(range(10))
    for group in groups:  # a group is the union of whole blocks
        blocks = {i // 3 for i in group.tolist()}
        assert sorted(group.tolist()) == sorted(i for b in blocks for i in range(3 * b, min(3 * b + 3, 10)))
    assert not np.array_equal(order, np.concatenate(block_groups(10, 3, 2, seed=0, epoch=1)))
    np.testing.assert_array_equal(order, np.concatenate(block_groups(10, 3, 2, seed=0, epoch=0)))


@pytest.mark.parametrize("world_size", [1, 2])
def test_stream_yields_the_map_style_clips_in_order_and_resumes_exactly(egoclip, world_size):
    batch_size, epoch = 2, 1
    num_rows = len(load_egoclip(egoclip, egoclip / "videos", cache_dir=str(egoclip / "cache")))
    seen = []
    for rank in range(world_size):
        expected = _map_style(egoclip, rank, world_size, batch_size, epoch)
        for workers in (0, 2):
            found, stream = _streamed(egoclip, rank, world_size, batch_size, epoch, workers)
            assert (
                len(found)
                == len(stream)
                == len(expected)
                == num_rows // (world_size * batch_size) * batch_size
            )
            assert [{k: row[k] for k in FIELDS} for row in found] == [
                {k: row[k] for k in FIELDS} for row in expected
            ]
        seen += [row["clip_index"] for row in found]
        # Resume after 2 batches of this process: the rest of the epoch, nothing read twice or left out.
        resumed, _ = _streamed(egoclip, rank, world_size, batch_size, epoch, workers=2, skip=2)
        assert [r["clip_index"] for r in resumed] == [r["clip_index"] for r in found[2 * batch_size :]]
    assert len(set(seen)) == len(seen)  # the processes share out distinct clips


def test_unusable_rows_are_masked_not_dropped(egoclip, tmp_path):
    lines = (egoclip / "egoclip.csv").read_text().splitlines()
    fields = lines[1].split("\t")
    fields[0] = "missing_video"
    (tmp_path / "egoclip.csv").write_text("\n".join([lines[0], "\t".join(fields), *lines[2:]]) + "\n")
    stream = EgoClipStream(tmp_path, egoclip / "videos", block_rows=BLOCK_ROWS, seed=SEED)
    rows = {row["clip_index"]: row for row in stream}
    assert len(rows) == len(lines) - 1 and "missing video" in rows[0]["unusable"]
    assert not rows[1].get("unusable")


def _pretrain(root: Path, output_dir: Path, nproc: int, *extra: str) -> None:
    command = [
        *python_processes(nproc),
        str(REPO / "examples" / "pretrain_egoclip.py"),
        *("--data_dir", str(root), "--video_root", str(root / "videos"), "--output_dir", str(output_dir)),
        *(
            "--num_frames",
            "2",
            "--batch_size",
            str(4 // nproc),
            "--num_epochs",
            "1",
            "--learning_rate",
            "1e-3",
        ),
        *("--block_rows", str(BLOCK_ROWS), "--blocks_per_group", str(BLOCKS_PER_GROUP), "--seed", str(SEED)),
        *("--num_workers", "0", "--report_to", "none", *extra),
    ]
    env = cpu_environment(HF_DATASETS_CACHE=str(output_dir.parent / "hf_datasets"))
    subprocess.run(command, check=True, env=env, cwd=output_dir.parent, timeout=300)


@pytest.mark.slow
def test_streamed_pretraining_on_two_processes_matches_the_map_style_path_and_resumes(egoclip, tmp_path):
    _pretrain(egoclip, tmp_path / "map", 2)
    _pretrain(egoclip, tmp_path / "stream", 2, "--streaming", "--checkpointing_steps", "3")
    checkpoint = tmp_path / "stream" / "checkpoints" / "step_3"  # mid-epoch: 3 of 5 updates
    _pretrain(egoclip, tmp_path / "resumed", 2, "--streaming", "--resume_from_checkpoint", str(checkpoint))
    mapped = load_file(tmp_path / "map" / "last" / "model.safetensors")
    streamed = load_file(tmp_path / "stream" / "last" / "model.safetensors")
    resumed = load_file(tmp_path / "resumed" / "last" / "model.safetensors")
    assert json.loads((tmp_path / "stream" / "results.json").read_text())["world_size"] == 2
    # Same batches on each process as the map-style path, hence the same training.
    for name in mapped:
        torch.testing.assert_close(streamed[name], mapped[name], rtol=0, atol=1e-6, msg=name)
        torch.testing.assert_close(resumed[name], streamed[name], rtol=0, atol=1e-6, msg=name)
