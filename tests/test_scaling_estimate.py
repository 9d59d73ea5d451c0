"""benchmarks/scaling_estimate.py (docs/scaling.md): its FLOP, time and memory arithmetic, checked by hand."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import scaling_estimate as scaling  # noqa: E402
from _common import forward_flops  # noqa: E402

from eva02at_hf import EVA02ATConfig  # noqa: E402

GPU = scaling.GPUS["h100-sxm"]


def test_vision_flops_match_the_matmul_count() -> None:
    """Patch embedding, then per layer q/k/v, output projection, SwiGLU (3 matmuls) and QK^T, AV: 2 FLOPs per MAC."""
    config = EVA02ATConfig.from_preset("eva02at-b").vision_config
    frames, patches = 4, (224 // 16) ** 2
    tokens, width, ffn = 1 + frames * patches, 768, 2048
    per_layer = 2 * tokens * width * (3 * width + width + 3 * ffn) + 2 * 2 * tokens**2 * width
    expected = 2 * frames * patches * 3 * 16**2 * width + 12 * per_layer
    assert forward_flops(config, 1, frames) == expected == 156_988_772_352


def test_training_costs_three_forwards_and_scales_linearly() -> None:
    job = scaling.Workload("job", clips=1e12, num_frames=4, batch_per_gpu=100_000, training=True)
    forward = scaling.clip_forward_flops("eva02at-tiny", 4, True)
    # A batch large enough for the gradient all-reduce to hide behind the compute (the tiny model has few weights).
    rows = [scaling.estimate("eva02at-tiny", job, n, GPU, 0.5, decode_cores_per_gpu=1e6) for n in (1, 8)]
    for row in rows:
        assert row["activation ckpt"] == "no" and row["bound by"] == "GPU"
        assert row["GFLOP/clip"] == round(3 * forward / 1e9, 1)
    hours = job.clips * 3 * forward / (GPU.bf16_dense_flops * 0.5) / 3600
    assert rows[0]["hours"] == pytest.approx(hours, rel=1e-2)
    assert rows[1]["hours"] == pytest.approx(hours / 8, rel=1e-2)
    parameters, _ = scaling.parameter_count("eva02at-tiny")
    ddp, zero3 = rows[1]["DDP GB/GPU"], rows[1]["ZeRO-3 GB/GPU"]
    assert ddp - zero3 == pytest.approx(16 * parameters * (1 - 1 / 8) / 1e9, abs=0.11)


def test_few_decode_cores_make_the_loader_the_bottleneck() -> None:
    job = scaling.Workload("job", clips=1e8, num_frames=16, batch_per_gpu=8, training=False)
    row = scaling.estimate("eva02at-tiny", job, 8, GPU, 0.4, decode_cores_per_gpu=2)
    assert row["bound by"] == "decode"
    clips_per_s = 8 * 2 * 22.59  # RESULTS.md section 0: 22.59 clips of 16 frames per second per core
    assert row["decode clips/s"] == round(clips_per_s)
    assert row["hours"] == pytest.approx(job.clips / clips_per_s / 3600, rel=1e-2)
    assert scaling.decode_clips_per_core_s(4) == pytest.approx(4 * 22.59)


def test_activation_checkpointing_when_the_batch_does_not_fit() -> None:
    job = scaling.Workload("job", clips=1e6, num_frames=16, batch_per_gpu=64, training=True)
    row = scaling.estimate("eva02at-b", job, 1, GPU, 0.4, decode_cores_per_gpu=12)
    assert row["activation ckpt"] == "yes"  # 0.7 x 2.61 GB x 64 clips = 117 GB > 72 GB usable
    assert row["GFLOP/clip"] == round(4 * scaling.clip_forward_flops("eva02at-b", 16, True) / 1e9, 1)
    assert row["act. GB/GPU"] == pytest.approx(0.7 * 0.35 * 64, rel=0.05)  # docs/performance.md table
