"""The shared body of the packaged `evaluate` modules, and their whole-matrix inputs without the Arrow round trip.

`evaluate.EvaluationModule.compute` writes every input row to an Arrow table (a per-row Python encoding of each
``Sequence`` feature) and reads the columns back as lists of Python floats; on the EK-100 test matrix (9,668 x
3,842) that costs ~15x the metric itself. The cache exists to gather the rows of several processes
(``num_process > 1``) and the batches of ``add_batch``; a single-process ``compute(predictions=..., references=...)``
needs neither, so `DirectCompute` hands the inputs (arrays, tensors or lists) straight to ``_compute``, whose
plain function validates them. Everything else keeps evaluate's own path.

`PackagedMetric` is the one `evaluate.Metric` body of the packaged modules: each module declares its plain
function, input features, texts and links, and imports this file as a module (``evaluate.load`` takes the first
`EvaluationModule` subclass found in the module's namespace, which must be the module's own class).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import datasets
import evaluate
from datasets.utils.py_utils import temp_seed


class DirectCompute:
    """Mixin placed before `evaluate.Metric`: single-process ``compute`` of complete inputs skips the Arrow cache.

    Taken when the module runs in one process, no ``add``/``add_batch`` rows are pending, and every input feature
    is given; the result is the one evaluate's path returns (``_compute`` gets the same values, unconverted).
    """

    def compute(self, *, predictions: Any = None, references: Any = None, **kwargs: Any) -> dict | None:
        """Compute the metric; ``predictions``, ``references`` (and the module's other inputs) as arrays,
        tensors or nested lists. Returns the results dict (``None`` on processes other than 0).
        """
        names = self._feature_names()
        given = {"predictions": predictions, "references": references, **kwargs}
        if self.num_process == 1 and self.writer is None and all(given.get(n) is not None for n in names):
            inputs = {name: given[name] for name in names}
            options = {key: value for key, value in kwargs.items() if key not in names}
            with temp_seed(self.seed):
                return self._compute(**inputs, **options)
        return super().compute(predictions=predictions, references=references, **kwargs)


class MetricCard(NamedTuple):
    """What an `evaluate` module says about itself (`evaluate.MetricInfo`'s texts and links)."""

    description: str
    inputs_description: str
    citation: str
    homepage: str
    codebase_url: str
    reference_url: str


class PackagedMetric(DirectCompute, evaluate.Metric):
    """An `evaluate.Metric` over one plain metric function of `eva02at_hf.metrics`.

    A subclass sets ``function`` (called with the inputs in the order of ``input_features``), ``input_features``
    (name -> `datasets` feature; ``predictions`` and ``references`` first) and ``card``; its docstring is the
    card's description and inputs description, as `evaluate`'s ``add_start_docstrings`` writes it.
    """

    function: ClassVar[Callable[..., dict[str, float]]]
    input_features: ClassVar[dict[str, datasets.Sequence | datasets.Value]]
    card: ClassVar[MetricCard]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.__doc__ = cls.card.description + cls.card.inputs_description

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=self.card.description,
            citation=self.card.citation,
            inputs_description=self.card.inputs_description,
            features=datasets.Features(self.input_features),
            homepage=self.card.homepage,
            codebase_urls=[self.card.codebase_url],
            reference_urls=[self.card.reference_url],
        )

    def _compute(self, **inputs: Any) -> dict[str, float]:
        unknown = sorted(inputs.keys() - self.input_features.keys())
        if unknown:
            raise TypeError(
                f"{self.name} got unexpected inputs {unknown}; it takes {list(self.input_features)}"
            )
        return type(self).function(*(inputs[name] for name in self.input_features))


__all__ = ["DirectCompute", "MetricCard", "PackagedMetric"]
