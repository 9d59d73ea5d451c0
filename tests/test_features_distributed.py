"""`eva02at extract` split over several processes (gloo on CPU): same folder as one process, resumable per rank."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from _helpers import cpu_environment, extract_argv, extraction_workspace
from safetensors.torch import load_file

from eva02at_hf.apps.cli import EXIT_OK, EXIT_PARTIAL, main
from eva02at_hf.apps.features import load_features, rank_record_name

REPO = Path(__file__).resolve().parents[1]
SHARDS = {"video": 4, "text": 3}  # 8 videos (one undecodable) and 5 texts, 2 per shard

# Rank 1 records its first shard, then dies without a word (as on a lost node); torchrun then stops rank 0.
RANK_1_DIES = """
import os, sys
from eva02at_hf.apps import cli, features
write = features.atomic_write_text
def write_then_die(path, text):
    write(path, text)
    if path.name == features.rank_record_name(1):
        os._exit(17)
features.atomic_write_text = write_then_die
sys.exit(cli.main())
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    texts = ["open the fridge", "cut the onion", "wash the pan", "x", "close the drawer"]
    root = tmp_path_factory.mktemp("distributed")
    return extraction_workspace(root, texts, num_clips=7, max_clips_per_video=1)


def _arguments(workspace: Path, output_dir: Path) -> list[str]:
    return extract_argv(workspace, output_dir, "--shard_size", "2", "--batch_size", "2", "--num_frames", "4")


