"""The benchmark registry: each benchmark is declared once, here, and read by every tool that needs it.

A `Benchmark` names its loader (annotation folder -> `BenchmarkData`), its evaluator (an ``evaluate_*`` of
`eva02at_hf.training.evaluation`), the batcher that evaluator feeds the model with, its metrics (names as the
evaluator returns them, the direction of each, how the Hub shows them), its Hub ``model-index`` metadata and its
command-line settings (splits, the zero-shot script's flag prefix and frame count). Readers:

* ``eva02at eval <benchmark>`` (`eva02at_hf.apps.cli`): choices, ``--split`` choices, load -> evaluate -> JSON;
* ``examples/evaluate_zeroshot.py``: one ``--<flag_prefix>_dir`` / ``_videos`` / ... group per benchmark;
* the training loop: ``--metric_for_best`` names and their direction (`higher_is_better`), the card of a run;
* `eva02at_hf.apps.hub`: results-JSON validation, ``model-index`` entries and the card's result tables.

Adding a benchmark = a loader returning `BenchmarkData` plus one `register_benchmark(Benchmark(...))` call.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import torch
from accelerate import Accelerator

from ..data import MultipleChoiceCollator, charades_ego_class_names, load_charades_ego, load_egomcq
from .data import EK100Split, TrainingCollator
from .evaluation import evaluate_charades_ego, evaluate_egomcq, evaluate_ek100_mir

DEFAULT_CACHE_DIR = os.path.join(tempfile.gettempdir(), "eva02at-eval-cache")


class BenchmarkData(NamedTuple):
    """What a benchmark's loader returns."""

    inputs: tuple[Any, ...]  # the evaluator's data arguments, between ``processor`` and ``accelerator``
    info: dict[str, Any]  # counts written next to the metrics in a results JSON (num_clips, ...)


@dataclass(frozen=True)
class Metric:
    """One metric an evaluator returns: its Hub ``model-index`` type and display name, and its direction."""

    hub_type: str
    display_name: str
    higher_is_better: bool = True


@dataclass(frozen=True)
class HubMetadata:
    """How a benchmark appears in a model card: the results-table title and the ``model-index`` task / dataset."""

    title: str
    task_type: str
    task_name: str
    dataset_type: str
    dataset_name: str


