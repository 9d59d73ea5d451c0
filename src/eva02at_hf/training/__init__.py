"""Training and evaluation library behind the example scripts (accelerate loop, objectives, data, metrics)."""

from .data import (
    ClipTextDataset,
    EK100Split,
    EpochShuffleSampler,
    TrainingCollator,
    annotation_fingerprint,
    cached_relevancy,
    class_incidence,
    example_seed,
)
from .evaluation import embed_clips, embed_texts, evaluate_charades_ego, evaluate_egomcq, evaluate_ek100_mir
from .loop import (
    Trainer,
    TrainerState,
    TrainingConfig,
    build_accelerator,
    build_optimizer,
    latest_checkpoint,
    save_results,
)
from .models import load_model_and_processor, processor_for
from .objectives import LOSSES, RetrievalObjective, build_loss
from .recipes import build_ek100_trainer, ek100_evaluator
from .schedules import SCHEDULES, build_scheduler

__all__ = [
    "LOSSES",
    "RetrievalObjective",
    "SCHEDULES",
    "ClipTextDataset",
    "EK100Split",
    "EpochShuffleSampler",
    "Trainer",
    "TrainerState",
    "TrainingCollator",
    "TrainingConfig",
    "annotation_fingerprint",
    "build_accelerator",
    "build_ek100_trainer",
    "build_loss",
    "build_optimizer",
    "build_scheduler",
    "cached_relevancy",
    "class_incidence",
    "embed_clips",
    "ek100_evaluator",
    "embed_texts",
    "evaluate_charades_ego",
    "evaluate_egomcq",
    "evaluate_ek100_mir",
    "example_seed",
    "latest_checkpoint",
    "load_model_and_processor",
    "processor_for",
    "save_results",
]
