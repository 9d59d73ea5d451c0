"""LoRA versus full fine-tuning of the retrieval model: trainable parameters, estimated training memory at the
recipe's clip length, and one measured training step (peak memory above the resting weights, seconds per step).

Estimate (float32 weights, AdamW): weights 4 B x all parameters + gradients 4 B and AdamW's two moments 8 B x
trainable parameters + the video tower's activations (`eva02at_hf.utils.memory.estimate_activation_memory`, SDPA),
to which LoRA adds the rank-r outputs of every video-tower adapter (lora_B's saved input). The adapters' input
is the frozen layer's input, which full fine-tuning keeps for the weight gradient too, so the rest is unchanged.
The text tower's activations (77 tokens per caption) are left out of the estimate. Parameters are counted on a
meta-device model.

The measured step (forward + InfoNCE + backward + the first AdamW step, which allocates the optimizer state) runs
both cases interleaved in one process; full fine-tuning is the baseline.

    python benchmarks/bench_lora.py [--preset eva02at-b] [--lora-r 8] [--frames 16] [--batch-size 8]
        [--measure-frames 1] [--measure-batch-size 1] [--device cuda]
"""

from __future__ import annotations

import copy

import torch
from _common import MIB, benchmark_parser, parse_benchmark_args, peak_memory, print_table, time_interleaved

from eva02at_hf import EVA02ATConfig, EVA02ATForVideoTextRetrieval
from eva02at_hf.training import LORA_TARGET_MODULES, add_lora
from eva02at_hf.utils.memory import estimate_activation_memory

ADAMW_STATE_BYTES = 8  # two float32 moments per trainable parameter
VISION_LINEARS = ("q_proj", "k_proj", "v_proj", "out_proj", "gate_proj", "up_proj", "down_proj")


def build(config: EVA02ATConfig, lora_r: int | None, device: torch.device | str) -> torch.nn.Module:
    """The retrieval model as the trainer sets it up: logit scale frozen, LoRA adapters when ``lora_r``."""
    with torch.device(device):
        model = EVA02ATForVideoTextRetrieval(copy.deepcopy(config))
    model.logit_scale.requires_grad_(False)
    return model if lora_r is None else add_lora(model, lora_r)


