"""Shared helpers of the EVA02-AT performance benchmarks: device / precision / SDPA-kernel selection, interleaved
timing, peak memory, FLOP counting, the device's matmul peak and table printing.

Every script runs unchanged on CPU and GPU (`--device cuda --dtype bf16 --sdpa-backend flash`).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import math
import platform
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from eva02at_hf import EVA02ATConfig, EVA02ATVisionConfig
from eva02at_hf.modeling_eva02at import EVA02ATVisionModel

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
SDPA_BACKENDS = {
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "math": SDPBackend.MATH,
}
MIB = 2**20


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """--device, --dtype, --sdpa-backend, --repeats, --quick, --threads."""
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--dtype",
        nargs="+",
        default=["fp32", "bf16"],
        choices=sorted(DTYPES),
        help="precisions to compare; bf16 / fp16 run fp32 weights under torch.autocast",
    )
    parser.add_argument(
        "--sdpa-backend",
        default="auto",
        choices=["auto", *SDPA_BACKENDS],
        help="restrict SDPA to one kernel with torch.nn.attention.sdpa_kernel (auto: PyTorch's choice; flash: "
        "fp32 cases use the memory-efficient kernel, as flash has no fp32 kernel)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per case (median reported)")
    parser.add_argument("--quick", action="store_true", help="fewer frame counts and repeats")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")


def benchmark_parser(doc: str, preset: str | None = None) -> argparse.ArgumentParser:
    """The parser of a benchmark script: its docstring as help, the common arguments (`add_common_args`) and, with
    a ``preset``, ``--preset`` defaulting to it (the model `preset_vision_model` builds)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    if preset is not None:
        parser.add_argument("--preset", default=preset, help=f"model size (default {preset})")
    return parser


def parse_benchmark_args(
    parser: argparse.ArgumentParser,
    *,
    frames: tuple[list[int], list[int]] | None = None,
    quick_repeats: int = 2,
) -> tuple[argparse.Namespace, torch.device]:
    """Parse the command line and `setup` the device.

    ``frames`` (default, quick) adds ``--frames``; an unset ``args.frames`` becomes the default or, under --quick,
    the quick frame counts. --quick also sets ``args.repeats`` to ``quick_repeats``.
    """
    if frames is not None:
        default, quick = (" ".join(map(str, counts)) for counts in frames)
        parser.add_argument(
            "--frames", nargs="+", type=int, default=None, help=f"default {default} (quick: {quick})"
        )
    args = parser.parse_args()
    device = setup(args)
    if frames is not None and args.frames is None:
        args.frames = frames[1] if args.quick else frames[0]
    if args.quick:
        args.repeats = quick_repeats
    return args, device


