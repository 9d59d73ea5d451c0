"""Time and memory to pre-train on EgoClip, fine-tune on EK-100 and extract Ego4D features on 1, 8 and 64 GPUs.

Derived, not measured on GPUs (none has been lent to this project; RESULTS.md section 5). Inputs:

* FLOPs per clip, counted now by `FlopCounterMode` on meta-device models (vision tower as in `bench_vision_forward`,
  plus the text tower on 77 tokens); a training step costs 3 forwards (forward + backward), 4 with activation
  checkpointing (one more forward).
* Activation memory per clip from `eva02at_hf.utils.memory.estimate_activation_memory` (float32, SDPA), times the
  0.7 that bf16 autocast holds of it (docs/performance.md); model states at 16 bytes per parameter (float32
  weights and gradients, two AdamW moments), replicated (DDP), partly sharded (ZeRO-2) or sharded (ZeRO-3 / FSDP).
* Clip decoding: `read_clip` decoded 22.59 clips/s of 16 frames (RESULTS.md section 0; 568 x 320 H.264, one
  process), taken as per CPU core and as proportional to the frames per clip (one seek + decode per frame).
* The GPU's dense bf16 peak and an assumed model FLOP utilisation (MFU).

    python benchmarks/scaling_estimate.py                       # H100 SXM, MFU 0.4, 12 decode cores per GPU
    python benchmarks/scaling_estimate.py --gpu a100-sxm --mfu 0.3 --decode_cores_per_gpu 8 --presets eva02at-l

Each workload runs at the larger of its compute time and its decode time; the table says which one binds.
"""

from __future__ import annotations

import argparse
import functools
import math
from dataclasses import dataclass

import torch
from _common import forward_flops, print_table
from torch.utils.flop_counter import FlopCounterMode

from eva02at_hf import EVA02ATConfig, EVA02ATForVideoTextRetrieval
from eva02at_hf.utils.memory import estimate_activation_memory

GB = 1e9


@dataclass(frozen=True)
class GPU:
    name: str
    bf16_dense_flops: float  # datasheet peak without sparsity
    memory_gb: float
    intra_node_gb_s: float  # per-GPU all-reduce bandwidth inside a node (NVLink)
    inter_node_gb_s: float  # per-GPU bandwidth between nodes (InfiniBand / RoCE)


GPUS = {
    "h100-sxm": GPU("NVIDIA H100 SXM 80GB", 989.4e12, 80, 450, 50),
    "h200-sxm": GPU("NVIDIA H200 SXM 141GB", 989.4e12, 141, 450, 50),
    "a100-sxm": GPU("NVIDIA A100 SXM 80GB", 312e12, 80, 300, 25),
    # 1,457 TFLOPS FP8 with sparsity on the datasheet -> 364 dense bf16; PCIe only, no NVLink.
    "rtx6000-ada": GPU("NVIDIA RTX 6000 Ada 48GB", 364e12, 48, 25, 12.5),
}
GPUS_PER_NODE = 8

# RESULTS.md section 0: `read_clip`, 16 frames from 1-4 s windows of a 568 x 320, 30 fps H.264 file (GOP 250).
DECODE_CLIPS_PER_S_AT_16_FRAMES = 22.59
AUTOCAST_ACTIVATION_FRACTION = 0.7  # bf16 autocast holds 0.6-0.7x the float32 estimate (docs/performance.md)
STATE_BYTES_PER_PARAMETER = 16  # float32 weights + float32 gradients + two float32 AdamW moments
TEXT_TOKENS = 77


@dataclass(frozen=True)
class Workload:
    name: str
    clips: float  # clips processed in total (epochs included)
    num_frames: int
    batch_per_gpu: int  # the paper's per-GPU batch (Sec. V-A); extraction: a choice
    training: bool


def workloads(preset: str, extract_window_s: float) -> list[Workload]:
    """The three jobs of the issue, with the paper's settings (Sec. V-A: B 256 / L 128 clips per GPU in
    pre-training, 64 in EK-100 fine-tuning)."""
    large = preset == "eva02at-l"
    return [
        Workload(
            "pre-train EgoClip (3.8M clips x 5 epochs, 4 frames)", 3.8e6 * 5, 4, 128 if large else 256, True
        ),
        Workload("fine-tune EK-100 (67.2k clips x 100 epochs, 16 frames)", 67_217 * 100, 16, 64, True),
        Workload(
            f"extract Ego4D (3,670 h, one 16-frame clip per {extract_window_s:g} s)",
            3670 * 3600 / extract_window_s,
            16,
            64,
            False,
        ),
    ]


