"""Stand-in for transformers' `tests/generation/test_utils.py`, absent from the sdist.

`ModelTesterMixin` only checks whether a tester inherits `GenerationTesterMixin`; EVA02-AT does not generate, so its
testers must not.
"""


class GenerationTesterMixin:
    """Marker class for testers of generative models."""
