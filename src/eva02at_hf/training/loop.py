"""The accelerate training loop shared by the example scripts.

`TrainingLoop.train` runs: `accelerator.prepare`, gradient accumulation, mixed precision, optional gradient
checkpointing, a tqdm bar and tracker logging on the main process, `save_state` every ``checkpointing_steps``
optimizer updates and at every epoch end, evaluation every ``eval_every_epochs`` epochs and at the end, and
`save_pretrained` of model + processor to ``<output_dir>/last`` and, by ``metric_for_best``, ``<output_dir>/best``,
then ``<output_dir>/results.json`` and, with ``push_to_hub``, the upload of the best (else last) model.

Exact resumption: ``--resume_from_checkpoint <dir>|latest`` restores model, optimizer, scheduler and RNG states
(`accelerator.load_state`) and the step counter; the epoch-seeded sampler and per-example seeds
(`eva02at_hf.training.data`) replay the epoch's permutation, and `accelerate.skip_first_batches` skips the
batches already consumed. Each checkpoint records the settings that define the schedule (`RESUME_FIELDS`, the
world size and the updates per epoch); resuming with other values is refused, and so is a checkpoint whose step
disagrees with its scheduler state (an edited ``trainer_state.json``) or whose files are missing or unreadable
(the error names the file).

Nothing the run wrote is lost (``docs/reliability.md``): an update whose loss or gradient is not finite is not
applied, and the run stops at the first one, naming the step (or after ``max_nonfinite_steps`` skipped updates);
weights holding NaN / inf are never saved, so the newest checkpoint is always a finite one and rotation
(``save_total_limit``) never removes the last finite checkpoint. Every checkpoint and exported folder (``last``,
``best``) is written to a temporary sibling and renamed into place; ``latest`` skips folders that are incomplete.

Under accelerate's FSDP2 (`check_fsdp`), ``save_state`` writes sharded checkpoints (one torch.distributed.checkpoint
file per process) that ``--resume_from_checkpoint`` reads back, and ``last`` / ``best`` hold the gathered model.
A streamed training set (`EgoClipStream`) shards itself across processes and workers and resumes with
``skip_batches``; ``--block_rows`` gives the map-style sampler the stream's block-shuffled order.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from argparse import Action, ArgumentDefaultsHelpFormatter
from collections.abc import Callable, Collection
from dataclasses import MISSING, Field, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import torch
from accelerate import Accelerator, DataLoaderConfiguration, skip_first_batches
from accelerate.data_loader import DataLoaderShard
from accelerate.utils import DistributedType, ProjectConfiguration, is_tensorboard_available, set_seed
from peft import PeftModel
from torch.utils.data import DataLoader, Dataset, IterableDataset
from tqdm.auto import tqdm
from transformers import HfArgumentParser
from transformers.modeling_layers import GradientCheckpointingLayer

from ..objectives import RetrievalObjective
from ..utils.reliability import (
    INCOMPLETE_SUFFIX,
    NonFiniteError,
    atomic_folder,
    atomic_write_json,
    commit_folder,
    count_nonfinite,
    incomplete_sibling,
)
from .benchmarks import benchmark_for_metrics, is_improvement
from .data import EpochShuffleSampler, check_crop_scale
from .lora import LORA_TARGET_MODULES, add_lora, merged_copy
from .schedules import SCHEDULES, build_scheduler

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "trainer_state.json"
# Files every `save_state` checkpoint holds (accelerate's names, one model / optimizer / scheduler); under FSDP2
# the model and optimizer are torch.distributed.checkpoint folders of one shard per process, whose `.metadata` is
# written last.
CHECKPOINT_FILES = ("model.safetensors", "optimizer.bin", "scheduler.bin", "random_states_0.pkl")
SHARDED_CHECKPOINT_FILES = (
    "pytorch_model_fsdp_0/.metadata",
    "optimizer_0/.metadata",
    "scheduler.bin",
    "random_states_0.pkl",
)
# Under DeepSpeed, `save_state` writes the engine's checkpoint: model states and rank 0's ZeRO optimizer partition
# (ZeRO-3 partitions the model states too, and names them per rank).
DEEPSPEED_CHECKPOINT_FILES = (
    "pytorch_model/mp_rank_00_model_states.pt",
    "pytorch_model/zero_pp_rank_0_mp_rank_00_optim_states.pt",
    "scheduler.bin",
    "random_states_0.pkl",
)
DEEPSPEED_ZERO3_MODEL_STATES = "pytorch_model/zero_pp_rank_0_mp_rank_00_model_states.pt"
RECIPE_FILE = "recipe.json"
PAPER, AUTHORS, OURS = "paper", "authors' code", "ours"
OPTIMIZERS = ("adamw", "lamb")
MIXED_PRECISIONS = ("auto", "no", "fp16", "bf16")
# Settings the restored optimizer, scheduler and sampler states depend on: a resumed run must keep them.
RESUME_FIELDS = (
    "num_epochs",
    "batch_size",
    "gradient_accumulation_steps",
    "learning_rate",
    "lr_schedule",
    "warmup_epochs",
    "warmup_start_lr",
    "lr_end",
    "optimizer",
    "weight_decay",
    "seed",
    "lora_r",
    "lora_alpha",
    "lora_target_modules",
    "block_rows",
    "blocks_per_group",
)
ADAPTER_DIR = "adapter"


@dataclass
class TrainingLoopConfig:
    """Flags shared by the example scripts (parsed with `transformers.HfArgumentParser`).

    The defaults are those of EK-100 fine-tuning; each script subclasses this to set its recipe's values.
    `SOURCES` says where each default comes from ("paper", "authors' code", "ours"; see `resolve_recipe`).
    """

    SOURCES: ClassVar[dict[str, str]] = {
        "num_epochs": PAPER,
        "batch_size": PAPER,
        "learning_rate": PAPER,
        "lr_schedule": AUTHORS,
        "warmup_epochs": PAPER,
        "warmup_start_lr": PAPER,
        "lr_end": AUTHORS,
        "optimizer": AUTHORS,
        "weight_decay": AUTHORS,
        "mixed_precision": AUTHORS,
        "random_resized_crop": AUTHORS,
        "crop_scale": AUTHORS,
    }

    output_dir: str = field(metadata={"help": "Folder for checkpoints, saved models, logs and metrics."})
    num_epochs: int = field(default=100, metadata={"help": "Training epochs."})
    max_steps: int | None = field(default=None, metadata={"help": "Stop after this many optimizer updates."})
    batch_size: int = field(default=64, metadata={"help": "Clips per process per forward pass."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Forward passes per update."})
    learning_rate: float = field(default=2e-5, metadata={"help": "Peak learning rate."})
    lr_schedule: str = field(default="cosine", metadata={"help": f"One of {SCHEDULES}."})
    warmup_epochs: float = field(default=1.0, metadata={"help": "Linear warm-up length in epochs (0: none)."})
    warmup_start_lr: float = field(default=1e-6, metadata={"help": "Learning rate at the first update."})
    lr_end: float = field(
        default=2e-6,
        metadata={
            "help": "Learning rate at the end of the cosine decay (the authors' EK-100 ViT-B script; their ViT-L "
            "script uses 1e-6)."
        },
    )
    optimizer: str = field(default="adamw", metadata={"help": f"One of {OPTIMIZERS} (LAMB from timm)."})
    weight_decay: float = field(default=0.01, metadata={"help": "Decoupled weight decay."})
    max_grad_norm: float | None = field(default=None, metadata={"help": "Clip gradients to this norm."})
    max_nonfinite_steps: int = field(
        default=0,
        metadata={
            "help": "Updates with a NaN / inf loss or gradient to skip (not apply) before the run stops; 0 stops at "
            "the first, naming its step."
        },
    )
    mixed_precision: str = field(
        default="auto",
        metadata={
            "help": "'auto' (bf16 on a GPU that supports it, else fp16 on a GPU; fp32 on CPU), 'no', 'fp16', 'bf16'."
        },
    )
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "Recompute activations in backward."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of initialisation, shuffling and sampling."})
    block_rows: int | None = field(
        default=None,
        metadata={
            "help": "Shuffle blocks of this many consecutive rows, --blocks_per_group at a time, instead of the whole "
            "table (the order a streamed dataset reads)."
        },
    )
    blocks_per_group: int = field(
        default=64, metadata={"help": "Blocks shuffled together (with --block_rows)."}
    )
    random_resized_crop: bool = field(
        default=True,
        metadata={
            "help": "Train-time random-resized crop, one box per clip, no flip (the authors' augmentation); "
            "--no_random_resized_crop trains on the evaluation transform (resize + centre crop)."
        },
    )
    crop_scale: list[float] = field(
        default_factory=lambda: [0.5, 1.0],
        metadata={
            "help": "Area fraction range LOW HIGH of the random-resized crop.",
            "metavar": ("LOW", "HIGH"),
        },
    )
    num_workers: int = field(default=2, metadata={"help": "DataLoader worker processes."})
    checkpointing_steps: int | None = field(default=None, metadata={"help": "save_state every N updates."})
    save_total_limit: int | None = field(
        default=2, metadata={"help": "Keep only the N newest save_state checkpoints (None keeps all)."}
    )
    eval_every_epochs: int = field(default=5, metadata={"help": "Evaluate every N epochs and at the end."})
    eval_batch_size: int = field(default=32, metadata={"help": "Clips per process per evaluation batch."})
    metric_for_best: str = field(default="mAP_avg", metadata={"help": "Metric selecting the best model."})
    resume_from_checkpoint: str | None = field(
        default=None, metadata={"help": "A save_state folder, or 'latest' for the newest in output_dir."}
    )
    report_to: str = field(
        default="auto", metadata={"help": "'tensorboard', 'none' or 'auto' (if installed)."}
    )
    push_to_hub: bool = field(
        default=False,
        metadata={"help": "Push the best (else last) model with its metrics at the end, after results.json."},
    )
    hub_model_id: str | None = field(default=None, metadata={"help": "Hub repository for --push_to_hub."})
    lora_r: int | None = field(
        default=None,
        metadata={"help": "Train LoRA adapters of this rank (peft) instead of all weights; off when unset."},
    )
    lora_alpha: float | None = field(
        default=None, metadata={"help": "LoRA alpha: updates are scaled by alpha / r (default 2 x --lora_r)."}
    )
    lora_target_modules: list[str] | None = field(
        default=None,
        metadata={
            "help": f"Layers to adapt (default: attention and MLP projections, {' '.join(LORA_TARGET_MODULES)})."
        },
    )
    lora_dropout: float = field(default=0.0, metadata={"help": "Dropout on the LoRA adapters' input."})

    def __post_init__(self) -> None:
        checks = [
            (self.lr_schedule in SCHEDULES, f"--lr_schedule must be one of {SCHEDULES}"),
            (self.optimizer in OPTIMIZERS, f"--optimizer must be one of {OPTIMIZERS}"),
            (
                self.mixed_precision in MIXED_PRECISIONS,
                f"--mixed_precision must be one of {MIXED_PRECISIONS}",
            ),
            (
                self.report_to in ("auto", "tensorboard", "none"),
                "--report_to must be auto, tensorboard or none",
            ),
            (self.batch_size >= 1 and self.gradient_accumulation_steps >= 1, "batch sizes must be >= 1"),
            (self.num_epochs >= 1, "--num_epochs must be >= 1"),
            (not self.push_to_hub or self.hub_model_id, "--push_to_hub needs --hub_model_id"),
            (self.save_total_limit is None or self.save_total_limit >= 1, "--save_total_limit must be >= 1"),
            (self.max_nonfinite_steps >= 0, "--max_nonfinite_steps must be >= 0"),
            (self.lora_r is None or self.lora_r >= 1, "--lora_r must be >= 1"),
            (self.lora_alpha is None or self.lora_alpha > 0, "--lora_alpha must be > 0"),
            (0 <= self.lora_dropout < 1, "--lora_dropout must be in [0, 1)"),
            (
                self.lora_r is not None or (self.lora_alpha, self.lora_target_modules) == (None, None),
                "--lora_alpha / --lora_target_modules need --lora_r",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        self.crop_scale = list(check_crop_scale(self.crop_scale))

    @property
    def train_crop_scale(self) -> tuple[float, float] | None:
        """The crop scale the training collator uses, or None without random-resized crops."""
        return tuple(self.crop_scale) if self.random_resized_crop else None


class HelpFormatter(ArgumentDefaultsHelpFormatter):
    """``--help`` with every optional flag's default appended, except where the help text already states it."""

    def _get_help_string(self, action: Action) -> str | None:
        if action.required or (action.help and "default:" in action.help):
            return action.help
        return super()._get_help_string(action)