@functools.cache
def clip_forward_flops(preset: str, num_frames: int, with_text: bool) -> int:
    """FLOPs of one clip's forward: the vision tower, plus the text tower on one caption if ``with_text``."""
    config = EVA02ATConfig.from_preset(preset)
    vision = forward_flops(config.vision_config, 1, num_frames)
    return vision + (text_forward_flops(config) if with_text else 0)


def text_forward_flops(config: EVA02ATConfig) -> int:
    """FLOPs of one text-tower forward over `TEXT_TOKENS` tokens (with its projection)."""
    with torch.device("meta"):
        model = EVA02ATForVideoTextRetrieval(config).eval()
        model.set_attn_implementation("eager")
        input_ids = torch.zeros(1, TEXT_TOKENS, dtype=torch.long)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.get_text_features(input_ids=input_ids, attention_mask=torch.ones_like(input_ids))
    return counter.get_total_flops()


@functools.cache
def parameter_count(preset: str) -> tuple[int, int]:
    """(all parameters, vision-tower parameters)."""
    with torch.device("meta"):
        model = EVA02ATForVideoTextRetrieval(EVA02ATConfig.from_preset(preset))
    return sum(p.numel() for p in model.parameters()), sum(p.numel() for p in model.vision_model.parameters())


def decode_clips_per_core_s(num_frames: int) -> float:
    return DECODE_CLIPS_PER_S_AT_16_FRAMES * 16 / num_frames


def allreduce_seconds(num_gpus: int, gradient_bytes: float, gpu: GPU) -> float:
    """Ring all-reduce of the gradients once per step: 2 (N - 1) / N of the bytes through each GPU's slowest link."""
    if num_gpus == 1:
        return 0.0
    bandwidth = (gpu.intra_node_gb_s if num_gpus <= GPUS_PER_NODE else gpu.inter_node_gb_s) * GB
    return 2 * (num_gpus - 1) / num_gpus * gradient_bytes / bandwidth


def estimate(
    preset: str, job: Workload, num_gpus: int, gpu: GPU, mfu: float, decode_cores_per_gpu: float
) -> dict[str, object]:
    """One table row: time, throughput, what binds, and memory per GPU."""
    vision = EVA02ATConfig.from_preset(preset).vision_config
    parameters, vision_parameters = parameter_count(preset)
    forward = clip_forward_flops(preset, job.num_frames, job.training)
    if job.training:
        states = {
            "DDP": STATE_BYTES_PER_PARAMETER * parameters,
            "ZeRO-2": 4 * parameters + (STATE_BYTES_PER_PARAMETER - 4) * parameters / num_gpus,
            "ZeRO-3": STATE_BYTES_PER_PARAMETER * parameters / num_gpus,
        }
        activations = AUTOCAST_ACTIVATION_FRACTION * estimate_activation_memory(
            vision, job.num_frames, job.batch_per_gpu
        )
        checkpointing = activations + states["ZeRO-3"] > 0.9 * gpu.memory_gb * GB
        if checkpointing:
            activations = AUTOCAST_ACTIVATION_FRACTION * estimate_activation_memory(
                vision, job.num_frames, job.batch_per_gpu, gradient_checkpointing=True
            )
        flops_per_clip = (4 if checkpointing else 3) * forward
    else:  # inference in bf16 weights: one layer's working set at a time (at most its training share)
        states = dict.fromkeys(("DDP", "ZeRO-2", "ZeRO-3"), 2 * vision_parameters)
        activations = (
            estimate_activation_memory(vision, job.num_frames, job.batch_per_gpu, dtype=torch.bfloat16)
            / vision.num_hidden_layers
        )
        checkpointing = False
        flops_per_clip = forward
    compute_rate = num_gpus * gpu.bf16_dense_flops * mfu / flops_per_clip  # clips/s
    step_compute = job.batch_per_gpu * flops_per_clip / (gpu.bf16_dense_flops * mfu)
    step_comm = allreduce_seconds(num_gpus, 4 * parameters, gpu) if job.training else 0.0
    compute_rate *= step_compute / max(step_compute, step_comm)  # all-reduce overlapped with the backward
    decode_rate = num_gpus * decode_cores_per_gpu * decode_clips_per_core_s(job.num_frames)
    rate = min(compute_rate, decode_rate)
    return {
        "GPUs": num_gpus,
        "global batch": job.batch_per_gpu * num_gpus,
        "GFLOP/clip": round(flops_per_clip / 1e9, 1),
        "GPU clips/s": round(compute_rate),
        "decode clips/s": round(decode_rate),
        "bound by": "decode" if decode_rate < compute_rate else "GPU",
        "decode cores/GPU to feed": round(
            compute_rate / num_gpus / decode_clips_per_core_s(job.num_frames), 1
        ),
        "hours": round(job.clips / rate / 3600, 2),
        "GPU-hours": round(num_gpus * job.clips / rate / 3600, 1),
        "all-reduce / step (ms)": round(1e3 * step_comm, 1),
        "activation ckpt": "yes" if checkpointing else "no",
        "act. GB/GPU": round(activations / GB, 1),
        "DDP GB/GPU": round((states["DDP"] + activations) / GB, 1),
        "ZeRO-2 GB/GPU": round((states["ZeRO-2"] + activations) / GB, 1),
        "ZeRO-3 GB/GPU": round((states["ZeRO-3"] + activations) / GB, 1),
    }


