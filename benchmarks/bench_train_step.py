"""One training step of the vision tower (forward + backward + AdamW), with and without activation
checkpointing: steps/s, peak memory above the resting state (weights + optimizer state), and the activation
estimate of `eva02at_hf.utils.memory.estimate_activation_memory` next to the measurement.

The loss is the mean square of the pooled CLS features (the step's cost is the tower's, whatever the loss).
Cases run interleaved in one process; peak memory is measured on a separate step per case.

    python benchmarks/bench_train_step.py [--preset eva02at-b] [--frames 4 8] [--quick] [--device cuda]
"""

from __future__ import annotations

import itertools

import torch
from _common import (
    DTYPES,
    MIB,
    benchmark_parser,
    clips,
    parse_benchmark_args,
    peak_memory,
    precision,
    preset_vision_model,
    print_table,
    time_interleaved,
)

from eva02at_hf.utils.memory import estimate_activation_memory


def main() -> None:
    parser = benchmark_parser(__doc__, preset="eva02at-b")
    parser.add_argument("--batch-size", type=int, default=1)
    args, device = parse_benchmark_args(parser, frames=([4, 8], [1]))
    config, model = preset_vision_model(args, device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def step(checkpointing: bool, dtype: str, pixel_values: torch.Tensor) -> None:
        if checkpointing:
            model.activation_checkpointing_enable({"use_reentrant": False})
        else:
            model.activation_checkpointing_disable()
        optimizer.zero_grad(set_to_none=True)
        with precision(device, dtype, args.sdpa_backend):
            loss = model(pixel_values=pixel_values).pooler_output.float().pow(2).mean()
        loss.backward()
        optimizer.step()

    step(False, "fp32", clips(config, args.batch_size, args.frames[0], device))  # creates the AdamW state
    rows = []
    for num_frames in args.frames:
        pixel_values = clips(config, args.batch_size, num_frames, device)
        cases = {
            (checkpointing, dtype): lambda c=checkpointing, d=dtype, x=pixel_values: step(c, d, x)
            for checkpointing, dtype in itertools.product([False, True], args.dtype)
        }
        memory = {case: peak_memory(fn, device) for case, fn in cases.items()}
        seconds = time_interleaved(cases, args.repeats, device)
        for (checkpointing, dtype), time_s in seconds.items():
            estimate = (
                estimate_activation_memory(
                    config,
                    num_frames,
                    args.batch_size,
                    DTYPES[dtype],
                    model.config._attn_implementation,
                    checkpointing,
                )
                if dtype == "fp32"
                else None
            )
            rows.append(
                {
                    "frames": num_frames,
                    "checkpointing": checkpointing,
                    "dtype": dtype,
                    "s/step": time_s,
                    "clips/s": args.batch_size / time_s,
                    "slowdown vs no ckpt": time_s / seconds[(False, dtype)],
                    "peak MiB": memory[(checkpointing, dtype)] / MIB,
                    "of which grads MiB": sum(p.numel() * p.element_size() for p in model.parameters()) / MIB,
                    "activation estimate MiB": "n/a (autocast)" if estimate is None else estimate / MIB,
                }
            )
            print(rows[-1], flush=True)
    print_table(rows, f"Training step, {args.preset}, batch {args.batch_size} (median of {args.repeats})")


if __name__ == "__main__":
    main()
