"""Training objectives: hand-computed values, SMS branches, gradient directions, distributed equivalence."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from eva02at_hf import (
    AdaptiveMIMMLoss,
    EgoNCELoss,
    InfoNCELoss,
    MIMMLoss,
    SMSHardLoss,
    SMSLoss,
    gather_with_grad,
)
from eva02at_hf.objectives import RetrievalObjective, build_loss
from eva02at_hf.objectives.losses import quantize_relevancy, sms_terms

# 3 x 3 batch covering every SMS branch. Row i = video i, column j = text j (text j = video j's positive).
# v2t R_ik = C[i, i] - C[i, k]; t2v R_ik = C[i, i] - C[k, i].
SIM = torch.tensor([[0.6, 0.55, 0.1], [0.5, 0.4, 0.3], [0.0, 0.45, 0.3]])
REL = torch.tensor([[1.0, 0.5, 0.0], [0.75, 0.5, 0.25], [0.0, 0.5, 0.5]])


def test_info_nce_hand_computed():
    similarity = torch.tensor([[0.5, 0.1], [0.2, 0.4]])
    # logits / 0.1 = [[5, 1], [2, 4]]; -log softmax of the diagonal.
    v2t = (math.log1p(math.exp(-4)) + math.log1p(math.exp(-2))) / 2
    t2v = (math.log1p(math.exp(-3)) + math.log1p(math.exp(-3))) / 2
    assert InfoNCELoss(temperature=0.1)(similarity).item() == pytest.approx((v2t + t2v) / 2, rel=1e-5)


def test_mimm_hand_computed():
    similarity = torch.tensor([[0.5, 0.4], [0.2, 0.3]])
    # v2t: [0.2 - 0.5 + 0.4]_+ = 0.1, [0.2 - 0.3 + 0.2]_+ = 0.1; t2v: [0.2 - 0.5 + 0.2]_+ = 0, [0.2 - 0.3 + 0.4]_+ = 0.3
    assert MIMMLoss(margin=0.2)(similarity).item() == pytest.approx(0.5 / 4)
    assert MIMMLoss(margin=0.2, reduction="sum")(similarity).item() == pytest.approx(0.5)


def test_adaptive_mimm_hand_computed():
    similarity = torch.tensor([[0.5, 0.4], [0.2, 0.3]])
    relevancy = torch.tensor([[1.0, 0.9], [0.9, 0.5]])  # only the diagonal counts
    # margins c_ii * 0.4 = 0.4, 0.2. v2t: 0.4 - 0.5 + 0.4 = 0.3, 0.2 - 0.3 + 0.2 = 0.1;
    # t2v: 0.4 - 0.5 + 0.2 = 0.1, 0.2 - 0.3 + 0.4 = 0.3
    assert AdaptiveMIMMLoss(margin=0.4)(similarity, relevancy).item() == pytest.approx(0.8 / 4)


def test_sms_terms_each_branch():
    terms = sms_terms(SIM, REL, margin=0.6, tau=0.1, lambda_=0.1)
    expected = torch.tensor(
        [
            [0.0, 0.25, 0.1],  # R = 0.5: [0.3 - 0.6 + 0.55]_+ ; R = 1: [0.6 - 0.6 + 0.1]_+
            [0.05, 0.0, 0.05],  # R = -0.25: [0.15 + 0.4 - 0.5]_+ ; R = 0.25: [0.15 - 0.4 + 0.3]_+
            [0.0, 0.05, 0.0],  # R = 0.5: [0.3 - 0.3 + 0]_+ ; R = 0: [|0.3 - 0.45| - 0.1]_+
        ]
    )
    torch.testing.assert_close(terms, expected)


def test_sms_loss_hand_computed():
    # v2t terms sum to 0.5 (above); t2v on SIM.T / REL.T:
    # text 0: R = 0.25 -> [0.15 - 0.6 + 0.5]_+ = 0.05, R = 1 -> [0.6 - 0.6 + 0]_+ = 0
    # text 1: R = 0 -> [|0.4 - 0.55| - 0.1]_+ = 0.05, R = 0 -> [|0.4 - 0.45| - 0.1]_+ = 0
    # text 2: R = 0.5 -> [0.3 - 0.3 + 0.1]_+ = 0.1, R = 0.25 -> [0.15 - 0.3 + 0.3]_+ = 0.15
    assert SMSLoss()(SIM, REL).item() == pytest.approx(0.85 / 12)
    assert SMSLoss(reduction="sum")(SIM, REL).item() == pytest.approx(0.85)


def test_sms_tau_zero():
    # |R| < lambda terms become |gap|: 0.15 (v2t video 2), 0.15 and 0.05 (t2v text 1) instead of 0.05, 0.05, 0.
    assert SMSLoss(tau=0.0, reduction="sum")(SIM, REL).item() == pytest.approx(1.1)


def test_sms_hinge_neutral_branch_as_printed_in_eq16():
    # [S_ii - S_ik]_+ on the three |R| < lambda triplets: [0.3 - 0.45]_+, [0.4 - 0.55]_+, [0.4 - 0.45]_+ = 0.
    assert SMSLoss(neutral="hinge", reduction="sum")(SIM, REL).item() == pytest.approx(0.75)


def test_sms_lambda_selects_the_branch():
    similarity = torch.tensor([[0.5, 0.49], [0.0, 0.9]])
    relevancy = torch.tensor([[0.5, 0.45], [0.0, 1.0]])  # v2t R_01 = 0.05, gap = 0.01
    # lambda = 0.1: relaxed [|0.05 * 0.6 - 0.01| - 0.1]_+ = 0 ; lambda = 0.01: pull [0.05 * 0.6 - 0.01]_+ = 0.02
    assert sms_terms(similarity, relevancy, 0.6, 0.1, lambda_=0.1)[0, 1].item() == pytest.approx(0.0)
    assert sms_terms(similarity, relevancy, 0.6, 0.1, lambda_=0.01)[0, 1].item() == pytest.approx(0.02)


def test_sms_relaxed_branch_keeps_the_margin_of_small_r():
    # R = 0.05 < lambda = 0.1, gap = 0.3: the authors' [|R gamma - gap| - tau]_+ = |0.03 - 0.3| - 0.1 = 0.17
    # (Eq. 15 at R = 0 would give |gap| - tau = 0.2).
    similarity = torch.tensor([[0.5, 0.2], [0.0, 0.9]])
    relevancy = torch.tensor([[0.5, 0.45], [0.0, 1.0]])
    assert sms_terms(similarity, relevancy, 0.6, 0.1, lambda_=0.1)[0, 1].item() == pytest.approx(0.17)


def test_quantize_relevancy_truncates_to_uint8_levels():
    values = torch.tensor([0.0, 0.123, 0.35, 1 / 3, 0.5, 0.999, 1.0])
    # int(c * 240) / 240 in float64: 0, 29, 84, 80, 120, 239, 240
    expected = torch.tensor([0, 29, 84, 80, 120, 239, 240]) / 240
    torch.testing.assert_close(quantize_relevancy(values, 240), expected)


def _published_sms_reference(
    videos: list[list[float]],
    texts: list[list[float]],
    matrix: list[list[float]],
    clips: list[int],
    sentences: list[int],
) -> float:
    """The released SymmetricMultiSimiliarityLoss formula, written out in float64 from its definition: the
    positive's relevancy w_a is the float matrix entry, the negatives' relevancy is int(c * 240) / 240 (uint8),
    edge 1.1 / 240, margin 0.6, relaxation 0.1, mean over the 2 B (B - 1) off-diagonal terms."""
    size = len(clips)

    def dot(u: list[float], v: list[float]) -> float:
        return sum(p * q for p, q in zip(u, v, strict=True))

    def uint8(clip: int, sentence: int) -> float:
        return int(matrix[clip][sentence] * 240) / 240

    edge, margin, relaxation = 1.1 / 240, 0.6, 0.1
    terms = []
    for a in range(size):
        weight = matrix[clips[a]][sentences[a]]
        positive = dot(texts[a], videos[a])
        for b in range(size):
            if a == b:
                continue
            # text a as anchor against video b, then video a as anchor against text b
            for negative, relevancy in (
                (dot(texts[a], videos[b]), uint8(clips[b], sentences[a])),
                (dot(texts[b], videos[a]), uint8(clips[a], sentences[b])),
            ):
                r = weight - relevancy
                value = r * margin - (positive - negative)
                if r > edge:
                    terms.append(max(value, 0.0))
                elif abs(r) < edge:
                    terms.append(max(abs(value) - relaxation, 0.0))
                else:
                    terms.append(max(-value, 0.0))
    assert len(terms) == 2 * size * (size - 1)
    return sum(terms) / len(terms)


def test_sms_authors_code_preset_reproduces_the_published_formula():
    # 4 clips x 5 sentences; values chosen so that uint8 truncation and the edge matter: 0.123 -> 29 / 240,
    # 0.35 twice (R ~ 0 after truncation: neutral), 0.45 vs 0.5 (R = 0.05: pull with 1.1 / 240, neutral with
    # lambda = 0.1).
    matrix = [
        [1.0, 0.35, 0.123, 0.0, 0.45],
        [0.35, 0.5, 0.35, 0.6, 0.0],
        [0.123, 0.45, 1.0, 1 / 3, 0.5],
        [0.0, 0.75, 0.123, 0.35, 0.35],
    ]
    clips, sentences = [0, 1, 2, 3], [0, 1, 4, 3]
    generator = torch.Generator().manual_seed(3)
    videos = F.normalize(torch.randn(4, 6, generator=generator, dtype=torch.float64), dim=-1)
    texts = F.normalize(torch.randn(4, 6, generator=generator, dtype=torch.float64), dim=-1)
    expected = _published_sms_reference(videos.tolist(), texts.tolist(), matrix, clips, sentences)

    batch = {
        "clip_index": torch.tensor(clips),
        "sentence_index": torch.tensor(sentences),
        "valid": torch.ones(4, dtype=torch.bool),
    }
    dense = np.asarray(matrix, dtype=np.float32)
    objective = RetrievalObjective(build_loss("sms"), dense)  # the recipes' default preset
    loss = objective(videos.float(), texts.float(), batch)
    assert loss.item() == pytest.approx(expected, rel=1e-5, abs=1e-7)
    preset = SMSLoss.from_preset("authors_code")
    assert preset.lambda_ == pytest.approx(1.1 / 240) and preset.relevancy_levels == 240
    paper = RetrievalObjective(build_loss("sms", sms_preset="paper"), dense)(
        videos.float(), texts.float(), batch
    )
    assert abs(paper.item() - expected) > 1e-3  # the edge lambda = 0.1 changes the value on this batch
    override = build_loss("sms", sms_lambda=0.05)
    assert override.lambda_ == 0.05 and override.relevancy_levels == 240


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("positive", "negative"), [(0.5, 0.4), (0.6, 0.5), (0.9, 0.8), (1.0, 0.9)])
def test_sms_r_equal_to_lambda_takes_the_pull_branch(positive: float, negative: float, dtype: torch.dtype):
    # R = positive - negative = 0.1 = lambda exactly, though it rounds to 0.0999999 or 0.1000000 in floating
    # point. Eq. 16's R >= lambda branch: [0.1 * 0.6 - 0]_+ = 0.06 (equal similarities), not the relaxed 0.
    # The mirrored R = -lambda takes the push branch: [gap - R gamma]_+ = [0 + 0.1 * 0.6]_+ = 0.06.
    similarity = torch.tensor([[0.3, 0.3], [0.3, 0.3]], dtype=dtype)
    relevancy = torch.tensor([[positive, negative], [negative, positive]], dtype=dtype)
    terms = sms_terms(similarity, relevancy, margin=0.6, tau=0.1, lambda_=0.1)
    assert terms[0, 1].item() == pytest.approx(0.06, abs=1e-6)
    mirrored = torch.tensor([[negative, positive], [positive, negative]], dtype=dtype)
    assert sms_terms(similarity, mirrored, margin=0.6, tau=0.1, lambda_=0.1)[0, 1].item() == pytest.approx(
        0.06, abs=1e-6
    )


def test_sms_fig2b_negative_more_relevant_than_positive():
    # Video 0's sampled positive is only partially relevant (0.5) while text 1 matches it better (0.75).
    similarity = torch.tensor([[0.5, 0.5], [0.0, 0.9]], requires_grad=True)
    relevancy = torch.tensor([[0.5, 0.75], [0.0, 1.0]])
    SMSLoss()(similarity, relevancy).backward()
    # SMS: R = -0.25, [0.15 + 0.5 - 0.5]_+ active: lower S_00, raise S_01 (t2v triplets are inactive here).
    assert similarity.grad[0, 0] > 0 and similarity.grad[0, 1] < 0
    adaptive = similarity.detach().requires_grad_()
    AdaptiveMIMMLoss()(adaptive, relevancy).backward()
    # Adaptive MI-MM ignores c_01 and pulls the wrong way.
    assert adaptive.grad[0, 0] < 0 and adaptive.grad[0, 1] > 0


@pytest.mark.parametrize("r_sign", [1.0, -1.0])
def test_sms_gradient_direction_on_embeddings(r_sign: float):
    generator = torch.Generator().manual_seed(0)
    videos = F.normalize(torch.randn(2, 8, generator=generator), dim=-1).requires_grad_()
    texts = F.normalize(torch.randn(2, 8, generator=generator), dim=-1)
    # v2t anchor 0: R = c_00 - c_01 = +-0.5; every other triplet has |R| >= lambda and the same sign, so that
    # all terms move S_00 and S_01 the same way.
    if r_sign > 0:
        relevancy = torch.tensor([[0.75, 0.25], [0.25, 0.5]])
    else:
        relevancy = torch.tensor([[0.25, 0.75], [0.75, 0.5]])
    loss_fn = SMSLoss(margin=2.0)  # margin large enough to keep the anchor-0 triplet active for a few steps
    gap_before = (videos[0] @ texts[0] - videos[0] @ texts[1]).item()
    optimizer = torch.optim.SGD([videos], lr=0.05)
    for _ in range(5):
        optimizer.zero_grad()
        loss_fn(videos @ texts.T, relevancy).backward()
        optimizer.step()
    gap_after = (videos[0] @ texts[0] - videos[0] @ texts[1]).item()
    assert (gap_after - gap_before) * r_sign > 0


def test_sms_hard_matches_eq17():
    similarity = torch.tensor([[0.6, 0.5, 0.2], [0.3, 0.5, 0.7], [0.1, 0.2, 0.4]])
    relevancy = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 1.0]])
    # v2t: (0,1) R=0: [0.1 - 0.1]_+ = 0; (0,2) R=1: [0.3 - 0.6 + 0.2]_+ = 0; (1,0) R=1: [0.3 - 0.5 + 0.3] = 0.1;
    #      (1,2) R=1: [0.3 - 0.5 + 0.7] = 0.5; (2,0) R=1: [0.3 - 0.4 + 0.1] = 0; (2,1) R=0: [0.2 - 0.1] = 0.1
    # t2v (columns): text 0: (0,1) R=1: [0.3 - 0.6 + 0.3] = 0; (0,2) R=1: [0.3 - 0.6 + 0.1] = 0
    #      text 1: (1,0) R=0: [|0.5 - 0.5| - 0.1]_+ = 0; (1,2) R=0: [0.3 - 0.1] = 0.2
    #      text 2: (2,0) R=1: [0.3 - 0.4 + 0.2] = 0.1; (2,1) R=1: [0.3 - 0.4 + 0.7] = 0.6
    assert SMSHardLoss(reduction="sum")(similarity, relevancy).item() == pytest.approx(1.6)
    assert SMSHardLoss()(similarity, relevancy).item() == pytest.approx(1.6 / 12)


def test_sms_hard_rejects_soft_labels_and_missing_positive():
    similarity = torch.zeros(2, 2)
    with pytest.raises(ValueError, match="hard labels"):
        SMSHardLoss()(similarity, torch.tensor([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="diagonal"):
        SMSHardLoss()(similarity, torch.tensor([[0.0, 1.0], [0.0, 1.0]]))


def test_egonce_hand_computed():
    similarity = torch.tensor([[0.5, 0.1], [0.2, 0.4]])
    positive = torch.tensor([[False, True], [False, False]])  # video 0 also matches text 1
    # logits / 0.1 = [[5, 1], [2, 4]]. v2t: row 0 all positive -> 0; row 1: log(1 + e^-2).
    # t2v: text 0 (column [5, 2]): only video 0 -> log(1 + e^-3); text 1 (column [1, 4]): both positive -> 0.
    expected = math.log1p(math.exp(-2)) / 2 + math.log1p(math.exp(-3)) / 2
    assert EgoNCELoss(temperature=0.1)(similarity, positive).item() == pytest.approx(expected, rel=1e-5)
    # One extra negative text of similarity 0.3 for every video, one extra video of similarity 0 for every text.
    extra_v2t, extra_t2v = torch.full((2, 1), 0.3), torch.zeros(2, 1)
    v2t = (math.log((math.exp(5) + math.exp(1) + math.exp(3)) / (math.exp(5) + math.exp(1)))
           + math.log((math.exp(2) + math.exp(4) + math.exp(3)) / math.exp(4))) / 2  # fmt: skip
    t2v = (math.log((math.exp(5) + math.exp(2) + 1) / math.exp(5))
           + math.log((math.exp(1) + math.exp(4) + 1) / (math.exp(1) + math.exp(4)))) / 2  # fmt: skip
    loss = EgoNCELoss(temperature=0.1)(similarity, positive, extra_v2t, extra_t2v)
    assert loss.item() == pytest.approx(v2t + t2v, rel=1e-5)


def test_egonce_with_only_diagonal_positives_is_twice_infonce():
    similarity = torch.randn(4, 4, generator=torch.Generator().manual_seed(0))
    no_extra_positive = torch.zeros(4, 4, dtype=torch.bool)
    torch.testing.assert_close(
        EgoNCELoss(temperature=0.05)(similarity, no_extra_positive),
        2 * InfoNCELoss(temperature=0.05)(similarity),
    )


@pytest.mark.parametrize(
    "loss_fn",
    [MIMMLoss(), AdaptiveMIMMLoss(), SMSLoss(), SMSHardLoss()],
    ids=["mimm", "adaptive", "sms", "sms_hard"],
)
def test_margin_losses_reject_bad_input(loss_fn):
    with pytest.raises(ValueError, match="square"):
        loss_fn(torch.zeros(2, 3), torch.ones(2, 3))
    with pytest.raises(ValueError, match="at least 2"):
        loss_fn(torch.zeros(1, 1), torch.ones(1, 1))
    with pytest.raises(ValueError, match="relevancy"):
        loss_fn(torch.zeros(2, 2), torch.eye(3))


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="square"):
        InfoNCELoss()(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="temperature"):
        InfoNCELoss(temperature=0.0)
    with pytest.raises(ValueError, match="tau"):
        SMSLoss(tau=-0.1)
    with pytest.raises(ValueError, match="lambda_"):
        SMSLoss(lambda_=0.0)
    with pytest.raises(ValueError, match="relevancy_levels"):
        SMSLoss(relevancy_levels=0)
    with pytest.raises(ValueError, match="unknown SMS preset"):
        SMSLoss.from_preset("eq16")
    with pytest.raises(ValueError, match="neutral"):
        SMSLoss(neutral="eq16")
    with pytest.raises(ValueError, match="reduction"):
        MIMMLoss(reduction="none")
    with pytest.raises(ValueError, match="relevancy"):
        EgoNCELoss()(torch.zeros(2, 2), torch.ones(2, 3))
    with pytest.raises(ValueError, match="negatives_v2t"):
        EgoNCELoss()(torch.zeros(2, 2), torch.eye(2, dtype=torch.bool), torch.zeros(3, 1))


def test_gather_with_grad_is_identity_without_process_group():
    tensor = torch.randn(3, 2)
    assert gather_with_grad(tensor) is tensor


# -- distributed equivalence ----------------------------------------------------------------------------------

BATCH, DIM, WORLD = 6, 5, 2


def _global_batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    relevancy = torch.rand(BATCH, BATCH, generator=generator).round(decimals=1)
    relevancy.fill_diagonal_(1.0)
    return {
        "videos": F.normalize(torch.randn(BATCH, DIM, generator=generator), dim=-1),
        "texts": F.normalize(torch.randn(BATCH, DIM, generator=generator), dim=-1),
        "relevancy": relevancy,
        "hard": (relevancy > 0.5).float(),
        "positive": relevancy > 0.6,
        "extra": torch.randn(BATCH, 3, generator=generator),
    }


LOSSES = {
    "info_nce": lambda sim, batch: InfoNCELoss()(sim),
    "mimm": lambda sim, batch: MIMMLoss()(sim, batch["relevancy"]),
    "adaptive": lambda sim, batch: AdaptiveMIMMLoss()(sim, batch["relevancy"]),
    "sms": lambda sim, batch: SMSLoss()(sim, batch["relevancy"]),
    "sms_hard": lambda sim, batch: SMSHardLoss()(sim, batch["hard"]),
    "egonce": lambda sim, batch: EgoNCELoss()(sim, batch["positive"], batch["extra"] * 0.5, batch["extra"]),
}


def _per_loss_grads(videos: torch.Tensor, texts: torch.Tensor, batch: dict) -> dict:
    """Loss value and the gradients of the (local) embeddings, one backward per loss."""
    out = {}
    for name, loss_fn in LOSSES.items():
        video_leaf, text_leaf = videos.detach().requires_grad_(), texts.detach().requires_grad_()
        loss = loss_fn(gather_with_grad(video_leaf) @ gather_with_grad(text_leaf).T, batch)
        loss.backward()
        out[name] = (loss.detach(), video_leaf.grad, text_leaf.grad)
    return out


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    assert dist.get_world_size() == WORLD
    batch = _global_batch()
    shard = slice(rank * BATCH // WORLD, (rank + 1) * BATCH // WORLD)
    # The relevancy follows the gathered (rank-major) order: gather the local indices like the embeddings.
    global_indices = gather_with_grad(torch.arange(BATCH)[shard])
    assert torch.equal(global_indices, torch.arange(BATCH))
    results = _per_loss_grads(batch["videos"][shard], batch["texts"][shard], batch)
    with pytest.raises(ValueError, match="same shape on every rank"):
        gather_with_grad(torch.zeros(rank + 1, 2))
    torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_two_process_losses_match_single_process(tmp_path: Path):
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    batch = _global_batch()
    reference = _per_loss_grads(batch["videos"], batch["texts"], batch)
    for rank in range(WORLD):
        shard = slice(rank * BATCH // WORLD, (rank + 1) * BATCH // WORLD)
        results = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        for name, (loss, video_grad, text_grad) in reference.items():
            torch.testing.assert_close(results[name][0], loss, msg=f"{name} loss on rank {rank}")
            torch.testing.assert_close(
                results[name][1], video_grad[shard], msg=f"{name} video grad rank {rank}"
            )
            torch.testing.assert_close(
                results[name][2], text_grad[shard], msg=f"{name} text grad rank {rank}"
            )
            assert video_grad[shard].abs().sum() > 0, f"{name}: no gradient reaches rank {rank}'s videos"