def setup(args: argparse.Namespace) -> torch.device:
    """Apply --threads, validate --device and print what the run is measured on."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was requested but torch.cuda.is_available() is False.")
    print(
        f"# device: {describe_device(device)}; torch {torch.__version__}; SDPA backend: {args.sdpa_backend}"
    )
    return device


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sdpa_kernel_for(sdpa_backend: str, dtype: str) -> str:
    """The SDPA kernel a run restricted to `sdpa_backend` uses at `dtype`.

    FlashAttention has no fp32 kernel, so fp32 cases of a `--sdpa-backend flash` run use the memory-efficient
    kernel; this lets one run compare fp32 and bf16 on each precision's fastest fused kernel.
    """
    if sdpa_backend == "flash" and dtype == "fp32":
        return "efficient"
    return sdpa_backend


@contextlib.contextmanager
def precision(device: torch.device, dtype: str, sdpa_backend: str = "auto") -> Iterator[None]:
    """Autocast to `dtype` (fp32: none) and, unless `sdpa_backend == "auto"`, restrict SDPA to the kernel
    `sdpa_kernel_for(sdpa_backend, dtype)`."""
    with contextlib.ExitStack() as stack:
        if dtype != "fp32":
            stack.enter_context(torch.autocast(device.type, dtype=DTYPES[dtype]))
        if sdpa_backend != "auto":
            stack.enter_context(sdpa_kernel(SDPA_BACKENDS[sdpa_kernel_for(sdpa_backend, dtype)]))
        yield


def vision_config(preset: str, **overrides: Any) -> EVA02ATVisionConfig:
    config = EVA02ATConfig.from_preset(preset).vision_config
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def build_vision_model(
    config: EVA02ATVisionConfig, device: torch.device, seed: int = 0
) -> EVA02ATVisionModel:
    """A randomly initialised vision tower in fp32 on `device`, in eval mode."""
    torch.manual_seed(seed)
    return EVA02ATVisionModel(config).to(device).eval()


def preset_vision_model(
    args: argparse.Namespace, device: torch.device
) -> tuple[EVA02ATVisionConfig, EVA02ATVisionModel]:
    """The vision config of ``--preset`` and its randomly initialised tower on ``device`` (`build_vision_model`)."""
    config = vision_config(args.preset)
    return config, build_vision_model(config, device)


def clips(
    config: EVA02ATVisionConfig, batch_size: int, num_frames: int, device: torch.device
) -> torch.Tensor:
    """Random (B, T, C, H, W) pixel values."""
    shape = (batch_size, num_frames, config.num_channels, config.image_size, config.image_size)
    return torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(device)


def time_interleaved(
    cases: dict[str, Callable[[], Any]], repeats: int, device: torch.device, min_seconds: float = 0.2
) -> dict[str, float]:
    """Median seconds per call of each case (call the cases once before, to warm them up).

    Cases run round-robin (A, B, C, A, B, C, ...) so that load from other processes on a shared machine hits
    every case alike. A first timed call per case calibrates how many calls one sample averages over (at
    least `min_seconds` per sample); when one call already takes that long, it is the first sample.
    """
    times: dict[str, list[float]] = {name: [] for name in cases}
    calls: dict[str, int] = {}

    def sample(fn: Callable[[], Any], count: int) -> float:
        synchronize(device)
        start = time.perf_counter()
        for _ in range(count):
            fn()
        synchronize(device)
        return (time.perf_counter() - start) / count

    for name, fn in cases.items():
        first = sample(fn, 1)
        calls[name] = max(1, math.ceil(min_seconds / first))
        if calls[name] == 1:
            times[name].append(first)
    while any(len(values) < repeats for values in times.values()):
        for name, fn in cases.items():
            if len(times[name]) < repeats:
                times[name].append(sample(fn, calls[name]))
    return {name: statistics.median(values) for name, values in times.items()}


def peak_memory(fn: Callable[[], Any], device: torch.device) -> int:
    """Peak bytes of tensors allocated by `fn` above what was allocated before it.

    CUDA: `torch.cuda.max_memory_allocated` (the caching allocator's count of live tensor bytes). CPU: torch has
    no allocator statistics, so `torch.distributed._tools.mem_tracker.MemTracker` (a dispatch mode that follows
    every tensor storage created during `fn` until it is freed) gives the same quantity. Neither counts
    allocator caching or scratch buffers internal to a kernel.
    """
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    from torch.distributed._tools.mem_tracker import MemTracker

    tracker = MemTracker()
    with tracker:
        fn()
    return int(tracker.get_tracker_snapshot("peak")[device]["Total"])


def forward_flops(config: EVA02ATVisionConfig, batch_size: int, num_frames: int) -> int:
    """FLOPs of one forward of the vision tower (a multiply-add counts 2), counted by `FlopCounterMode` on a
    meta-device model with eager attention: every matmul, the patch convolution and QK^T / AV, whatever kernel
    runs them (FlopCounterMode has no formula for the CPU flash kernel, so SDPA cannot be counted directly)."""
    with torch.device("meta"):
        model = EVA02ATVisionModel(copy.deepcopy(config)).eval()
        model.set_attn_implementation("eager")
        pixel_values = torch.empty(
            batch_size, num_frames, config.num_channels, config.image_size, config.image_size
        )
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(pixel_values=pixel_values)
    return counter.get_total_flops()


def matmul_peak_flops(device: torch.device, dtype: str, size: int | None = None, repeats: int = 5) -> float:
    """Measured dense-matmul throughput (FLOP/s) of `device` in `dtype`: the roofline model FLOP/s are
    compared to. Median of `repeats` square matmuls (2048 on CPU, 8192 on GPU)."""
    size = size or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(size, size, device=device, dtype=DTYPES[dtype])
    b = torch.randn(size, size, device=device, dtype=DTYPES[dtype])
    a @ b
    seconds = time_interleaved({"mm": lambda: a @ b}, repeats, device)["mm"]
    return 2 * size**3 / seconds


def print_table(rows: Sequence[dict[str, Any]], title: str) -> None:
    """Print `rows` as a Markdown table (floats with 3 significant digits)."""
    if not rows:
        return
    columns = list(rows[0])

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.0f}"
        return str(value)

    cells = [[cell(row.get(column, "")) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
    print(f"\n### {title}\n")
    print("| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for line in cells:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |")
