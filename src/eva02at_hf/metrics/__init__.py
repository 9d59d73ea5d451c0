"""Benchmark metrics of the paper: EK-100 MIR (mAP, nDCG), EgoMCQ (inter/intra accuracy), Charades-Ego (mAP).

The plain functions take numpy arrays or torch tensors and return dicts of percentages. The same metrics are
`evaluate` modules (folders next to this file), loadable offline with [`load`] or
`evaluate.load("<path to the module folder>")`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .classification import charades_ego_map
from .multiple_choice import egomcq_accuracy
from .retrieval import ek100_mir, load_relevancy_pickle, mir_per_query

if TYPE_CHECKING:
    import evaluate

EVALUATE_MODULES = ("ek100_mir", "egomcq", "charades_ego")


def module_path(name: str) -> str:
    """Folder of the `evaluate` module `name` inside the installed package, as `evaluate.load` takes it."""
    if name not in EVALUATE_MODULES:
        raise ValueError(f"unknown metric {name!r}; available: {', '.join(EVALUATE_MODULES)}")
    return str(Path(__file__).resolve().parent / name)


def load(name: str, **kwargs: Any) -> evaluate.EvaluationModule:
    """`evaluate.load` of the packaged module `name` (`ek100_mir`, `egomcq` or `charades_ego`); works offline."""
    import evaluate

    return evaluate.load(module_path(name), **kwargs)


__all__ = [
    "EVALUATE_MODULES",
    "charades_ego_map",
    "egomcq_accuracy",
    "ek100_mir",
    "load",
    "load_relevancy_pickle",
    "mir_per_query",
    "module_path",
]