def parse_recipe_args(dataclass_types: tuple[type, ...], argv: list[str] | None = None) -> tuple[Any, ...]:
    """Parse ``argv`` into the script's argument dataclasses with `HelpFormatter` (defaults shown in --help)."""
    parser = HfArgumentParser(dataclass_types, formatter_class=HelpFormatter)
    return parser.parse_args_into_dataclasses(argv)


def _field_default(item: Field) -> Any:
    if item.default is not MISSING:
        return item.default
    return item.default_factory() if item.default_factory is not MISSING else MISSING


def resolve_recipe(*arguments: Any, **resolved: tuple[Any, str]) -> dict[str, dict[str, Any]]:
    """Every setting of a run with where its value comes from: ``{name: {"value": ..., "source": ...}}``.

    ``arguments`` are the parsed argument dataclasses; a field's source is its class's ``SOURCES`` entry
    ("paper", "authors' code"; "ours" when absent) while it keeps its default, "set" when given another value (on
    the command line or by the calling script) and "run" for required fields (paths). ``resolved`` adds values
    decided at start as ``name=(value, source)`` (e.g. the mixed precision ``auto`` resolved to, the loss).
    """
    recipe: dict[str, dict[str, Any]] = {}
    for args in arguments:
        sources = getattr(args, "SOURCES", {})
        for item in fields(args):
            value, default = getattr(args, item.name), _field_default(item)
            if default is MISSING:
                source = "run"
            elif value != default:
                source = "set"
            else:
                source = sources.get(item.name, OURS)
            recipe[item.name] = {"value": value, "source": source}
    for name, (value, source) in resolved.items():
        recipe[name] = {"value": value, "source": source}
    return recipe


