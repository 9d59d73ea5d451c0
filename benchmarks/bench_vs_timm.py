"""Our vision tower at one frame vs timm's `eva02_base_patch16_clip_224` on the same image batch, same weights.

timm's model is randomly initialised (pretrained=False) and converted with `convert_checkpoint`; both run with
fused SDPA attention (timm's default) in the same process, interleaved. Reports images/s, the throughput ratio
ours / timm (>= 1 means ours is not slower) and the largest difference of the final token features.

    python benchmarks/bench_vs_timm.py [--batch-size 8] [--quick] [--device cuda --dtype bf16]
"""

from __future__ import annotations

import timm
import torch
from _common import benchmark_parser, parse_benchmark_args, precision, print_table, time_interleaved

from eva02at_hf.apps.conversion import convert_checkpoint


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--batch-size", type=int, default=None, help="images per batch (default 8, quick 2)")
    parser.set_defaults(repeats=5)
    args, device = parse_benchmark_args(parser, quick_repeats=3)
    batch_size = args.batch_size or (2 if args.quick else 8)

    torch.manual_seed(0)
    reference = timm.create_model("eva02_base_patch16_clip_224", pretrained=False).to(device).eval()
    ours = convert_checkpoint(reference.state_dict(), num_frames=16).vision_model.to(device).eval()
    images = torch.randn(batch_size, 3, 224, 224, generator=torch.Generator().manual_seed(0)).to(device)

    rows = []
    for dtype in args.dtype:

        def run_timm(dtype: str = dtype) -> torch.Tensor:
            with precision(device, dtype, args.sdpa_backend), torch.inference_mode():
                return reference.forward_features(images)

        def run_ours(dtype: str = dtype) -> torch.Tensor:
            with precision(device, dtype, args.sdpa_backend), torch.inference_mode():
                return ours(pixel_values=images[:, None]).last_hidden_state

        max_diff = (run_timm().float() - run_ours().float()).abs().max().item()
        seconds = time_interleaved({"timm": run_timm, "ours": run_ours}, args.repeats, device)
        rows.append(
            {
                "dtype": dtype,
                "batch": batch_size,
                "timm img/s": batch_size / seconds["timm"],
                "ours img/s": batch_size / seconds["ours"],
                "ours / timm throughput": seconds["timm"] / seconds["ours"],
                "max abs diff ours vs timm": max_diff,
            }
        )
        print(rows[-1], flush=True)
    print_table(rows, f"EVA02-CLIP-B/16 at one frame, ours vs timm (median of {args.repeats}, interleaved)")


if __name__ == "__main__":
    main()
