"""Stand-in for transformers' `tests/exporters/test_export.py`, absent from the sdist.

The real mixin adds torch.export / ONNX / ExecuTorch export tests; they are not run here (see
`tests/test_transformers_common.py`).
"""


class ExportTesterMixin:
    """Base class of `ModelTesterMixin`; contributes no tests."""