def save_recipe(
    accelerator: Accelerator, output_dir: str, *arguments: Any, **resolved: tuple[Any, str]
) -> dict[str, dict[str, Any]]:
    """`resolve_recipe` of the run (plus the precision and world size it resolved to), printed and written to
    ``<output_dir>/recipe.json`` (temporary file, then rename) from the main process; returns the recipe."""
    recipe = resolve_recipe(
        *arguments,
        mixed_precision_used=(accelerator.mixed_precision, "resolved"),
        world_size=(accelerator.num_processes, "run"),
        **resolved,
    )
    if accelerator.is_main_process:
        width = max(map(len, recipe))
        lines = [
            f"  {name:<{width}}  {entry['value']!s:<24} [{entry['source']}]" for name, entry in recipe.items()
        ]
        print("recipe (value [source]):\n" + "\n".join(lines))
        os.makedirs(output_dir, exist_ok=True)
        atomic_write_json(os.path.join(output_dir, RECIPE_FILE), recipe, indent=1, default=str)
    return recipe


def check_metric_for_best(config: TrainingLoopConfig, names: Collection[str]) -> None:
    """Raise a ValueError naming ``--metric_for_best`` unless it is one of ``names`` (the evaluation's metrics)."""
    if config.metric_for_best not in names:
        raise ValueError(
            f"--metric_for_best {config.metric_for_best!r} is not a metric of the evaluation; "
            f"choose one of {sorted(names)}"
        )


def start_run(
    config: TrainingLoopConfig,
    *arguments: Any,
    metrics: Collection[str] | None = None,
    **resolved: tuple[Any, str],
) -> Accelerator:
    """Begin a recipe's run: check ``--metric_for_best`` against the evaluation's ``metrics`` (when the run
    evaluates), build the accelerator (which seeds everything) and `save_recipe` of ``config`` and the script's
    ``arguments`` (plus ``resolved`` extras such as the built loss)."""
    if metrics is not None:
        check_metric_for_best(config, metrics)
    accelerator = build_accelerator(config)
    save_recipe(accelerator, config.output_dir, *arguments, config, **resolved)
    return accelerator


def recipe_default(name: str, default: Any) -> Any:
    """The `TrainingLoopConfig` field ``name`` with a recipe's ``default``, keeping its ``--help`` text (the subclass
    states the new default's source in its own ``SOURCES``)."""
    return field(default=default, metadata=TrainingLoopConfig.__dataclass_fields__[name].metadata)


@dataclass
class TrainingLoopState:
    """Progress saved next to every `save_state` checkpoint (``trainer_state.json``), with the run's
    schedule-defining settings (``schedule``: `RESUME_FIELDS`, ``world_size``, ``updates_per_epoch``) and the number
    of updates skipped for a non-finite loss or gradient (``num_nonfinite_steps``)."""

    global_step: int = 0
    num_nonfinite_steps: int = 0
    best_metric: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    schedule: dict[str, Any] = field(default_factory=dict)


def format_metrics(metrics: dict[str, Any]) -> str:
    """``"name value, ..."`` with floats to two decimals."""
    return ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())


def card_results(metrics: dict[str, Any], setting: str) -> dict[str, Any] | None:
    """A results JSON (`eva02at_hf.apps.hub`) holding ``metrics`` under the registered benchmark whose metric names
    they use (e.g. ``mAP_avg``: ek100_mir), other keys (``num_skipped``) left out; None when no name is a
    benchmark's."""
    benchmark = benchmark_for_metrics(metrics)
    if benchmark is None:
        return None
    known = {k: v for k, v in metrics.items() if k in benchmark.metrics}
    return {
        "source": {"name": "eva02at-hf training run", "reproduced": True},
        "results": [{"benchmark": benchmark.name, "setting": setting, "metrics": known}],
    }