@pytest.fixture(scope="module")
def reference(workspace: Path) -> Path:
    """One process, one thread (as each launched rank): the folder the launched runs must reproduce."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(_arguments(workspace, workspace / "one")) == EXIT_PARTIAL  # broken.mp4
    finally:
        torch.set_num_threads(threads)
    return workspace / "one"


def _launch(launcher: list[str], arguments: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = cpu_environment(PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, "-m", *launcher, *arguments]
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def _torchrun(*program: str) -> list[str]:
    return ["torch.distributed.run", "--standalone", "--nproc_per_node", "2", *program]


def _accelerate_launch() -> list[str]:
    with socket.socket() as probe:  # a free port: the default 29500 may be taken by another job
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return [
        "accelerate.commands.launch",
        "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port),
        "-m", "eva02at_hf",
    ]  # fmt: skip


def _assert_same_folder(expected: Path, found: Path) -> None:
    for kind in ("video", "text"):
        one, two = load_features(expected, kind), load_features(found, kind)
        assert torch.equal(one.embeddings, two.embeddings), kind
        pd.testing.assert_frame_equal(one.table, two.table)
    for index in ("videos.parquet", "texts.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(expected / index), pd.read_parquet(found / index))
    assert json.loads((found / "failed.json").read_text()) == json.loads(
        (expected / "failed.json").read_text()
    )
    manifest = json.loads((found / "manifest.json").read_text())
    assert manifest == json.loads((expected / "manifest.json").read_text())
    assert not list(found.glob("manifest.rank-*.json"))  # merged and removed
    # No row twice, none missing: the shards' indices are the decodable rows, each once.
    rows = {kind: [] for kind in SHARDS}
    for kind, count in SHARDS.items():
        for shard in range(count):
            rows[kind] += load_file(str(found / f"{kind}-{shard:05d}.safetensors"))["indices"].tolist()
    assert rows == {"video": [0, 1, 2, 3, 4, 5, 6], "text": [0, 1, 2, 3, 4]}  # row 7 is broken.mp4


def test_two_processes_make_the_folder_of_one(
    workspace: Path, reference: Path, tmp_path: Path, capsys
) -> None:
    """videos.parquet lists broken.mp4 last (sorted names): row 7, in the last video shard."""
    launched = _launch(_torchrun("-m", "eva02at_hf"), _arguments(workspace, tmp_path / "two"), tmp_path)
    assert "exitcode  : 3" in launched.stderr  # partial success on both ranks (broken.mp4)
    assert "embedded 7/8 videos and 5 texts" in launched.stdout
    assert launched.stdout.count("embedded") == 1  # rank 0 reports for the run
    _assert_same_folder(reference, tmp_path / "two")

    hits = {}
    for name, folder in (("one", reference), ("two", tmp_path / "two")):
        output = tmp_path / f"{name}.json"
        command = ["search", "--features", str(folder), "--query", "cut the onion", "--top_k", "7"]
        assert main([*command, "--output", str(output)]) == EXIT_OK
        hits[name] = json.loads(output.read_text())
    capsys.readouterr()
    assert hits["one"] == hits["two"] and len(hits["one"][0]["hits"]) == 7


def test_a_rank_that_dies_is_completed_by_a_rerun(workspace: Path, reference: Path, tmp_path: Path) -> None:
    (tmp_path / "rank_1_dies.py").write_text(RANK_1_DIES)
    out = tmp_path / "features"
    died = _launch(_torchrun(str(tmp_path / "rank_1_dies.py")), _arguments(workspace, out), tmp_path)
    assert died.returncode != 0 and "exitcode  : 17" in died.stderr, died.stderr[:3000]
    assert not (out / "videos.parquet").exists()  # the run did not finish
    # Rank 1 was dealt video shards 1 and 3 (round-robin over 0..3) and recorded the first before dying.
    record = json.loads((out / rank_record_name(1)).read_text())
    assert list(record["shards"]["video"]) == ["1"] and record["shards"]["text"] == {}
    recorded = {(kind, int(shard)) for kind in SHARDS for shard in record["shards"][kind]}
    manifest = json.loads((out / "manifest.json").read_text())
    recorded |= {(kind, int(shard)) for kind in SHARDS for shard in manifest["shards"][kind]}
    kept = {shard: (out / f"{shard[0]}-{shard[1]:05d}.safetensors").stat().st_mtime_ns for shard in recorded}

    rerun = _launch(_accelerate_launch(), _arguments(workspace, out), tmp_path)
    assert "exitcode  : 3" in rerun.stderr, rerun.stderr[-3000:]
    counts = re.search(r"\((\d+) shards computed, (\d+) reused from an earlier run\)", rerun.stdout)
    assert counts is not None, rerun.stdout
    assert (int(counts[1]), int(counts[2])) == (sum(SHARDS.values()) - len(recorded), len(recorded))
    assert {s: (out / f"{s[0]}-{s[1]:05d}.safetensors").stat().st_mtime_ns for s in recorded} == kept
    _assert_same_folder(reference, out)


def test_records_of_dead_ranks_are_folded_on_resume(
    workspace: Path, reference: Path, tmp_path: Path, capsys
) -> None:
    """In one process: a folder whose rank records were never merged (rank 0 died first) resumes from them."""
    out = tmp_path / "features"
    shutil.copytree(reference, out)
    for index in ("videos.parquet", "texts.parquet", "failed.json"):
        (out / index).unlink()
    manifest = json.loads((out / "manifest.json").read_text())
    orphan = {"version": manifest["version"], "fingerprint": manifest["fingerprint"]}
    orphan["shards"] = {"video": {"3": manifest["shards"]["video"].pop("3")}, "text": {}}
    (out / rank_record_name(1)).write_text(json.dumps(orphan))
    stale = {**orphan, "fingerprint": {**orphan["fingerprint"], "num_frames": 2}}  # a run with other settings
    stale["shards"] = {"video": {}, "text": {"0": manifest["shards"]["text"].pop("0")}}
    (out / rank_record_name(2)).write_text(json.dumps(stale))
    (out / "manifest.json").write_text(json.dumps(manifest))
    mtime = (out / "video-00003.safetensors").stat().st_mtime_ns

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(_arguments(workspace, out)) == EXIT_PARTIAL
    finally:
        torch.set_num_threads(threads)
    assert "(1 shards computed, 6 reused from an earlier run)" in capsys.readouterr().out
    assert (out / "video-00003.safetensors").stat().st_mtime_ns == mtime  # rank 1's record was used
    _assert_same_folder(reference, out)  # text shard 0 (only in the stale record) was recomputed
