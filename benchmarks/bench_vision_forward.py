"""Vision tower forward: clips/s, peak memory and model FLOP/s against the device's measured matmul peak.

For each preset and frame count, the cases {eager, sdpa} x {fp32, bf16 autocast} run interleaved in one
process (baseline: eager fp32); the first, memory-tracked call of each case is its warm-up.

    python benchmarks/bench_vision_forward.py [--quick] [--presets eva02at-b eva02at-tiny] [--frames 1 4 8 16]
    python benchmarks/bench_vision_forward.py --device cuda --dtype fp32 bf16 --sdpa-backend flash

(`--sdpa-backend flash`: the fp32 SDPA rows run the memory-efficient kernel, the bf16 rows FlashAttention.)
"""

from __future__ import annotations

import itertools

import torch
from _common import (
    MIB,
    benchmark_parser,
    build_vision_model,
    clips,
    forward_flops,
    matmul_peak_flops,
    parse_benchmark_args,
    peak_memory,
    precision,
    print_table,
    sdpa_kernel_for,
    time_interleaved,
    vision_config,
)

BATCH_SIZES = {"eva02at-b": 1, "eva02at-l": 1, "eva02at-tiny": 8}


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--presets", nargs="+", default=["eva02at-tiny", "eva02at-b"])
    parser.add_argument("--batch-size", type=int, default=None, help="default: 1 for B / L, 8 for tiny")
    args, device = parse_benchmark_args(parser, frames=([1, 4, 8, 16], [1, 4]))

    peaks = {dtype: matmul_peak_flops(device, dtype) for dtype in args.dtype}
    print_table(
        [{"dtype": dtype, "matmul GFLOP/s": peak / 1e9} for dtype, peak in peaks.items()],
        "Measured matmul peak (square matmul, median)",
    )

    rows = []
    for preset in args.presets:
        config = vision_config(preset)
        model = build_vision_model(config, device)
        batch_size = args.batch_size or BATCH_SIZES.get(preset, 1)
        for num_frames in args.frames:
            pixel_values = clips(config, batch_size, num_frames, device)
            flops = forward_flops(config, batch_size, num_frames)
            cases, memory = {}, {}
            for attn, dtype in itertools.product(["eager", "sdpa"], args.dtype):

                def forward(
                    attn: str = attn,
                    dtype: str = dtype,
                    model: torch.nn.Module = model,
                    pixel_values: torch.Tensor = pixel_values,
                ) -> None:
                    model.set_attn_implementation(attn)
                    with precision(device, dtype, args.sdpa_backend), torch.inference_mode():
                        model(pixel_values=pixel_values)

                memory[(attn, dtype)] = peak_memory(forward, device)
                cases[(attn, dtype)] = forward
            seconds = time_interleaved(cases, args.repeats, device)
            baseline = seconds[("eager", args.dtype[0])]
            for (attn, dtype), time_s in seconds.items():
                rows.append(
                    {
                        "preset": preset,
                        "frames": num_frames,
                        "tokens": 1 + num_frames * (config.image_size // config.patch_size) ** 2,
                        "attn": attn,
                        "kernel": sdpa_kernel_for(args.sdpa_backend, dtype) if attn == "sdpa" else "-",
                        "dtype": dtype,
                        "batch": batch_size,
                        "ms/clip": 1e3 * time_s / batch_size,
                        "clips/s": batch_size / time_s,
                        f"speedup vs eager {args.dtype[0]}": baseline / time_s,
                        "peak MiB": memory[(attn, dtype)] / MIB,
                        "GFLOP/clip": flops / batch_size / 1e9,
                        "GFLOP/s": flops / time_s / 1e9,
                        "% matmul peak": 100 * flops / time_s / peaks[dtype],
                    }
                )
                print(rows[-1], flush=True)
    print_table(rows, f"Vision tower forward (median of {args.repeats}, interleaved)")


if __name__ == "__main__":
    main()