@dataclass(frozen=True)
class Benchmark:
    """One benchmark's declaration (see the module docstring for who reads which field).

    ``loader(data_dir, video_root, split, cache_dir: str | None, **builder_kwargs)`` returns `BenchmarkData`;
    ``evaluator(model, processor, *data.inputs, accelerator, num_frames=, batch_size=, num_workers=)`` returns
    ``{metric: value, ..., "num_skipped": n}``. ``clips_per_example``: clips decoded per evaluated example (EgoMCQ:
    the 5 choices of a question), so that a batch size in clips becomes one in examples.
    """

    name: str
    description: str
    loader: Callable[..., BenchmarkData]
    evaluator: Callable[..., dict[str, float]]
    collator: type
    metrics: Mapping[str, Metric]
    hub: HubMetadata
    split: str = "test"
    splits: tuple[str, ...] = ("test",)
    flag_prefix: str = ""
    num_frames: int | None = None
    clips_per_example: int = 1

    def __post_init__(self) -> None:
        if self.split not in self.splits:
            raise ValueError(f"benchmark {self.name!r}: split {self.split!r} is not one of {self.splits}")
        if not self.metrics:
            raise ValueError(f"benchmark {self.name!r} declares no metric")

    @property
    def prefix(self) -> str:
        """The zero-shot script's flag prefix (``--<prefix>_dir``); the name when none is declared."""
        return self.flag_prefix or self.name

    def check_split(self, split: str | None) -> str:
        """``split`` (default: the benchmark's), or a ValueError naming ``--split`` and the allowed splits."""
        split = split or self.split
        if split not in self.splits:
            raise ValueError(f"--split {split}: {self.name} has the splits {', '.join(self.splits)}")
        return split

    def load(
        self,
        data_dir: str | os.PathLike,
        video_root: str | os.PathLike,
        split: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        **builder_kwargs: Any,
    ) -> BenchmarkData:
        """The ``split`` (default: the benchmark's) of the annotation files in ``data_dir``; ``cache_dir`` holds
        the built datasets and derived matrices (None: the datasets cache, and `DEFAULT_CACHE_DIR`)."""
        cache = None if cache_dir is None else os.fspath(cache_dir)
        return self.loader(data_dir, video_root, self.check_split(split), cache, **builder_kwargs)

    def evaluate(
        self,
        model: torch.nn.Module,
        processor: Any,
        data: BenchmarkData,
        accelerator: Accelerator,
        num_frames: int,
        batch_size: int = 16,
        num_workers: int = 0,
    ) -> dict[str, float]:
        """The evaluator on ``data``; ``batch_size`` counts clips per process per batch."""
        return self.evaluator(
            model,
            processor,
            *data.inputs,
            accelerator,
            num_frames=num_frames,
            batch_size=max(1, batch_size // self.clips_per_example),
            num_workers=num_workers,
        )

    def evaluation(
        self, processor: Any, data: BenchmarkData, num_frames: int, batch_size: int = 16, num_workers: int = 0
    ) -> Callable[[torch.nn.Module, Accelerator], dict[str, float]]:
        """``evaluate(model, accelerator)`` on ``data``: the hook a `TrainingLoop` calls."""

        def evaluate(model: torch.nn.Module, accelerator: Accelerator) -> dict[str, float]:
            return self.evaluate(model, processor, data, accelerator, num_frames, batch_size, num_workers)

        return evaluate


BENCHMARKS: dict[str, Benchmark] = {}


def register_benchmark(benchmark: Benchmark) -> Benchmark:
    """Add ``benchmark`` to `BENCHMARKS`; a name already taken, or a metric name another benchmark declares with
    the opposite direction (the loop could not tell which is better), raises a ValueError."""
    if benchmark.name in BENCHMARKS:
        raise ValueError(f"benchmark {benchmark.name!r} is already registered")
    for name, metric in benchmark.metrics.items():
        for other in BENCHMARKS.values():
            if name in other.metrics and other.metrics[name].higher_is_better != metric.higher_is_better:
                raise ValueError(
                    f"benchmark {benchmark.name!r}: metric {name!r} has the opposite direction in {other.name!r}"
                )
    BENCHMARKS[benchmark.name] = benchmark
    return benchmark


def unregister_benchmark(name: str) -> Benchmark:
    """Remove and return the benchmark ``name``."""
    return BENCHMARKS.pop(get_benchmark(name).name)


def get_benchmark(name: str) -> Benchmark:
    """The registered benchmark ``name``, or a ValueError listing the registered ones."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; registered: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]


def higher_is_better(metric: str) -> bool:
    """The direction of ``metric`` as its benchmark declares it (True for a name no benchmark declares)."""
    for benchmark in BENCHMARKS.values():
        if metric in benchmark.metrics:
            return benchmark.metrics[metric].higher_is_better
    return True


def is_improvement(metric: str, value: float, best: float | None) -> bool:
    """Whether ``value`` of ``metric`` beats ``best`` (None: nothing yet) in the metric's direction."""
    if best is None:
        return True
    return value > best if higher_is_better(metric) else value < best


def benchmark_for_metrics(names: Iterable[str]) -> Benchmark | None:
    """The first registered benchmark declaring the most of ``names`` (e.g. ``mAP_avg``: ek100_mir), or None."""
    names = set(names)
    best = max(BENCHMARKS.values(), key=lambda b: len(names & set(b.metrics)), default=None)
    return best if best is not None and names & set(best.metrics) else None


# ---------------------------------------------------------------------------------------------------- loaders


def mir_data(split: EK100Split) -> BenchmarkData:
    """`BenchmarkData` of a loaded EK-100 MIR split (clips x sentences with their relevancy)."""
    return BenchmarkData(
        (split.clips, split.sentences, split.relevancy),
        {
            "num_clips": len(split.clips),
            "num_sentences": len(split.sentences),
            "num_missing_clips": split.num_missing_clips,
            "relevancy": split.relevancy_source,
        },
    )


def load_mir(
    data_dir: str | os.PathLike,
    video_root: str | os.PathLike,
    split: str,
    cache_dir: str | None = None,
    **builder_kwargs: Any,
) -> BenchmarkData:
    """An EK-100 MIR layout (the real set, or `eva02at_hf.data.synthetic`'s) as `EK100Split`."""
    return mir_data(
        EK100Split(
            data_dir,
            video_root,
            split,
            cache_dir or DEFAULT_CACHE_DIR,
            datasets_cache_dir=cache_dir,
            **builder_kwargs,
        )
    )


def load_egomcq_questions(
    data_dir: str | os.PathLike,
    video_root: str | os.PathLike,
    split: str,
    cache_dir: str | None = None,
    **builder_kwargs: Any,
) -> BenchmarkData:
    """EgoMCQ's questions (``egomcq.json``; one split, validation)."""
    questions = load_egomcq(data_dir, video_root, cache_dir=cache_dir, **builder_kwargs)
    return BenchmarkData((questions,), {"num_questions": len(questions)})


def load_charades_ego_videos(
    data_dir: str | os.PathLike,
    video_root: str | os.PathLike,
    split: str,
    cache_dir: str | None = None,
    **builder_kwargs: Any,
) -> BenchmarkData:
    """Charades-Ego videos of ``split`` with the class names their prompts are made of."""
    videos = load_charades_ego(data_dir, video_root, split, cache_dir=cache_dir, **builder_kwargs)
    return BenchmarkData((videos, charades_ego_class_names(data_dir)), {"num_videos": len(videos)})


# ------------------------------------------------------------------------------------------------ declarations

EK100_MIR = register_benchmark(
    Benchmark(
        name="ek100_mir",
        description="EPIC-KITCHENS-100 multi-instance retrieval: mAP / nDCG against the soft relevancy",
        loader=load_mir,
        evaluator=evaluate_ek100_mir,
        collator=TrainingCollator,
        metrics={
            "mAP_v2t": Metric("map", "mAP V→T"),
            "mAP_t2v": Metric("map", "mAP T→V"),
            "mAP_avg": Metric("map", "mAP avg"),
            "nDCG_v2t": Metric("ndcg", "nDCG V→T"),
            "nDCG_t2v": Metric("ndcg", "nDCG T→V"),
            "nDCG_avg": Metric("ndcg", "nDCG avg"),
        },
        hub=HubMetadata(
            title="EPIC-KITCHENS-100 multi-instance retrieval (test split)",
            task_type="video-text-retrieval",
            task_name="Multi-instance video-text retrieval",
            dataset_type="epic-kitchens-100-mir",
            dataset_name="EPIC-KITCHENS-100 MIR",
        ),
        splits=("train", "test"),
        flag_prefix="ek100",
    )
)
register_benchmark(
    Benchmark(
        name="egomcq",
        description="Ego4D EgoMCQ: inter- / intra-video accuracy of 5-way multiple choice",
        loader=load_egomcq_questions,
        evaluator=evaluate_egomcq,
        collator=MultipleChoiceCollator,
        metrics={
            "inter_video_accuracy": Metric("accuracy", "Inter-video accuracy"),
            "intra_video_accuracy": Metric("accuracy", "Intra-video accuracy"),
        },
        hub=HubMetadata(
            title="Ego4D EgoMCQ (validation)",
            task_type="multiple-choice",
            task_name="Video multiple-choice question answering",
            dataset_type="ego4d-egomcq",
            dataset_name="EgoMCQ",
        ),
        split="validation",
        splits=("validation",),
        num_frames=4,  # the paper's EgoMCQ setup
        clips_per_example=5,
    )
)
register_benchmark(
    Benchmark(
        name="charades_ego",
        description="Charades-Ego action recognition: video-level mAP of class-name retrieval",
        loader=load_charades_ego_videos,
        evaluator=evaluate_charades_ego,
        collator=TrainingCollator,
        metrics={"mAP": Metric("map", "mAP")},
        hub=HubMetadata(
            title="Charades-Ego action recognition, video-to-text (test split)",
            task_type="video-classification",
            task_name="Action recognition",
            dataset_type="charades-ego",
            dataset_name="Charades-Ego",
        ),
        splits=("train", "test"),
        flag_prefix="charades",
    )
)
# The synthetic set is written in the EK-100 MIR layout: the same loader, evaluator and metrics, its own dataset.
register_benchmark(
    replace(
        EK100_MIR,
        name="synthetic",
        description="the synthetic egocentric set (python -m eva02at_hf.data.synthetic): EK-100 MIR metrics",
        hub=replace(
            EK100_MIR.hub,
            title="Synthetic egocentric retrieval set (eva02at_hf.data.synthetic, test split)",
            dataset_type="eva02at-synthetic",
            dataset_name="EVA02-AT synthetic set",
        ),
        flag_prefix="",
    )
)

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "BenchmarkData",
    "DEFAULT_CACHE_DIR",
    "HubMetadata",
    "Metric",
    "benchmark_for_metrics",
    "get_benchmark",
    "higher_is_better",
    "is_improvement",
    "mir_data",
    "register_benchmark",
    "unregister_benchmark",
]
