"""The price of joint space-time attention: one T-frame clip through the video tower (attention over all
1 + T * N tokens, the paper's Eq. 10) vs the same tower as an image model on the T frames separately
(T sequences of 1 + N tokens), frame CLS features mean-pooled. Same weights, same pixels, interleaved.

    python benchmarks/bench_joint_attention.py [--frames 4 8 16] [--quick] [--device cuda --dtype bf16]
"""

from __future__ import annotations

import torch
from _common import (
    MIB,
    benchmark_parser,
    clips,
    forward_flops,
    parse_benchmark_args,
    peak_memory,
    precision,
    preset_vision_model,
    print_table,
    time_interleaved,
)


def main() -> None:
    parser = benchmark_parser(__doc__, preset="eva02at-b")
    args, device = parse_benchmark_args(parser, frames=([4, 8, 16], [4]))
    config, model = preset_vision_model(args, device)

    rows = []
    for num_frames in args.frames:
        pixel_values = clips(config, 1, num_frames, device)
        for dtype in args.dtype:

            def joint(dtype: str = dtype, pixel_values: torch.Tensor = pixel_values) -> torch.Tensor:
                with precision(device, dtype, args.sdpa_backend), torch.inference_mode():
                    return model(pixel_values=pixel_values).pooler_output

            def per_frame(dtype: str = dtype, pixel_values: torch.Tensor = pixel_values) -> torch.Tensor:
                with precision(device, dtype, args.sdpa_backend), torch.inference_mode():
                    return model(pixel_values=pixel_values.transpose(0, 1)).pooler_output.mean(
                        0, keepdim=True
                    )

            memory = {"joint": peak_memory(joint, device), "per-frame": peak_memory(per_frame, device)}
            seconds = time_interleaved({"joint": joint, "per-frame": per_frame}, args.repeats, device)
            flops = {
                "joint": forward_flops(config, 1, num_frames),
                "per-frame": forward_flops(config, num_frames, 1),
            }
            rows.append(
                {
                    "frames": num_frames,
                    "dtype": dtype,
                    "joint s/clip": seconds["joint"],
                    "per-frame s/clip": seconds["per-frame"],
                    "time ratio joint / per-frame": seconds["joint"] / seconds["per-frame"],
                    "FLOP ratio": flops["joint"] / flops["per-frame"],
                    "joint peak MiB": memory["joint"] / MIB,
                    "per-frame peak MiB": memory["per-frame"] / MIB,
                }
            )
            print(rows[-1], flush=True)
    print_table(
        rows, f"Joint attention vs per-frame + mean pool, {args.preset}, batch 1 (median of {args.repeats})"
    )


if __name__ == "__main__":
    main()
