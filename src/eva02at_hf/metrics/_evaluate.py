"""Whole-matrix inputs for the packaged `evaluate` modules, without the Arrow round trip.

`evaluate.EvaluationModule.compute` writes every input row to an Arrow table (a per-row Python encoding of each
``Sequence`` feature) and reads the columns back as lists of Python floats; on the EK-100 test matrix (9,668 x
3,842) that costs ~15x the metric itself. The cache exists to gather the rows of several processes
(``num_process > 1``) and the batches of ``add_batch``; a single-process ``compute(predictions=..., references=...)``
needs neither, so `DirectCompute` hands the inputs (arrays, tensors or lists) straight to ``_compute``, whose
plain function validates them. Everything else keeps evaluate's own path.
"""

from __future__ import annotations

from typing import Any

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


__all__ = ["DirectCompute"]