def build_optimizer(model: torch.nn.Module, config: TrainingLoopConfig) -> torch.optim.Optimizer:
    """AdamW (torch) or LAMB (timm); no weight decay on biases, norms and embeddings (1-D or named *embedding*)."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (no_decay if parameter.ndim < 2 or "embedding" in name else decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if config.optimizer == "lamb":
        from timm.optim import Lamb

        return Lamb(groups, lr=config.learning_rate)
    return torch.optim.AdamW(groups, lr=config.learning_rate)


def checkpoint_steps(output_dir: str) -> list[int]:
    """The N of every ``step_<N>`` folder under ``<output_dir>/checkpoints``, ascending."""
    root = os.path.join(output_dir, CHECKPOINT_DIR)
    if not os.path.isdir(root):
        return []
    return sorted(int(m.group(1)) for n in os.listdir(root) if (m := re.fullmatch(r"step_(\d+)", n)))


def checkpoint_problem(path: str) -> str | None:
    """Why ``path`` is not a complete `save_state` checkpoint (a missing or empty file, an unreadable
    ``trainer_state.json``), or None when it is one. Only sizes and the small JSON file are read."""
    for name in (*checkpoint_files(path), STATE_FILE):
        file = os.path.join(path, name)
        if not os.path.isfile(file):
            return f"{file} is missing"
        if os.path.getsize(file) == 0:
            return f"{file} is empty"
    try:
        with open(os.path.join(path, STATE_FILE), encoding="utf-8") as handle:
            TrainingLoopState(**json.load(handle))
    except (ValueError, TypeError) as error:
        return f"{os.path.join(path, STATE_FILE)} is not a trainer state ({type(error).__name__}: {error})"
    return None


def checkpoint_files(path: str) -> tuple[str, ...]:
    """The files the checkpoint folder ``path`` must hold: `SHARDED_CHECKPOINT_FILES` for an FSDP2 one,
    `DEEPSPEED_CHECKPOINT_FILES` for a DeepSpeed one."""
    if os.path.isdir(os.path.join(path, os.path.dirname(SHARDED_CHECKPOINT_FILES[0]))):
        return SHARDED_CHECKPOINT_FILES
    if os.path.isdir(os.path.join(path, os.path.dirname(DEEPSPEED_CHECKPOINT_FILES[0]))):
        if os.path.isfile(os.path.join(path, DEEPSPEED_ZERO3_MODEL_STATES)):
            return (DEEPSPEED_ZERO3_MODEL_STATES, *DEEPSPEED_CHECKPOINT_FILES[1:])
        return DEEPSPEED_CHECKPOINT_FILES
    return CHECKPOINT_FILES


def _readable(file: str) -> bool:
    """Whether a checkpoint's model (safetensors), optimizer / scheduler (torch) file or sharded folder's
    ``.metadata`` can be read in full."""
    from accelerate.utils import load as accelerate_load
    from safetensors.torch import load_file
    from torch.distributed.checkpoint import FileSystemReader

    try:
        if file.endswith(".metadata"):
            FileSystemReader(os.path.dirname(file)).read_metadata()
        elif file.endswith(".safetensors"):
            load_file(file)
        else:
            accelerate_load(file, map_location="cpu")
    except Exception:
        return False
    return True


def latest_checkpoint(output_dir: str) -> str | None:
    """The complete ``step_<N>`` folder with the largest N under ``<output_dir>/checkpoints``, or None.

    Incomplete folders (a file missing or empty, e.g. a save interrupted by a full disk in an older version) are
    skipped with a warning naming what is wrong."""
    for step in reversed(checkpoint_steps(output_dir)):
        path = os.path.join(output_dir, CHECKPOINT_DIR, f"step_{step}")
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        logger.warning("skipping the incomplete checkpoint %s: %s", path, problem)
    return None


class TrainingLoop:
    """The accelerate training loop of a video-text dual encoder (named apart from `transformers.Trainer`, which
    it is not: no `TrainingArguments`, no callbacks; the example scripts build one and call `train`).

    Contract:
        - One step: `train_step` runs the model on a collated batch, asks ``objective(video_embeds,
          text_embeds, batch)`` for the global-batch loss, back-propagates under ``accelerator.accumulate`` and
          applies the update unless the loss or gradient norm is non-finite (then it is counted and skipped;
          more than ``--max_nonfinite_steps`` raises `NonFiniteError`). The scheduler steps per update.
        - Hooks: the caller supplies the data (``train_dataset`` + ``collate_fn``), the ``objective`` and an
          optional ``evaluate(model, accelerator) -> metrics`` run every ``--eval_every_epochs`` and at the end;
          ``--metric_for_best`` of its metrics picks ``<output_dir>/best``. Nothing else is overridable.
        - State: `TrainingLoopState` (step, best metric, evaluation history, skipped updates, the schedule
          settings) is saved as ``trainer_state.json`` beside accelerate's model / optimizer / scheduler / RNG
          state in ``<output_dir>/checkpoints/step_<N>`` (every ``--checkpointing_steps`` and each epoch end),
          and ``last`` / ``best`` are `save_pretrained` folders. Every write goes to a temporary sibling and is
          renamed into place; non-finite weights are never saved; rotation keeps the newest complete ones.
        - Resume: ``--resume_from_checkpoint PATH|latest`` restores all of it, refuses a checkpoint saved with
          other schedule settings, and continues mid-epoch from the same sample order (`EpochShuffleSampler`,
          or the stream's ``skip_batches``), so an interrupted run ends where an uninterrupted one would.

    Args:
        config: the run's `TrainingLoopConfig`.
        model: an `EVA02ATForVideoTextRetrieval` (its ``logit_scale`` is frozen: the losses use fixed temperatures
            and margins).
        processor: saved with the model.
        train_dataset: a dataset with ``set_epoch`` (`ClipTextDataset`), or a stream (an `IterableDataset` with
            ``shard``, ``set_epoch`` and ``skip_batches``: `EgoClipStream`).
        collate_fn: builds batches with ``pixel_values, input_ids, attention_mask, valid, clip_index,
            sentence_index`` (`TrainingCollator`).
        objective: the global-batch loss.
        evaluate: ``evaluate(model, accelerator) -> dict`` of metrics, or None.
        accelerator: an existing Accelerator (tests); built from ``config`` when None.
    """

    def __init__(
        self,
        config: TrainingLoopConfig,
        model: torch.nn.Module,
        processor: Any,
        train_dataset: Dataset,
        collate_fn: Callable,
        objective: RetrievalObjective,
        evaluate: Callable[[torch.nn.Module, Accelerator], dict[str, float]] | None = None,
        accelerator: Accelerator | None = None,
    ) -> None:
        self.config, self.processor, self.objective, self.evaluate = config, processor, objective, evaluate
        self.accelerator = accelerator or build_accelerator(config)
        set_seed(config.seed)
        if config.lora_r is not None:
            if self.accelerator.distributed_type == DistributedType.FSDP:
                raise ValueError(
                    "--lora_r with FSDP is not supported: saving merges the adapters into a copy of the whole "
                    "model on one process. Train LoRA with DDP (the frozen weights need no gradients or "
                    "optimizer state)"
                )
            model = add_lora(
                model, config.lora_r, config.lora_alpha, config.lora_target_modules, config.lora_dropout
            )
            trainable, total = model.get_nb_trainable_parameters()
            self.accelerator.print(f"LoRA rank {config.lora_r}: {trainable:,} of {total:,} parameters train")
        if config.gradient_checkpointing:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        if hasattr(model, "logit_scale"):
            model.logit_scale.requires_grad_(False)
        check_fsdp(self.accelerator, model)
        check_deepspeed(self.accelerator, model, config.max_grad_norm)
        self.train_dataset, self.collate_fn = train_dataset, collate_fn
        optimizer = build_optimizer(model, config)
        self.streaming = isinstance(train_dataset, IterableDataset)
        batching = {
            "batch_size": config.batch_size,
            "collate_fn": collate_fn,
            "num_workers": config.num_workers,
            "drop_last": True,
        }
        if self.streaming:  # the stream shards itself (`EgoClipStream`); accelerate only places the batches
            accelerator = self.accelerator
            train_dataset.shard(accelerator.process_index, accelerator.num_processes, config.batch_size)
            self.loader = DataLoaderShard(train_dataset, device=accelerator.device, **batching)
            self.model, self.optimizer = accelerator.prepare(model, optimizer)
        else:
            self.sampler = EpochShuffleSampler(
                len(train_dataset),
                config.seed,
                block_rows=config.block_rows,
                blocks_per_group=config.blocks_per_group,
            )
            loader = DataLoader(train_dataset, sampler=self.sampler, **batching)
            self.model, self.optimizer, self.loader = self.accelerator.prepare(model, optimizer, loader)
        if self.accelerator.is_fsdp2:
            from torch.distributed.fsdp import register_fsdp_forward_method

            for method in ("get_video_features", "get_text_features"):  # the evaluations call these
                if hasattr(self.model, method):
                    register_fsdp_forward_method(self.model, method)
        self.updates_per_epoch = len(self.loader) // config.gradient_accumulation_steps
        if self.updates_per_epoch < 1:
            raise ValueError(
                f"an epoch has {len(self.loader)} batches per process, fewer than gradient_accumulation_steps "
                f"({config.gradient_accumulation_steps}); lower --batch_size or use more data"
            )
        total = self.updates_per_epoch * config.num_epochs
        self.total_steps = min(total, config.max_steps) if config.max_steps else total
        scheduler = build_scheduler(  # on the torch optimizer: DeepSpeed's ZeRO optimizer steps it underneath
            optimizer,
            config.lr_schedule,
            total_steps=self.updates_per_epoch * config.num_epochs,
            warmup_steps=round(config.warmup_epochs * self.updates_per_epoch),
            warmup_start_lr=config.warmup_start_lr,
            final_lr=config.lr_end,
        )
        self.scheduler = self.accelerator.prepare_scheduler(scheduler)
        schedule = {name: getattr(config, name) for name in RESUME_FIELDS}
        schedule.update(world_size=self.accelerator.num_processes, updates_per_epoch=self.updates_per_epoch)
        self.state = TrainingLoopState(schedule=schedule)
        self._update_nonfinite = (
            False  # a micro-batch of the current update had a non-finite loss or gradient
        )

    def _print(self, message: str) -> None:
        """A console line from the main process that leaves the tqdm bar intact."""
        if self.accelerator.is_main_process:
            tqdm.write(message)

    # checkpoints -----------------------------------------------------------------------------------------

    def check_weights_finite(self, what: str) -> None:
        """Raise `NonFiniteError` (on every process) if a weight holds NaN / inf, before ``what`` is saved."""
        local = sum(count_nonfinite(local_shard(p.detach())) for p in self.model.parameters())
        total = self.accelerator.reduce(torch.tensor(float(local), device=self.accelerator.device), "sum")
        if total.item():
            raise NonFiniteError(
                f"training stopped at step {self.state.global_step}: the weights hold {int(total.item())} NaN / inf "
                f"value(s), so {what} was not saved; the last finite checkpoint is "
                f"{latest_checkpoint(self.config.output_dir) or '(none)'}. Lower --learning_rate (or set "
                "--max_grad_norm) and resume from it"
            )

    def save_state(self) -> str:
        """`accelerator.save_state` + ``trainer_state.json`` to ``<output_dir>/checkpoints/step_<N>``, written to a
        temporary sibling and renamed into place; then rotate older checkpoints (``save_total_limit``).

        Raises `NonFiniteError` (saving nothing) if the weights hold NaN / inf."""
        path = os.path.join(self.config.output_dir, CHECKPOINT_DIR, f"step_{self.state.global_step}")
        self.check_weights_finite(path)
        tmp = incomplete_sibling(path)
        if self.accelerator.is_main_process:
            for stale in Path(path).parent.glob(f".step_*{INCOMPLETE_SUFFIX}"):  # left by an interrupted save
                shutil.rmtree(stale)
        self.accelerator.wait_for_everyone()
        try:
            self.accelerator.save_state(str(tmp))
            self.accelerator.wait_for_everyone()
            if self.accelerator.is_main_process:
                atomic_write_json(tmp / STATE_FILE, asdict(self.state), indent=1)
                commit_folder(tmp, path)
        except BaseException:
            if self.accelerator.is_main_process:  # e.g. a full disk: the older checkpoints stay as they were
                shutil.rmtree(tmp, ignore_errors=True)
            raise
        if self.accelerator.is_main_process:
            limit = self.config.save_total_limit
            for step in checkpoint_steps(self.config.output_dir)[:-limit] if limit else []:
                shutil.rmtree(os.path.join(self.config.output_dir, CHECKPOINT_DIR, f"step_{step}"))
        self.accelerator.wait_for_everyone()
        return path

    def _read_checkpoint(self, path: str) -> tuple[str, TrainingLoopState]:
        """Resolve ``"latest"`` and read the checkpoint's `TrainingLoopState`; errors name the missing / bad file."""
        flag = "--resume_from_checkpoint"
        if path == "latest":
            found = latest_checkpoint(self.config.output_dir)
            if found is None:
                raise FileNotFoundError(f"{flag} latest: no complete checkpoint in {self.config.output_dir}")
            path = found
        if not os.path.isfile(os.path.join(path, STATE_FILE)):
            raise FileNotFoundError(f"{flag} {path}: not a checkpoint (no {STATE_FILE})")
        problem = checkpoint_problem(path)
        if problem is not None:
            raise (FileNotFoundError if problem.endswith("missing") else ValueError)(
                f"{flag} {path}: the checkpoint is incomplete: {problem}"
            )
        with open(os.path.join(path, STATE_FILE), encoding="utf-8") as handle:
            return path, TrainingLoopState(**json.load(handle))

    def _check_restored_step(self, path: str, saved: TrainingLoopState) -> None:
        """Refuse a checkpoint whose ``global_step`` disagrees with the scheduler (and optimizer) state it holds."""
        scheduler_steps = self.scheduler.scheduler.last_epoch
        optimizer_steps = max(
            (int(s["step"]) for s in self.optimizer.optimizer.state.values() if "step" in s), default=None
        )
        if self.accelerator.mixed_precision == "fp16":  # the loss scaler skips overflowing updates uncounted
            optimizer_steps = None
        applied = saved.global_step - saved.num_nonfinite_steps
        if scheduler_steps != saved.global_step or optimizer_steps not in (None, applied):
            raise ValueError(
                f"--resume_from_checkpoint {path}: {STATE_FILE} says step {saved.global_step} but the scheduler "
                f"state has taken {scheduler_steps} steps (optimizer: {optimizer_steps}); the file was edited or "
                "belongs to another checkpoint"
            )

    def _load_accelerator_state(self, path: str) -> None:
        """`accelerator.load_state`, naming the file that could not be read when it fails."""
        try:
            self.accelerator.load_state(path)
        except Exception as error:
            names = checkpoint_files(path)[:3]
            culprit = next((n for n in names if not _readable(os.path.join(path, n))), None)
            where = os.path.join(path, culprit) if culprit else path
            raise ValueError(
                f"--resume_from_checkpoint {path}: cannot restore {where} ({type(error).__name__}: {error}); it is "
                "truncated or corrupt: resume from an earlier checkpoint"
            ) from error

    def load_state(self, path: str) -> None:
        """Restore a `save_state` checkpoint (or ``"latest"``: the newest complete one); refuse one saved with another
        schedule, an incomplete or unreadable one, and one whose step disagrees with its scheduler state."""
        path, saved = self._read_checkpoint(path)
        schedule = self.state.schedule
        changed = [
            f"{name} {saved.schedule[name]!r} -> {value!r}"
            for name, value in schedule.items()
            if name in saved.schedule and saved.schedule[name] != value
        ]
        if changed:
            raise ValueError(
                f"--resume_from_checkpoint {path}: the checkpoint's optimizer, scheduler and sampler states belong "
                f"to other settings ({'; '.join(changed)}); resume with the saved values or train into a new "
                "--output_dir"
            )
        self._load_accelerator_state(path)
        self._check_restored_step(path, saved)
        self.state = saved
        self.state.schedule = schedule
        self._print(f"resumed from {path} at step {self.state.global_step}")

    def save_pretrained(self, name: str) -> str:
        """Model + processor to ``<output_dir>/<name>``, loadable with AutoModel / AutoProcessor; written to a
        temporary sibling and renamed over the previous folder only once complete. Refuses non-finite weights.

        A LoRA run saves the model with its adapters merged into the weights, and the adapters alone (peft's
        ``adapter_config.json`` + ``adapter_model.safetensors``) in ``<output_dir>/<name>/adapter``."""
        path = os.path.join(self.config.output_dir, name)
        self.check_weights_finite(path)
        self.accelerator.wait_for_everyone()
        # On every process: FSDP2 and ZeRO-3 gather the full weights from the shards.
        state_dict = self.accelerator.get_state_dict(self.model)
        if self.accelerator.is_main_process:
            with atomic_folder(path) as tmp:
                model = self._plain_model()
                if isinstance(model, PeftModel):
                    model.save_pretrained(tmp / ADAPTER_DIR, state_dict=state_dict)
                    merged_copy(model).save_pretrained(tmp)
                else:
                    model.save_pretrained(tmp, state_dict=state_dict)
                self.processor.save_pretrained(tmp)
        self.accelerator.wait_for_everyone()
        return path

    def _plain_model(self) -> torch.nn.Module:
        """The unwrapped model; under FSDP2 (whose `fully_shard` swaps the class for a generated ``FSDP<name>``
        one, which `save_pretrained` would write into ``auto_map`` with torch's FSDP files), a weightless instance
        (meta device) of the model's own class and config."""
        model = self.accelerator.unwrap_model(self.model)
        if not self.accelerator.is_fsdp2:
            return model
        from torch.distributed.fsdp import FSDPModule

        model_class = next(c for c in type(model).__mro__ if not issubclass(c, FSDPModule))
        with torch.device("meta"):
            return model_class(model.config)

    # loop ------------------------------------------------------------------------------------------------

    def _evaluate(self, epoch: int) -> dict[str, float]:
        metrics = self.evaluate(self.model, self.accelerator)
        record = {"epoch": epoch, "step": self.state.global_step, **metrics}
        self.state.history.append(record)
        self.accelerator.log({f"eval/{k}": v for k, v in metrics.items()}, step=self.state.global_step)
        self._print(
            f"epoch {epoch + 1}/{self.config.num_epochs} (step {self.state.global_step}): {format_metrics(metrics)}"
        )
        check_metric_for_best(self.config, metrics)
        value = metrics[self.config.metric_for_best]
        if is_improvement(self.config.metric_for_best, value, self.state.best_metric):  # registry's direction
            self.state.best_metric = value
            self.save_pretrained("best")
        self.model.train()
        return metrics

    def _all_finite(self, value: torch.Tensor) -> bool:
        """Whether ``value`` is finite on every process (the processes agree, so all skip or all apply)."""
        bad = torch.tensor(float(count_nonfinite(value)), device=self.accelerator.device)
        return not self.accelerator.reduce(bad, "sum").item()

    def train_step(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """One forward/backward under `accelerate.accumulate`; returns the (unscaled) loss.

        A non-finite loss is not back-propagated, and an update with a non-finite loss or gradient (norm) is not
        applied: its gradients are dropped and ``_update_nonfinite`` is set for `train` to count or stop. (fp16
        gradient overflow is left to the loss scaler, which skips those updates itself.)"""
        with self.accelerator.accumulate(self.model):
            outputs = self.model(
                input_ids=batch["input_ids"],
                pixel_values=batch["pixel_values"],
                attention_mask=batch["attention_mask"],
            )
            loss = self.objective(outputs.video_embeds, outputs.text_embeds, batch)
            if self._all_finite(loss):
                self.accelerator.backward(loss)
            else:
                self._update_nonfinite = True
            if self.accelerator.sync_gradients and not self._update_nonfinite:
                check_gradients = self.accelerator.mixed_precision != "fp16"
                if self.config.max_grad_norm or check_gradients:
                    norm = self.accelerator.clip_grad_norm_(
                        self.model.parameters(), self.config.max_grad_norm or float("inf")
                    )
                    self._update_nonfinite = check_gradients and not self._all_finite(torch.as_tensor(norm))
            if not (self.accelerator.sync_gradients and self._update_nonfinite):
                self.optimizer.step()
            self.optimizer.zero_grad()
        return loss.detach() / self.accelerator.num_processes

    def _skip_nonfinite_update(self, loss: float) -> None:
        """Count an update that was not applied; raise `NonFiniteError` naming its step past the allowed number."""
        self._update_nonfinite = False
        self.state.num_nonfinite_steps += 1
        step, limit = self.state.global_step + 1, self.config.max_nonfinite_steps
        what = "loss" if loss != loss or abs(loss) == float("inf") else "gradient"
        if self.state.num_nonfinite_steps > limit:
            raise NonFiniteError(
                f"training stopped at step {step}: the {what} is not finite (loss {loss}); "
                f"{self.state.num_nonfinite_steps} update(s) with a non-finite loss or gradient, more than "
                f"--max_nonfinite_steps {limit}. The last finite checkpoint is "
                f"{latest_checkpoint(self.config.output_dir) or '(none)'}: lower --learning_rate (or set "
                "--max_grad_norm), check the data, and resume from it"
            )
        logger.warning(
            "step %d: non-finite %s (loss %s); update skipped (%d of --max_nonfinite_steps %d)",
            step,
            what,
            loss,
            self.state.num_nonfinite_steps,
            limit,
        )

    def train(self, results: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run (or resume) training; returns ``results`` (e.g. the script's arguments) plus ``{"world_size",
        "final": metrics, "best_metric", "history": [...], "num_skipped_clips"}`` (clips the collator could not
        decode, as counted in this process), written to ``<output_dir>/results.json`` before any push to the Hub.
        """
        config, accelerator = self.config, self.accelerator
        if config.resume_from_checkpoint:
            self.load_state(config.resume_from_checkpoint)
        start_epoch, skip_updates = divmod(self.state.global_step, self.updates_per_epoch)
        progress = tqdm(
            total=self.total_steps,
            initial=self.state.global_step,
            desc="training",
            disable=not accelerator.is_local_main_process,
        )
        metrics: dict[str, float] = {}
        self.model.train()
        for epoch in range(start_epoch, config.num_epochs):
            if self.state.global_step >= self.total_steps:
                break
            self.train_dataset.set_epoch(epoch)
            self.loader.set_epoch(epoch)  # accelerate's loaders set the sampler epoch from their own counter
            loader = self.loader
            if epoch == start_epoch and skip_updates and self.streaming:
                self.train_dataset.skip_batches(skip_updates * config.gradient_accumulation_steps)
            elif epoch == start_epoch and skip_updates:
                loader = skip_first_batches(self.loader, skip_updates * config.gradient_accumulation_steps)
                loader.set_epoch(epoch)
            for batch in loader:
                loss = self.train_step(batch)
                if not accelerator.sync_gradients:
                    continue
                if self._update_nonfinite:
                    self._skip_nonfinite_update(loss.item())
                self.scheduler.step()
                self.state.global_step += 1
                progress.update(1)
                logs = {"train/loss": loss.item(), "train/lr": self.scheduler.get_last_lr()[0]}
                progress.set_postfix(loss=f"{logs['train/loss']:.4f}", lr=f"{logs['train/lr']:.2e}")
                accelerator.log(logs, step=self.state.global_step)
                if config.checkpointing_steps and self.state.global_step % config.checkpointing_steps == 0:
                    self.save_state()
                if self.state.global_step >= self.total_steps:
                    break
            finished = self.state.global_step >= self.total_steps
            epoch_done = self.state.global_step % self.updates_per_epoch == 0
            if self.evaluate and (finished or (epoch_done and (epoch + 1) % config.eval_every_epochs == 0)):
                metrics = self._evaluate(epoch)
            if epoch_done or finished:
                self.save_state()
                self.save_pretrained("last")
        progress.close()
        results = {
            **(results or {}),
            "world_size": accelerator.num_processes,
            "final": metrics,
            "best_metric": self.state.best_metric,
            "history": self.state.history,
            "num_skipped_clips": getattr(self.collate_fn, "num_skipped", 0),
        }
        save_results(accelerator, config.output_dir, results)
        try:
            if config.push_to_hub and accelerator.is_main_process:
                self.push_to_hub()
        finally:
            accelerator.end_training()
        return results

    def push_to_hub(self) -> None:
        """Publish the best (else last) model + processor with a model card holding the metrics of that model
        (the evaluation that selected ``best``, else the last one), through `eva02at_hf.apps.hub.publish`.

        A failed upload raises a RuntimeError naming the repository; the saved folders are left as they are.
        """
        from ..apps.hub import publish, render_model_card

        config, history = self.config, self.state.history
        best = os.path.join(config.output_dir, "best")
        if os.path.isdir(best):
            folder = best
            record = next(
                (r for r in history if r.get(config.metric_for_best) == self.state.best_metric), None
            )
        else:
            folder, record = os.path.join(config.output_dir, "last"), history[-1] if history else None
        results = None
        if record is not None:
            metrics = {k: v for k, v in record.items() if k not in ("epoch", "step")}
            results = card_results(metrics, f"this run, epoch {record['epoch'] + 1}")
        card = render_model_card(
            self.accelerator.unwrap_model(self.model).config, results, config.hub_model_id
        )
        try:
            with tempfile.TemporaryDirectory() as staging:
                publish(folder, config.hub_model_id, card, staging, commit_message="EVA02-AT training run")
        except Exception as error:
            raise RuntimeError(
                f"--push_to_hub: uploading {folder} to the Hub repository {config.hub_model_id!r} failed "
                f"({type(error).__name__}: {error}); the trained model and results.json stay in "
                f"{config.output_dir}"
            ) from error


def check_fsdp(accelerator: Accelerator, model: torch.nn.Module) -> None:
    """Refuse FSDP1 and full-state-dict checkpoints (the loop supports FSDP2 with sharded checkpoints) and make
    ``model`` shardable by FSDP2's `fully_shard`.

    * Unless the accelerate config names them (``fsdp_transformer_layer_cls_to_wrap``), the units FSDP2 shards
      one by one are the transformer blocks (the model's gradient-checkpointing layers), the rest (embeddings,
      projections, final norms) forming the root unit. accelerate's default, the model's ``_no_split_modules``,
      would wrap ``CLIPTextEmbeddings`` and then shard its token embedding a second time.
    * `fully_shard` refuses 0-d parameters: the frozen ``logit_scale`` (the losses use fixed temperatures) becomes a
      persistent buffer of the same name and value, so it is replicated on every process and still saved.
    """
    if accelerator.distributed_type != DistributedType.FSDP:
        return
    from torch.distributed.fsdp import StateDictType

    if not accelerator.is_fsdp2:
        raise ValueError(
            "FSDP1 is not supported by the training loop: set `fsdp_version: 2` in the accelerate config "
            "(see examples/accelerate_configs/fsdp2.yaml)"
        )
    plugin = accelerator.state.fsdp_plugin
    if plugin.state_dict_type != StateDictType.SHARDED_STATE_DICT:
        raise ValueError(
            "the training loop writes sharded FSDP2 checkpoints: set `fsdp_state_dict_type: SHARDED_STATE_DICT` in "
            f"the accelerate config (got {plugin.state_dict_type}); last/ and best/ still hold the full model"
        )
    if plugin.transformer_cls_names_to_wrap is None:
        blocks = {type(m).__name__ for m in model.modules() if isinstance(m, GradientCheckpointingLayer)}
        plugin.transformer_cls_names_to_wrap = sorted(blocks)
    _zero_dim_parameters_to_buffers(model, "FSDP2 cannot shard")


def check_deepspeed(accelerator: Accelerator, model: torch.nn.Module, max_grad_norm: float | None) -> None:
    """Make ``model`` trainable under DeepSpeed ZeRO and refuse a clipping setting DeepSpeed would not apply.

    * DeepSpeed clips inside its own step, by the ``gradient_clipping`` of its config (accelerate turns ``auto``
      into 1.0), and ignores ``--max_grad_norm``: the two must agree (0 = no clipping, the recipes' default).
    * DeepSpeed (0.19) broadcasts every parameter at start-up as bytes, which fails for 0-d tensors: the frozen
      ``logit_scale`` becomes a persistent buffer of the same name and value, as under FSDP2.
    """
    if accelerator.distributed_type != DistributedType.DEEPSPEED:
        return
    clipping = accelerator.state.deepspeed_plugin.deepspeed_config.get("gradient_clipping", "auto")
    applied = 1.0 if clipping == "auto" else float(clipping)
    if applied != (max_grad_norm or 0.0):
        raise ValueError(
            f"under DeepSpeed, gradients are clipped by the DeepSpeed config (gradient_clipping: {clipping}, i.e. "
            f"{applied or 'none'}), not by --max_grad_norm ({max_grad_norm}): set `gradient_clipping: "
            f"{max_grad_norm or 0.0}` under deepspeed_config in the accelerate config (0.0 = no clipping)"
        )
    _zero_dim_parameters_to_buffers(model, "DeepSpeed cannot broadcast")


def _zero_dim_parameters_to_buffers(model: torch.nn.Module, engine_refusal: str) -> None:
    """Turn frozen 0-d parameters into persistent buffers (same name, value and state-dict key)."""
    for name, parameter in list(model.named_parameters()):
        if parameter.ndim == 0:
            if parameter.requires_grad:
                raise ValueError(f"{engine_refusal} the trainable 0-d parameter {name!r}; freeze it")
            owner, _, attribute = name.rpartition(".")
            module = model.get_submodule(owner)
            delattr(module, attribute)
            module.register_buffer(attribute, parameter.detach().clone())


def local_shard(tensor: torch.Tensor) -> torch.Tensor:
    """This process's shard of a DTensor (an FSDP2 parameter), else ``tensor`` itself."""
    from torch.distributed.tensor import DTensor

    return tensor.to_local() if isinstance(tensor, DTensor) else tensor


def print_summary(accelerator: Accelerator, config: TrainingLoopConfig, results: dict[str, Any]) -> None:
    """Print a finished run's zero-shot / final / best metrics and where its outputs are (main process only)."""
    if not accelerator.is_main_process:
        return
    if results.get("zero_shot"):
        print(f"zero-shot: {format_metrics(results['zero_shot'])}")
    print(f"final: {format_metrics(results['final']) if results['final'] else 'not evaluated'}")
    if results.get("best_metric") is not None:
        print(f"best {config.metric_for_best}: {results['best_metric']:.2f} ({config.output_dir}/best)")
    print(f"model: {config.output_dir}/last, results: {os.path.join(config.output_dir, 'results.json')}")


def save_results(accelerator: Accelerator, output_dir: str, results: dict[str, Any]) -> None:
    """Write `results` to `<output_dir>/results.json` from the main process only."""
    if accelerator.is_main_process:
        atomic_write_json(os.path.join(output_dir, "results.json"), results)


def resolve_mixed_precision(setting: str) -> str:
    """``"auto"``: ``"bf16"`` on a CUDA GPU that supports it, ``"fp16"`` on other GPUs, ``"no"`` (fp32) on CPU;
    any other setting is returned as is."""
    if setting != "auto":
        return setting
    if not torch.cuda.is_available():
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def build_accelerator(config: TrainingLoopConfig) -> Accelerator:
    """Accelerator with the config's accumulation / precision, trackers, and scheduler stepped once per update.

    Also seeds python, numpy and torch with ``config.seed`` (call it before building the model)."""
    report_to = config.report_to
    if report_to == "auto":
        report_to = "tensorboard" if is_tensorboard_available() else "none"
    accelerator = Accelerator(
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        mixed_precision=resolve_mixed_precision(config.mixed_precision),
        log_with=None if report_to == "none" else report_to,
        project_config=ProjectConfiguration(project_dir=config.output_dir, logging_dir=config.output_dir),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=False),
        step_scheduler_with_optimizer=False,
    )
    set_seed(config.seed)
    if report_to != "none":
        accelerator.init_trackers(
            "eva02at", config={k: v for k, v in asdict(config).items() if v is not None}
        )
    return accelerator
