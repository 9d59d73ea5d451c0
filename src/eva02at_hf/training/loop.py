"""The accelerate training loop shared by the example scripts.

`Trainer.train` runs: `accelerator.prepare`, gradient accumulation, mixed precision, optional gradient
checkpointing, a tqdm bar and tracker logging on the main process, `save_state` every ``checkpointing_steps``
optimizer updates and at every epoch end, evaluation every ``eval_every_epochs`` epochs and at the end, and
`save_pretrained` of model + processor to ``<output_dir>/last`` and, by ``metric_for_best``, ``<output_dir>/best``.

Exact resumption: ``--resume_from_checkpoint <dir>|latest`` restores model, optimizer, scheduler and RNG states
(`accelerator.load_state`) and the step counter; the epoch-seeded sampler and per-example seeds
(`eva02at_hf.training.data`) replay the epoch's permutation, and `accelerate.skip_first_batches` skips the
batches already consumed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from accelerate import Accelerator, DataLoaderConfiguration, skip_first_batches
from accelerate.utils import ProjectConfiguration, is_tensorboard_available, set_seed
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .data import EpochShuffleSampler
from .objectives import RetrievalObjective
from .schedules import SCHEDULES, build_scheduler

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "trainer_state.json"
OPTIMIZERS = ("adamw", "lamb")


@dataclass
class TrainingConfig:
    """Flags shared by the example scripts (parsed with `transformers.HfArgumentParser`).

    The defaults are those of EK-100 fine-tuning; each script subclasses this to set its recipe's values.
    """

    output_dir: str = field(metadata={"help": "Folder for checkpoints, saved models, logs and metrics."})
    num_epochs: int = field(default=100, metadata={"help": "Training epochs."})
    max_steps: int | None = field(default=None, metadata={"help": "Stop after this many optimizer updates."})
    batch_size: int = field(default=64, metadata={"help": "Clips per process per forward pass."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Forward passes per update."})
    learning_rate: float = field(default=2e-5, metadata={"help": "Peak learning rate."})
    lr_schedule: str = field(default="cosine", metadata={"help": f"One of {SCHEDULES}."})
    warmup_epochs: float = field(default=1.0, metadata={"help": "Linear warm-up length in epochs (0: none)."})
    warmup_start_lr: float = field(default=1e-6, metadata={"help": "Learning rate at the first update."})
    final_lr: float = field(default=1e-6, metadata={"help": "Learning rate at the end of the cosine decay."})
    optimizer: str = field(default="adamw", metadata={"help": f"One of {OPTIMIZERS} (LAMB from timm)."})
    weight_decay: float = field(default=0.01, metadata={"help": "Decoupled weight decay."})
    max_grad_norm: float | None = field(default=None, metadata={"help": "Clip gradients to this norm."})
    mixed_precision: str = field(default="no", metadata={"help": "'no', 'fp16' or 'bf16'."})
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "Recompute activations in backward."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of initialisation, shuffling and sampling."})
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
    push_to_hub: bool = field(default=False, metadata={"help": "Push the best (else last) model at the end."})
    hub_model_id: str | None = field(default=None, metadata={"help": "Hub repository for --push_to_hub."})

    def __post_init__(self) -> None:
        checks = [
            (self.lr_schedule in SCHEDULES, f"--lr_schedule must be one of {SCHEDULES}"),
            (self.optimizer in OPTIMIZERS, f"--optimizer must be one of {OPTIMIZERS}"),
            (
                self.mixed_precision in ("no", "fp16", "bf16"),
                "--mixed_precision must be 'no', 'fp16' or 'bf16'",
            ),
            (
                self.report_to in ("auto", "tensorboard", "none"),
                "--report_to must be auto, tensorboard or none",
            ),
            (self.batch_size >= 1 and self.gradient_accumulation_steps >= 1, "batch sizes must be >= 1"),
            (self.num_epochs >= 1, "--num_epochs must be >= 1"),
            (not self.push_to_hub or self.hub_model_id, "--push_to_hub needs --hub_model_id"),
            (self.save_total_limit is None or self.save_total_limit >= 1, "--save_total_limit must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


@dataclass
class TrainerState:
    """Progress saved next to every `save_state` checkpoint (``trainer_state.json``)."""

    global_step: int = 0
    best_metric: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


def build_optimizer(model: torch.nn.Module, config: TrainingConfig) -> torch.optim.Optimizer:
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


def latest_checkpoint(output_dir: str) -> str | None:
    """The ``step_<N>`` folder with the largest N under ``<output_dir>/checkpoints``, or None."""
    steps = checkpoint_steps(output_dir)
    return os.path.join(output_dir, CHECKPOINT_DIR, f"step_{steps[-1]}") if steps else None


class Trainer:
    """Trains a dual encoder with a `RetrievalObjective` through accelerate.

    Args:
        config: the run's `TrainingConfig`.
        model: an `EVA02ATForVideoTextRetrieval` (its ``logit_scale`` is frozen: the losses use fixed temperatures
            and margins).
        processor: saved with the model.
        train_dataset: a dataset with ``set_epoch`` (`ClipTextDataset`).
        collate_fn: builds batches with ``pixel_values, input_ids, attention_mask, valid, clip_index,
            sentence_index`` (`TrainingCollator`).
        objective: the global-batch loss.
        evaluate: ``evaluate(model, accelerator) -> dict`` of metrics, or None.
        accelerator: an existing Accelerator (tests); built from ``config`` when None.
    """

    def __init__(
        self,
        config: TrainingConfig,
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
        if config.gradient_checkpointing:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        if hasattr(model, "logit_scale"):
            model.logit_scale.requires_grad_(False)
        self.train_dataset, self.collate_fn = train_dataset, collate_fn
        self.sampler = EpochShuffleSampler(len(train_dataset), seed=config.seed)
        loader = DataLoader(
            train_dataset,
            batch_size=config.batch_size,
            sampler=self.sampler,
            collate_fn=collate_fn,
            num_workers=config.num_workers,
            drop_last=True,
        )
        optimizer = build_optimizer(model, config)
        self.model, self.optimizer, self.loader = self.accelerator.prepare(model, optimizer, loader)
        self.updates_per_epoch = len(self.loader) // config.gradient_accumulation_steps
        if self.updates_per_epoch < 1:
            raise ValueError(
                f"an epoch has {len(self.loader)} batches per process, fewer than gradient_accumulation_steps "
                f"({config.gradient_accumulation_steps}); lower --batch_size or use more data"
            )
        total = self.updates_per_epoch * config.num_epochs
        self.total_steps = min(total, config.max_steps) if config.max_steps else total
        scheduler = build_scheduler(
            self.optimizer.optimizer,
            config.lr_schedule,
            total_steps=self.updates_per_epoch * config.num_epochs,
            warmup_steps=round(config.warmup_epochs * self.updates_per_epoch),
            warmup_start_lr=config.warmup_start_lr,
            final_lr=config.final_lr,
        )
        self.scheduler = self.accelerator.prepare_scheduler(scheduler)
        self.state = TrainerState()

    # checkpoints -----------------------------------------------------------------------------------------

    def save_state(self) -> str:
        """`accelerator.save_state` + ``trainer_state.json`` to ``<output_dir>/checkpoints/step_<N>``."""
        path = os.path.join(self.config.output_dir, CHECKPOINT_DIR, f"step_{self.state.global_step}")
        self.accelerator.save_state(path)
        if self.accelerator.is_main_process:
            with open(os.path.join(path, STATE_FILE), "w") as handle:
                json.dump(asdict(self.state), handle, indent=1)
            limit = self.config.save_total_limit
            for step in checkpoint_steps(self.config.output_dir)[:-limit] if limit else []:
                shutil.rmtree(os.path.join(self.config.output_dir, CHECKPOINT_DIR, f"step_{step}"))
        self.accelerator.wait_for_everyone()
        return path

    def load_state(self, path: str) -> None:
        if path == "latest":
            found = latest_checkpoint(self.config.output_dir)
            if found is None:
                raise FileNotFoundError(
                    f"--resume_from_checkpoint latest: no checkpoint in {self.config.output_dir}"
                )
            path = found
        if not os.path.isfile(os.path.join(path, STATE_FILE)):
            raise FileNotFoundError(f"--resume_from_checkpoint {path}: not a checkpoint (no {STATE_FILE})")
        self.accelerator.load_state(path)
        with open(os.path.join(path, STATE_FILE)) as handle:
            self.state = TrainerState(**json.load(handle))
        logger.info("resumed from %s at step %d", path, self.state.global_step)

    def save_pretrained(self, name: str) -> str:
        """Model + processor to ``<output_dir>/<name>``, loadable with AutoModel / AutoProcessor."""
        path = os.path.join(self.config.output_dir, name)
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            model = self.accelerator.unwrap_model(self.model)
            model.save_pretrained(path, state_dict=self.accelerator.get_state_dict(self.model))
            self.processor.save_pretrained(path)
        self.accelerator.wait_for_everyone()
        return path

    # loop ------------------------------------------------------------------------------------------------

    def _evaluate(self, epoch: int) -> dict[str, float]:
        metrics = self.evaluate(self.model, self.accelerator)
        record = {"epoch": epoch, "step": self.state.global_step, **metrics}
        self.state.history.append(record)
        self.accelerator.log({f"eval/{k}": v for k, v in metrics.items()}, step=self.state.global_step)
        if self.accelerator.is_main_process:
            logger.info("epoch %d: %s", epoch, metrics)
        value = metrics.get(self.config.metric_for_best)
        if value is not None and (self.state.best_metric is None or value > self.state.best_metric):
            self.state.best_metric = value
            self.save_pretrained("best")
        self.model.train()
        return metrics

    def train_step(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """One forward/backward under `accelerator.accumulate`; returns the (unscaled) loss."""
        with self.accelerator.accumulate(self.model):
            outputs = self.model(
                input_ids=batch["input_ids"],
                pixel_values=batch["pixel_values"],
                attention_mask=batch["attention_mask"],
            )
            loss = self.objective(outputs.video_embeds, outputs.text_embeds, batch)
            self.accelerator.backward(loss)
            if self.accelerator.sync_gradients and self.config.max_grad_norm:
                self.accelerator.clip_grad_norm_(self.model.parameters(), self.config.max_grad_norm)
            self.optimizer.step()
            self.optimizer.zero_grad()
        return loss.detach() / self.accelerator.num_processes

    def train(self) -> dict[str, Any]:
        """Run (or resume) training; returns ``{"world_size", "final": metrics, "best_metric", "history": [...],
        "num_skipped_clips"}`` (clips the collator could not decode, as counted in this process)."""
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
            if epoch == start_epoch and skip_updates:
                loader = skip_first_batches(self.loader, skip_updates * config.gradient_accumulation_steps)
                loader.set_epoch(epoch)
            for batch in loader:
                loss = self.train_step(batch)
                if not accelerator.sync_gradients:
                    continue
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
        if config.push_to_hub and accelerator.is_main_process:
            self.push_to_hub()
        accelerator.end_training()
        return {
            "world_size": accelerator.num_processes,
            "final": metrics,
            "best_metric": self.state.best_metric,
            "history": self.state.history,
            "num_skipped_clips": getattr(self.collate_fn, "num_skipped", 0),
        }

    def push_to_hub(self) -> None:
        """Publish the best (else last) model + processor with a model card, through `eva02at_hf.hub.publish`."""
        from ..hub import publish, render_model_card

        best = os.path.join(self.config.output_dir, "best")
        folder = best if os.path.isdir(best) else os.path.join(self.config.output_dir, "last")
        card = render_model_card(
            self.accelerator.unwrap_model(self.model).config, None, self.config.hub_model_id
        )
        with tempfile.TemporaryDirectory() as staging:
            publish(folder, self.config.hub_model_id, card, staging, commit_message="EVA02-AT training run")


def save_results(accelerator: Accelerator, output_dir: str, results: dict[str, Any]) -> None:
    """Write `results` to `<output_dir>/results.json` from the main process only."""
    if accelerator.is_main_process:
        with open(os.path.join(output_dir, "results.json"), "w") as handle:
            json.dump(results, handle, indent=2)


def build_accelerator(config: TrainingConfig) -> Accelerator:
    """Accelerator with the config's accumulation / precision, trackers, and scheduler stepped once per update.

    Also seeds python, numpy and torch with ``config.seed`` (call it before building the model)."""
    report_to = config.report_to
    if report_to == "auto":
        report_to = "tensorboard" if is_tensorboard_available() else "none"
    accelerator = Accelerator(
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        mixed_precision=config.mixed_precision,
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