def implied_mfu(preset: str, job: Workload, num_gpus: int, gpu: GPU, hours: float) -> float:
    """The model FLOP utilisation a reported wall-clock time amounts to (3 forwards per training clip)."""
    return (
        job.clips
        * 3
        * clip_forward_flops(preset, job.num_frames, True)
        / (hours * 3600 * num_gpus * gpu.bf16_dense_flops)
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gpu", default="h100-sxm", choices=sorted(GPUS))
    parser.add_argument("--mfu", type=float, default=0.4, help="model FLOP utilisation assumed (default 0.4)")
    parser.add_argument("--decode_cores_per_gpu", type=float, default=12, help="CPU cores decoding per GPU")
    parser.add_argument("--gpus", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--presets", nargs="+", default=["eva02at-b", "eva02at-l"])
    parser.add_argument(
        "--extract_window_s", type=float, default=2.0, help="seconds of video per extracted clip"
    )
    args = parser.parse_args()
    if not math.isfinite(args.mfu) or not 0 < args.mfu <= 1:
        parser.error(f"--mfu must be in (0, 1], got {args.mfu}")
    gpu = GPUS[args.gpu]
    print(
        f"{gpu.name}: {gpu.bf16_dense_flops / 1e12:.0f} TFLOP/s dense bf16 peak, MFU {args.mfu:g} -> "
        f"{gpu.bf16_dense_flops * args.mfu / 1e12:.0f} TFLOP/s per GPU; {args.decode_cores_per_gpu:g} decode cores "
        f"per GPU at {DECODE_CLIPS_PER_S_AT_16_FRAMES} clips/s per core for 16 frames (RESULTS.md section 0)"
    )
    for preset in args.presets:
        for job in workloads(preset, args.extract_window_s):
            rows = [estimate(preset, job, n, gpu, args.mfu, args.decode_cores_per_gpu) for n in args.gpus]
            print_table(rows, f"{preset}: {job.name}, {job.batch_per_gpu} clips per GPU")
    # The paper's own report (Sec. V-A): B pre-training ~40 h and EK-100 fine-tuning ~20 h on 4 RTX 6000 Ada.
    ada = GPUS["rtx6000-ada"]
    pretrain, finetune, _ = workloads("eva02at-b", args.extract_window_s)
    rows = [
        {
            "job": job.name,
            "reported hours": hours,
            "implied MFU": f"{implied_mfu('eva02at-b', job, 4, ada, hours):.3f}",
        }
        for job, hours in ((pretrain, 40), (finetune, 20))
    ]
    print_table(rows, "eva02at-b as reported by the paper on 4 x RTX 6000 Ada (364 TFLOP/s dense bf16 each)")


if __name__ == "__main__":
    main()
