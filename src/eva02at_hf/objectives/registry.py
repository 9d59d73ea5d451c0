"""The losses by name: the one declaration that `build_loss`, the scripts' ``--loss`` choices and defaults read.

Adding a loss: write a `RetrievalLoss` subclass in `losses.py` (``forward(similarity, relevancy=None)``, its
constructor defaults the paper's values, ``uses_relevancy`` / ``hard_labels`` set) and add one entry to `LOSSES`.
"""

from __future__ import annotations

import inspect
from typing import Any

from . import losses
from .losses import RetrievalLoss

LOSSES: dict[str, type[RetrievalLoss]] = {
    "sms": losses.SMSLoss,
    "sms_hard": losses.SMSHardLoss,
    "adaptive_mimm": losses.AdaptiveMIMMLoss,
    "mimm": losses.MIMMLoss,
    "infonce": losses.InfoNCELoss,
    "egonce": losses.EgoNCELoss,
}
"""Name -> loss class, in the order the scripts list them."""


def loss_class(name: str) -> type[RetrievalLoss]:
    """The class registered as ``name``; a ValueError lists the names otherwise."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {tuple(LOSSES)}")
    return LOSSES[name]


def loss_defaults(name: str) -> dict[str, Any]:
    """The arguments `build_loss(name)` uses: the class's paper defaults and, for SMS, `DEFAULT_SMS_PRESET`."""
    return loss_class(name).recipe_defaults()


def soft_label_losses() -> tuple[str, ...]:
    """The losses that train on a soft relevancy (EK-100 MIR): all but those needing hard 0 / 1 labels."""
    return tuple(name for name, cls in LOSSES.items() if not cls.hard_labels)


def paper_margins() -> dict[str, float]:
    """Each margin loss's gamma in the paper (Sec. V-A, Table V: SMS 0.6, SMS-hard 0.3, adaptive MI-MM 0.4,
    MI-MM 0.2), read from the classes' defaults."""
    return {name: defaults["margin"] for name in LOSSES if "margin" in (defaults := loss_defaults(name))}


def build_loss(
    name: str, *, sms_preset: str | None = None, sms_lambda: float | None = None, **options: Any
) -> RetrievalLoss:
    """The loss registered as ``name`` with the paper's hyper-parameters (`loss_defaults`).

    ``options`` are constructor arguments (``margin``, ``tau``, ``temperature``, ``reduction``, ...). One left None
    takes the class's default; one the loss does not take is ignored, so that a script can pass its whole set
    whatever ``--loss`` is (the built loss's repr, saved in ``recipe.json``, shows what is used); one no registered
    loss takes is an error. SMS starts from `SMS_PRESETS[sms_preset]` (default `DEFAULT_SMS_PRESET`,
    "authors_code": lambda = 1.1 / 240 on uint8 x 240 relevancy; "paper": lambda = epsilon = 0.1); ``sms_lambda``
    overrides its lambda.
    """
    cls = loss_class(name)
    known = {key for loss in LOSSES.values() for key in inspect.signature(loss).parameters}
    if unknown := sorted(set(options) - known):
        raise ValueError(f"unknown loss option(s) {unknown}; the losses take {sorted(known)}")
    if sms_lambda is not None:
        options["lambda_"] = sms_lambda
    return cls.from_options(preset=sms_preset, **options)
