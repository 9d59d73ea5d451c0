"""Datasets: local-file builders for EK-100 MIR, EgoClip, EgoClip+, EgoMCQ and Charades-Ego; a synthetic set.

Each builder is a `datasets.GeneratorBasedBuilder` reading the official annotation files from ``data_dir`` and
checking the videos under ``video_root`` (raw or pre-chunked layout, `eva02at_hf.data.video_layout`).
Examples carry the video file(s) and the time window, never decoded frames; `eva02at_hf.data.collate` decodes
and runs the processor at batching time. Which loader serves which benchmark (with its evaluator and metrics) is
declared once, in `eva02at_hf.training.benchmarks`.
"""

from ._common import AnnotationFileError, BadRowError, BadRowReport, LocalVideoConfig
from .charades_ego import CharadesEgoBuilder, CharadesEgoConfig, charades_ego_class_names, load_charades_ego
from .collate import ClipBatcher, ClipTransform, MultipleChoiceCollator, VideoTextCollator
from .ego4d import (
    EgoClipBuilder,
    EgoClipPlusBuilder,
    EgoClipPlusConfig,
    EgoMCQBuilder,
    load_egoclip,
    load_egoclip_plus,
    load_egomcq,
)
from .ek100 import (
    EK100MIRBuilder,
    RelevancyComparison,
    clip_sentence_indices,
    compare_relevancy,
    compare_with_official,
    ek100_relevancy,
    load_ek100_mir,
    load_ek100_sentences,
    load_official_relevancy,
)
from .video_layout import ClipSource, VideoLayout, read_window

__all__ = [
    "AnnotationFileError",
    "BadRowError",
    "BadRowReport",
    "CharadesEgoBuilder",
    "CharadesEgoConfig",
    "ClipBatcher",
    "ClipTransform",
    "ClipSource",
    "EK100MIRBuilder",
    "EgoClipBuilder",
    "EgoClipPlusBuilder",
    "EgoClipPlusConfig",
    "EgoMCQBuilder",
    "LocalVideoConfig",
    "MultipleChoiceCollator",
    "RelevancyComparison",
    "VideoLayout",
    "VideoTextCollator",
    "charades_ego_class_names",
    "clip_sentence_indices",
    "compare_relevancy",
    "compare_with_official",
    "ek100_relevancy",
    "load_charades_ego",
    "load_egoclip",
    "load_egoclip_plus",
    "load_egomcq",
    "load_ek100_mir",
    "load_ek100_sentences",
    "load_official_relevancy",
    "read_window",
]