def parameter_counts(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, all) parameters."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def estimate(
    config: EVA02ATConfig,
    counts: tuple[int, int],
    lora_r: int | None,
    frames: int,
    batch_size: int,
    checkpointing: bool,
) -> dict[str, int]:
    """Training-memory terms in bytes (see the module docstring)."""
    trainable, total = counts
    vision = config.vision_config
    activations = estimate_activation_memory(
        vision, frames, batch_size, torch.float32, "sdpa", gradient_checkpointing=checkpointing
    )
    if lora_r is not None:
        tokens = 1 + frames * (vision.image_size // vision.patch_size) ** 2
        kept_layers = 1 if checkpointing else vision.num_hidden_layers
        adapters = sum(name in LORA_TARGET_MODULES for name in VISION_LINEARS)
        activations += kept_layers * adapters * batch_size * tokens * lora_r * 4
    return {
        "weights": 4 * total,
        "gradients": 4 * trainable,
        "optimizer": ADAMW_STATE_BYTES * trainable,
        "activations": activations,
    }


def random_batch(config: EVA02ATConfig, batch_size: int, frames: int, device: torch.device) -> dict:
    generator = torch.Generator().manual_seed(0)
    vision = config.vision_config
    pixel_values = torch.randn(
        batch_size, frames, 3, vision.image_size, vision.image_size, generator=generator
    )
    input_ids = torch.zeros(batch_size, 77, dtype=torch.long)
    input_ids[:, 0], input_ids[:, 1:11] = (
        49406,
        torch.randint(1, 49000, (batch_size, 10), generator=generator),
    )
    input_ids[:, 11] = 49407
    attention_mask = (torch.arange(77) < 12).long().expand(batch_size, -1)
    batch = {"pixel_values": pixel_values, "input_ids": input_ids, "attention_mask": attention_mask}
    return {name: value.to(device) for name, value in batch.items()}


def gib(value: float) -> float:
    return value / 2**30


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--preset", default="eva02at-b")
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--frames", type=int, default=16, help="clip length of the estimate (recipe: 16)")
    parser.add_argument("--batch-size", type=int, default=8, help="clips per GPU of the estimate")
    parser.add_argument("--measure-frames", type=int, default=1, help="clip length of the measured step")
    parser.add_argument("--measure-batch-size", type=int, default=2, help="clips of the measured step (>= 2)")
    parser.add_argument("--no-measure", action="store_true", help="estimate only")
    args, device = parse_benchmark_args(parser)
    config = EVA02ATConfig.from_preset(args.preset)
    cases = {"full": None, f"LoRA r={args.lora_r}": args.lora_r}

    counts = {name: parameter_counts(build(config, r, "meta")) for name, r in cases.items()}
    print_table(
        [
            {
                "fine-tuning": name,
                "trainable": f"{trainable:,}",
                "all parameters": f"{total:,}",
                "trainable %": 100 * trainable / total,
            }
            for name, (trainable, total) in counts.items()
        ],
        f"Parameters, {args.preset} (LoRA on {' '.join(LORA_TARGET_MODULES)})",
    )

    rows = []
    for checkpointing in (False, True):
        totals = {}
        for name, r in cases.items():
            terms = estimate(config, counts[name], r, args.frames, args.batch_size, checkpointing)
            totals[name] = sum(terms.values())
            rows.append(
                {
                    "fine-tuning": name,
                    "grad. ckpt": "yes" if checkpointing else "no",
                    **{f"{term} GiB": gib(value) for term, value in terms.items()},
                    "total GiB": gib(totals[name]),
                    "saved GiB": gib(totals["full"] - totals[name]),
                }
            )
    print_table(
        rows,
        f"Estimated training memory, fp32 + AdamW, {args.frames} frames x {args.batch_size} clips "
        "(video-tower activations, SDPA)",
    )
    if args.no_measure:
        return

    torch.manual_seed(0)
    models = {name: build(config, r, device).train() for name, r in cases.items()}
    optimizers = {
        name: torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        for name, model in models.items()
    }
    batch = random_batch(config, args.measure_batch_size, args.measure_frames, device)

    def step(name: str) -> None:
        optimizers[name].zero_grad(set_to_none=True)
        models[name](**batch, return_loss=True).loss.backward()
        optimizers[name].step()

    measured = {name: measure_step(models[name], optimizers[name], batch) for name in cases}
    peaks = (
        {name: peak_memory(lambda n=name: step(n), device) for name in cases} if device.type == "cuda" else {}
    )
    seconds = time_interleaved({name: lambda n=name: step(n) for name in cases}, args.repeats, device)
    rows = []
    for name, r in cases.items():
        terms = estimate(config, counts[name], r, args.measure_frames, args.measure_batch_size, False)
        got = measured[name]
        rows.append(
            {
                "fine-tuning": name,
                "s/step": seconds[name],
                "speedup": seconds["full"] / seconds[name],
                "gradients MiB": got["gradients"] / MIB,
                "optimizer MiB": got["optimizer"] / MIB,
                "video act. MiB (estimate)": f"{got['video activations'] / MIB:.1f} ({terms['activations'] / MIB:.1f})",
                "text + head act. MiB": got["other activations"] / MIB,
                "grad + optim + act. MiB": sum(got.values()) / MIB,
                **({"CUDA peak MiB": peaks[name] / MIB} if peaks else {}),
            }
        )
    print_table(
        rows,
        f"Measured training step, {args.measure_frames} frame(s) x {args.measure_batch_size} clips: the tensors "
        "autograd saves, the gradients and the AdamW state after one step",
    )


def measure_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: dict) -> dict[str, int]:
    """Bytes of the distinct non-parameter storages autograd saves in the video tower and elsewhere during the
    forward, and of the gradients and optimizer state after one step."""
    saved: dict[str, dict[int, int]] = {"video activations": {}, "other activations": {}}
    inside = {"video": False}
    vision_model = model.vision_model  # a PeftModel forwards the attribute to its base model
    hooks = [
        vision_model.register_forward_pre_hook(lambda *_: inside.update(video=True)),
        vision_model.register_forward_hook(lambda *_: inside.update(video=False)),
    ]

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        saved["video activations" if inside["video"] else "other activations"][storage.data_ptr()] = (
            storage.nbytes()
        )
        return tensor

    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    optimizer.zero_grad(set_to_none=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = model(**batch, return_loss=True).loss
    for hook in hooks:
        hook.remove()
    loss.backward()
    optimizer.step()
    result = {
        kind: sum(nbytes for pointer, nbytes in storages.items() if pointer not in parameters)
        for kind, storages in saved.items()
    }
    result["gradients"] = sum(p.grad.nbytes for p in model.parameters() if p.grad is not None)
    result["optimizer"] = sum(
        value.nbytes for state in optimizer.state.values() for value in state.values() if value.ndim > 0
    )
    return result


if __name__ == "__main__":
    main()
