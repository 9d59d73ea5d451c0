"""The loss interface: the name -> class registry, its defaults, `forward(similarity, relevancy=None)`, the
scripts' --loss choices, and the model's InfoNCE against `InfoNCELoss`."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_training_recipe import _example

from eva02at_hf import objectives
from eva02at_hf.objectives import LOSSES, RetrievalObjective, build_loss

SIM = torch.tensor([[0.6, 0.55, 0.1], [0.5, 0.4, 0.3], [0.0, 0.45, 0.3]])
HARD = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 1.0]])

# The paper's values (Sec. V-A, Table V; EgoVLP's EgoNCE at InfoNCE's temperature) and the authors' SMS edge.
DOCUMENTED = {
    "sms": ("SMSLoss", {"margin": 0.6, "tau": 0.1, "lambda_": 1.1 / 240, "relevancy_levels": 240}),
    "sms_hard": ("SMSHardLoss", {"margin": 0.3, "tau": 0.1, "lambda_": 0.5, "relevancy_levels": None}),
    "adaptive_mimm": ("AdaptiveMIMMLoss", {"margin": 0.4, "reduction": "mean"}),
    "mimm": ("MIMMLoss", {"margin": 0.2, "reduction": "mean"}),
    "infonce": ("InfoNCELoss", {"temperature": 0.05}),
    "egonce": ("EgoNCELoss", {"temperature": 0.05}),
}


def _field(arguments: type, name: str) -> dataclasses.Field:
    return next(f for f in dataclasses.fields(arguments) if f.name == name)


@pytest.mark.parametrize("name", list(DOCUMENTED))
def test_every_registered_name_builds_with_the_documented_defaults(name: str) -> None:
    cls, expected = DOCUMENTED[name]
    loss = build_loss(name)
    assert type(loss).__name__ == cls and LOSSES[name] is type(loss)
    defaults = objectives.loss_defaults(name)
    for attribute, value in expected.items():
        actual = getattr(loss, attribute)
        assert actual == (pytest.approx(value) if isinstance(value, float) else value), f"{name}.{attribute}"
        if attribute in defaults:  # SMS-hard's edge is fixed, not an argument
            assert defaults[attribute] == actual, f"{name}.{attribute}"


def test_registry_lists_the_losses_and_derives_margins_and_soft_labels() -> None:
    assert set(LOSSES) == set(DOCUMENTED)
    assert all(issubclass(cls, objectives.RetrievalLoss) for cls in LOSSES.values())
    assert objectives.paper_margins() == {"sms": 0.6, "sms_hard": 0.3, "adaptive_mimm": 0.4, "mimm": 0.2}
    assert set(objectives.soft_label_losses()) == set(DOCUMENTED) - {"sms_hard"}


def test_build_loss_options_presets_and_unknown_names() -> None:
    sms = build_loss("sms", margin=0.5, tau=0.2, sms_lambda=0.05)
    assert (sms.margin, sms.tau, sms.lambda_, sms.relevancy_levels) == (0.5, 0.2, 0.05, 240)
    paper = build_loss("sms", sms_preset="paper")
    assert (paper.lambda_, paper.relevancy_levels) == (0.1, None)
    # the class's own defaults are the "paper" preset; the registry starts from the authors' code
    assert (objectives.SMSLoss().lambda_, objectives.SMSLoss().relevancy_levels) == (0.1, None)
    assert build_loss("infonce", temperature=0.1).temperature == 0.1
    # options a loss does not take are ignored: a script passes its whole set
    infonce = build_loss("infonce", margin=0.3, tau=0.2, sms_preset="paper", sms_lambda=0.2)
    assert infonce.temperature == 0.05
    hard = build_loss("sms_hard", margin=0.2, sms_preset="paper", sms_lambda=0.01, temperature=1.0)
    assert (hard.margin, hard.lambda_, hard.relevancy_levels) == (0.2, 0.5, None)
    with pytest.raises(ValueError, match=r"unknown loss 'triplet'.*'sms'"):
        build_loss("triplet")
    with pytest.raises(ValueError, match="unknown SMS preset 'eq16'"):
        build_loss("sms", sms_preset="eq16")
    with pytest.raises(ValueError, match=r"unknown loss option\(s\) \['margn'\]"):
        build_loss("sms", margn=0.3)
    summed = build_loss("mimm", reduction="sum", neutral="hinge")  # any constructor argument; others ignored
    assert (summed.margin, summed.reduction) == (0.2, "sum")


class _ToyLoss(objectives.RetrievalLoss):
    def forward(self, similarity: torch.Tensor, relevancy: torch.Tensor | None = None) -> torch.Tensor:
        return similarity.sum()


class _ToyHardLoss(_ToyLoss):
    hard_labels = True


def test_script_loss_choices_and_defaults_come_from_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(LOSSES, "toy", _ToyLoss)
    monkeypatch.setitem(LOSSES, "toy_hard", _ToyHardLoss)
    ek100 = _example("finetune_ek100").EK100Arguments
    choices = _field(ek100, "loss").metadata["choices"]
    assert tuple(choices) == ("sms", "adaptive_mimm", "mimm", "infonce", "egonce", "toy")
    assert _field(ek100, "tau").default == 0.1 and _field(ek100, "temperature").default == 0.05
    assert "sms 0.6, adaptive_mimm 0.4, mimm 0.2" in _field(ek100, "margin").metadata["help"]
    charades = _example("finetune_charades_ego").CharadesArguments
    assert (_field(charades, "margin").default, _field(charades, "tau").default) == (0.3, 0.1)
    assert _field(_example("pretrain_egoclip").EgoClipArguments, "temperature").default == 0.05


@pytest.mark.parametrize("name", list(DOCUMENTED))
def test_each_loss_takes_relevancy_none_or_names_itself(name: str) -> None:
    loss = build_loss(name)
    relevancy = HARD  # 0 / 1 with a diagonal of 1: valid for every loss
    if LOSSES[name].uses_relevancy:
        with pytest.raises(ValueError, match=rf"{type(loss).__name__} needs `relevancy`.*got None"):
            loss(SIM, None)
        with pytest.raises(ValueError, match=rf"{type(loss).__name__} needs `relevancy`"):
            loss(SIM)
    else:  # not used: the same value with or without it
        assert torch.isfinite(loss(SIM))
        assert loss(SIM, None).item() == loss(SIM, relevancy).item()
        with pytest.raises(ValueError, match="relevancy"):
            loss(SIM, torch.eye(2))  # still checked when given
    assert torch.isfinite(loss(SIM, relevancy))


def test_egonce_thresholds_the_relevancy_at_zero() -> None:
    similarity = torch.tensor([[0.5, 0.1], [0.2, 0.4]])
    # c_01 = 0.25 > 0: video 0 also matches text 1; c_10 = 0: not a positive. As in test_egonce_hand_computed:
    # logits / 0.1 = [[5, 1], [2, 4]]; v2t row 1: log(1 + e^-2); t2v text 0: log(1 + e^-3); the others 0.
    expected = math.log1p(math.exp(-2)) / 2 + math.log1p(math.exp(-3)) / 2
    soft = torch.tensor([[0.9, 0.25], [0.0, 0.6]])
    assert build_loss("egonce", temperature=0.1)(similarity, soft).item() == pytest.approx(expected, rel=1e-5)
    mask = torch.tensor([[False, True], [False, False]])
    assert build_loss("egonce", temperature=0.1)(similarity, mask).item() == pytest.approx(expected, rel=1e-5)


def _batch(size: int, with_sentences: bool = True) -> dict[str, torch.Tensor]:
    batch = {"valid": torch.ones(size, dtype=torch.bool), "clip_index": torch.arange(size)}
    if with_sentences:
        batch["sentence_index"] = torch.tensor([1, 0, 2][:size])
    return batch


def test_objective_passes_the_batch_relevancy_only_to_the_losses_that_use_it() -> None:
    generator = torch.Generator().manual_seed(0)
    videos = F.normalize(torch.randn(3, 4, generator=generator), dim=-1)
    texts = F.normalize(torch.randn(3, 4, generator=generator), dim=-1)
    matrix = np.array([[0.2, 1.0, 0.0], [1.0, 0.0, 0.5], [0.0, 0.0, 1.0]], dtype=np.float32)
    similarity = videos @ texts.T
    # relevancy-free losses need neither the matrix nor the sentence indices
    for loss in (build_loss("infonce"), build_loss("mimm")):
        value = RetrievalObjective(loss)(videos, texts, _batch(3, with_sentences=False))
        assert value.item() == pytest.approx(loss(similarity).item())
    # batch relevancy rows = clips 0, 1, 2, columns = sentences 1, 0, 2
    rebuilt = torch.tensor([[1.0, 0.2, 0.0], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    for loss in (objectives.SMSLoss(), build_loss("adaptive_mimm"), build_loss("egonce")):
        value = RetrievalObjective(loss, matrix)(videos, texts, _batch(3))
        assert value.item() == pytest.approx(loss(similarity, rebuilt).item(), rel=1e-6)
    egonce_mask = torch.tensor([[True, True, False], [False, True, True], [False, False, True]])
    egonce = build_loss("egonce")
    assert RetrievalObjective(egonce, matrix)(videos, texts, _batch(3)).item() == pytest.approx(
        egonce(similarity, egonce_mask).item(), rel=1e-6
    )
    for loss in map(build_loss, ("sms", "sms_hard", "adaptive_mimm", "egonce")):
        with pytest.raises(ValueError, match=f"{type(loss).__name__} needs the training relevancy"):
            RetrievalObjective(loss)


def test_model_infonce_is_infonce_loss_at_the_model_temperature(tiny_model, tiny_inputs) -> None:
    pairs = {name: tiny_inputs[name][:2] for name in ("input_ids", "attention_mask", "pixel_values")}
    with torch.no_grad():
        out = tiny_model(**pairs, return_loss=True)
        cosine = out.video_embeds @ out.text_embeds.T
        # CLIP's initial log(1 / 0.07): the loss is InfoNCE at temperature 0.07, not the recipes' 0.05
        assert tiny_model.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
        at_model = build_loss("infonce", temperature=1 / tiny_model.logit_scale.exp().item())(cosine)
        assert out.loss.item() == pytest.approx(at_model.item(), rel=1e-5)
        assert abs(out.loss.item() - build_loss("infonce")(cosine).item()) > 1e-4
        tiny_model.logit_scale.fill_(math.log(20.0))  # 1 / 0.05
        assert tiny_model(**pairs, return_loss=True).loss.item() == pytest.approx(
            build_loss("infonce")(cosine).item(), rel=1e-5
        )
