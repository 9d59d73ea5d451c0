"""Training and evaluation library behind the example scripts (accelerate loop, objectives, data, metrics)."""

from .data import (
    ClipTextDataset,
    EK100Split,
    EpochShuffleSampler,
    TrainingCollator,
    annotation_fingerprint,
    block_groups,
    cached_relevancy,
    class_incidence,
    example_seed,
)
from .evaluation import (
    ClipEmbeddings,
    embed_clips,
    embed_texts,
    evaluate_charades_ego,
    evaluate_egomcq,
    evaluate_ek100_mir,
)
from .loop import (
    Trainer,
    TrainerState,
    TrainingConfig,
    build_accelerator,
    build_optimizer,
    check_metric_for_best,
    latest_checkpoint,
    print_summary,
    recipe_default,
    save_results,
)
from .lora import LORA_TARGET_MODULES, add_lora, merged_copy
from .models import load_model_and_processor, processor_for
from .objectives import LOSSES, SOFT_LABEL_LOSSES, RetrievalObjective, build_loss
from .recipes import build_ek100_trainer, ek100_evaluator
from .schedules import SCHEDULES, build_scheduler
from .streaming import EgoClipStream, block_offsets

__all__ = [
    "LORA_TARGET_MODULES",
    "add_lora",
    "merged_copy",
    "LOSSES",
    "SCHEDULES",
    "SOFT_LABEL_LOSSES",
    "annotation_fingerprint",
    "build_accelerator",
    "build_ek100_trainer",
    "build_loss",
    "build_optimizer",
    "block_groups",
    "block_offsets",
    "build_scheduler",
    "cached_relevancy",
    "check_metric_for_best",
    "class_incidence",
    "ClipEmbeddings",
    "ClipTextDataset",
    "ek100_evaluator",
    "EK100Split",
    "EgoClipStream",
    "embed_clips",
    "embed_texts",
    "EpochShuffleSampler",
    "evaluate_charades_ego",
    "evaluate_egomcq",
    "evaluate_ek100_mir",
    "example_seed",
    "latest_checkpoint",
    "load_model_and_processor",
    "print_summary",
    "processor_for",
    "recipe_default",
    "RetrievalObjective",
    "save_results",
    "Trainer",
    "TrainerState",
    "TrainingCollator",
    "TrainingConfig",
]
