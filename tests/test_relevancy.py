"""PoS-IoU relevancy, hard-mining sampler, batch relevancy and EgoNCE positives."""

from __future__ import annotations

import ast
import io

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from eva02at_hf.objectives.relevancy import (
    HardMiningSampler,
    batch_relevancy,
    egonce_positive_mask,
    pos_iou_relevancy,
)

# Rows of the real EK-100 EPIC_100_retrieval_train_sentence.csv and EPIC_100_retrieval_test.csv (official layout,
# list columns stored as Python literals).
TRAIN_SENTENCES_CSV = """narration_id,narration,verb_class,noun_classes,verb,nouns
P01_01_0,open door,3,[3],open,['door']
P01_01_101,open cupboard,3,[3],open,['cupboard']
P01_01_102,put cup into cupboard,5,"[13, 3]",put-into,"['cup', 'cupboard']"
P01_01_108,put container in cupboard,5,"[21, 3]",put-in,"['container', 'cupboard']"
P01_01_11,close fridge,4,[12],close,['fridge']
P01_01_121,open fridge,3,[12],open,['fridge']
"""
TEST_CLIPS_CSV = """narration_id,participant_id,video_id,narration_timestamp,start_timestamp,stop_timestamp,start_frame,\
stop_frame,narration,verb,verb_class,noun,noun_class,all_nouns,all_noun_classes
P01_11_10,P01,P01_11,00:00:48.500,00:00:49.15,00:00:50.95,2949,3057,take paper,take,0,paper,49,['paper'],[49]
P01_11_11,P01,P01_11,00:00:51.620,00:00:51.60,00:00:52.49,3096,3149,open bin,open,3,bin,36,['bin'],[36]
P01_11_12,P01,P01_11,00:00:52.620,00:00:51.98,00:00:53.03,3118,3181,throw paper into bin,throw-into,13,paper,49,\
"['paper', 'bin']","[49, 36]"
P01_11_121,P01,P01_11,00:06:42.629,00:06:41.48,00:06:42.74,24088,24164,throw can into bin,throw-into,13,bin,36,\
['bin'],[36]
P01_11_123,P01,P01_11,00:06:47.220,00:06:46.53,00:06:49.64,24391,24578,put bin onto other bin,put-onto,1,bin,36,\
"['bin', 'bin:other']","[36, 36]"
"""


def _sentences() -> pd.DataFrame:
    table = pd.read_csv(io.StringIO(TRAIN_SENTENCES_CSV))
    table["noun_classes"] = table["noun_classes"].map(ast.literal_eval)
    return table.set_index("narration")


def _naive(verbs, nouns, other_verbs, other_nouns) -> np.ndarray:
    def iou(a: set, b: set) -> float:
        return len(a & b) / len(a | b) if a | b else 0.0

    return np.array(
        [
            [
                0.5 * iou({v}, {ov}) + 0.5 * iou(set(n), set(on))
                for ov, on in zip(other_verbs, other_nouns, strict=True)
            ]
            for v, n in zip(verbs, nouns, strict=True)
        ]
    )


def test_hand_checked_ek100_sentences():
    table = _sentences()
    names = [
        "open door",
        "open cupboard",
        "open fridge",
        "close fridge",
        "put cup into cupboard",
        "put container in cupboard",
    ]
    rows = table.loc[names]
    relevancy = pos_iou_relevancy(rows["verb_class"].tolist(), rows["noun_classes"].tolist())
    # door and cupboard share noun class 3; verbs: open 3, close 4, put-in(to) 5; fridge 12, cup 13, container 21.
    expected = np.array(
        [
            [1.0, 1.0, 0.5, 0.0, 0.25, 0.25],
            [1.0, 1.0, 0.5, 0.0, 0.25, 0.25],
            [0.5, 0.5, 1.0, 0.5, 0.0, 0.0],
            [0.0, 0.0, 0.5, 1.0, 0.0, 0.0],
            [0.25, 0.25, 0.0, 0.0, 1.0, 0.5 + 0.5 / 3],
            [0.25, 0.25, 0.0, 0.0, 0.5 + 0.5 / 3, 1.0],
        ]
    )
    assert relevancy.dtype == np.float32
    np.testing.assert_allclose(relevancy, expected, rtol=1e-6)


def test_ek100_clips_against_sentences_with_duplicate_nouns():
    clips = pd.read_csv(io.StringIO(TEST_CLIPS_CSV))
    clips["all_noun_classes"] = clips["all_noun_classes"].map(ast.literal_eval)
    clips = clips.drop_duplicates("narration").set_index("narration")
    picked = clips.loc[["put bin onto other bin", "throw paper into bin"]]  # [36, 36] and [49, 36]
    others = clips.loc[["open bin", "throw can into bin", "take paper"]]
    relevancy = pos_iou_relevancy(
        picked["verb_class"].tolist(),
        picked["all_noun_classes"].tolist(),
        others["verb_class"].tolist(),
        others["all_noun_classes"].tolist(),
    )
    # put-onto (1) {bin} vs open bin, throw-into (13) {bin}, take (0) {paper};
    # throw-into {paper, bin} vs the same three.
    expected = np.array([[0.5, 0.5, 0.0], [0.25, 0.5 + 0.25, 0.25]])
    np.testing.assert_allclose(relevancy, expected, rtol=1e-6)


def test_same_set_is_symmetric_with_unit_diagonal():
    table = _sentences()
    relevancy = pos_iou_relevancy(table["verb_class"].tolist(), table["noun_classes"].tolist())
    assert relevancy.shape == (len(table), len(table))
    np.testing.assert_array_equal(relevancy, relevancy.T)
    np.testing.assert_array_equal(np.diag(relevancy), 1.0)
    assert relevancy.min() >= 0 and relevancy.max() <= 1


def test_matches_naive_reference_sparse_and_blocked():
    rng = np.random.default_rng(0)
    verbs = rng.integers(0, 6, size=37).tolist()
    nouns = [rng.integers(0, 8, size=rng.integers(1, 4)).tolist() for _ in range(37)]
    other_verbs = rng.integers(0, 7, size=23).tolist()
    other_nouns = [rng.integers(0, 10, size=rng.integers(1, 4)).tolist() for _ in range(23)]
    expected = _naive(verbs, nouns, other_verbs, other_nouns)
    dense = pos_iou_relevancy(verbs, nouns, other_verbs, other_nouns, block_size=5)
    sparse = pos_iou_relevancy(verbs, nouns, other_verbs, other_nouns, return_sparse=True)
    assert isinstance(sparse, sp.csr_array) and sparse.dtype == np.float32
    np.testing.assert_allclose(dense, expected, rtol=1e-6)
    np.testing.assert_allclose(sparse.toarray(), expected, rtol=1e-6)
    assert sparse.nnz == np.count_nonzero(expected)


def test_ints_are_singletons_and_weights_apply():
    relevancy = pos_iou_relevancy([1, 1, 2], [[7], 8, (7, 8)], weights=(0.25, 0.75))
    # rows 0/1 share the verb only (0.25); 0/2 share noun 7 of {7, 8} (0.75 / 2); 1/2 share noun 8 (0.75 / 2).
    expected = np.array([[1.0, 0.25, 0.375], [0.25, 1.0, 0.375], [0.375, 0.375, 1.0]])
    np.testing.assert_allclose(relevancy, expected)
    np.testing.assert_allclose(
        pos_iou_relevancy([1, 1, 2], [7, 8, 9], weights=(1.0, 0.0)), [[1, 1, 0], [1, 1, 0], [0, 0, 1]]
    )


def test_empty_sets_give_zero_iou():
    relevancy = pos_iou_relevancy([1, 1], [[], []])
    np.testing.assert_allclose(relevancy, [[0.5, 0.5], [0.5, 0.5]])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"verbs": [1, 2], "nouns": [[1]]}, ValueError, "differ in length"),
        ({"verbs": [1], "nouns": [[1]], "other_verbs": [1]}, ValueError, "together"),
        (
            {"verbs": [1], "nouns": [[1]], "other_verbs": [1, 2], "other_nouns": [[1]]},
            ValueError,
            "differ in length",
        ),
        ({"verbs": [1], "nouns": ["[1]"]}, TypeError, r"nouns\[0\]"),
        ({"verbs": [-1], "nouns": [[1]]}, ValueError, r"verbs\[0\]"),
        ({"verbs": [1], "nouns": [[1.5]]}, ValueError, r"nouns\[0\]"),
        ({"verbs": "open", "nouns": [[1]]}, TypeError, "verbs"),
        ({"verbs": [1], "nouns": [[1]], "weights": (0.7, 0.7)}, ValueError, "sum to 1"),
        ({"verbs": [1], "nouns": [[1]], "weights": (1.5, -0.5)}, ValueError, "non-negative"),
        ({"verbs": [1], "nouns": [[1]], "weights": (1.0,)}, ValueError, "weights"),
    ],
)
def test_bad_input_is_rejected(kwargs, error, match):
    with pytest.raises(error, match=match):
        pos_iou_relevancy(**kwargs)


# -- hard-mining sampler -------------------------------------------------------------------------------------

RELEVANCY = np.array(
    [
        [1.0, 0.1, 0.05, 0.5],
        [0.0, 0.25, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.09],
    ],
    dtype=np.float32,
)


@pytest.mark.parametrize("as_sparse", [False, True])
def test_sampler_candidates_are_strictly_above_epsilon(as_sparse):
    matrix = sp.csr_array(RELEVANCY) if as_sparse else RELEVANCY
    sampler = HardMiningSampler(matrix, epsilon=0.1)
    np.testing.assert_array_equal(
        sampler.candidates(0), [0, 3]
    )  # 0.1 itself is not a candidate (Fig. 4: ">")
    np.testing.assert_array_equal(sampler.candidates(1), [1])
    np.testing.assert_array_equal(sampler.num_candidates, [2, 1, 0])


def test_sampler_never_draws_an_entry_equal_to_epsilon():
    # Entries that equal 0.1: stored as float32 0.1, as the relevancy of Eq. 5 (0.5 * 1/5), and as 0.3 - 0.2
    # (0.10000001 in float32, within the rounding tolerance); only the 0.5 and 1.0 entries are candidates.
    tenth = np.float32(0.1)
    row = np.array(
        [tenth, np.float32(0.5) * np.float32(1 / 5), np.float32(0.3) - np.float32(0.2), 0.5, 0.0, 1.0],
        dtype=np.float32,
    )
    relevancy = np.tile(row, (3, 1))
    for matrix in (relevancy, sp.csr_array(relevancy), relevancy.astype(np.float64)):
        sampler = HardMiningSampler(matrix, epsilon=0.1)
        draws = sampler.sample(np.zeros(400, dtype=int), rng=0)
        assert set(draws.tolist()) == {3, 5}
    with pytest.raises(ValueError, match="relevancy > 0.1"):
        HardMiningSampler(np.full((2, 2), tenth), epsilon=0.1).sample([0], rng=0)


def test_sampler_is_deterministic_uniform_and_respects_the_threshold():
    rng = np.random.default_rng(0)
    relevancy = rng.choice([0.0, 0.05, 0.1, 0.25, 0.5, 1.0], size=(50, 40)).astype(np.float32)
    relevancy[np.arange(40), np.arange(40)] = 1.0
    relevancy[40:, 0] = 1.0
    dense, sparse = HardMiningSampler(relevancy), HardMiningSampler(sp.csr_array(relevancy))
    clips = np.arange(50).repeat(4)
    draws = dense.sample(clips, rng=123)
    np.testing.assert_array_equal(draws, dense.sample(clips, rng=123))
    np.testing.assert_array_equal(draws, sparse.sample(clips, rng=np.random.default_rng(123)))
    assert not np.array_equal(draws, dense.sample(clips, rng=124))
    assert (relevancy[clips, draws] > np.float32(0.1)).all()
    counts = np.bincount(dense.sample(np.zeros(6000, dtype=int), rng=1), minlength=40)
    candidates = np.flatnonzero(relevancy[0] > np.float32(0.1))
    assert set(np.flatnonzero(counts)) == set(candidates)
    expected = 6000 / len(candidates)
    assert np.all(np.abs(counts[candidates] - expected) < 5 * np.sqrt(expected))


def test_sampler_errors():
    sampler = HardMiningSampler(RELEVANCY)
    with pytest.raises(ValueError, match="clip 2 has no sentence"):
        sampler.sample([0, 2, 1], rng=0)
    with pytest.raises(IndexError, match="clip_indices"):
        sampler.sample([3], rng=0)
    with pytest.raises(ValueError, match="epsilon"):
        HardMiningSampler(RELEVANCY, epsilon=0.0)
    with pytest.raises(ValueError, match="relevancy"):
        HardMiningSampler(np.ones(4, dtype=np.float32))


@pytest.mark.parametrize("as_sparse", [False, True])
def test_batch_relevancy_keeps_soft_negatives(as_sparse):
    matrix = sp.csr_array(RELEVANCY) if as_sparse else RELEVANCY
    batch = batch_relevancy(matrix, torch.tensor([1, 0]), np.array([1, 3]))
    # Clip 1 with its positive sentence 1 (0.25) and clip 0's sentence 3 (0.0);
    # clip 0 with sentence 1 (0.1) and its positive sentence 3 (0.5).
    expected = torch.tensor([[0.25, 0.0], [0.1, 0.5]])
    assert batch.dtype == torch.float32
    torch.testing.assert_close(batch, expected)
    with pytest.raises(IndexError, match="sentence_indices"):
        batch_relevancy(matrix, [0], [4])
    with pytest.raises(ValueError, match="clip_indices"):
        batch_relevancy(matrix, [[0]], [1])


def test_egonce_positive_mask_on_ek100_rows():
    table = _sentences().loc[["open door", "close fridge", "open fridge", "put cup into cupboard"]]
    verbs, nouns = table["verb_class"].tolist(), table["noun_classes"].tolist()
    either = egonce_positive_mask(verbs, nouns)
    expected_either = torch.tensor(
        [
            [
                True,
                False,
                True,
                True,
            ],  # open door: shares "open" with open fridge, cupboard class with put cup
            [False, True, True, False],
            [True, True, True, False],
            [True, False, False, True],
        ]
    )
    torch.testing.assert_close(either, expected_either)
    torch.testing.assert_close(
        egonce_positive_mask(verbs, nouns, mode="both"), torch.eye(4, dtype=torch.bool)
    )
    with pytest.raises(ValueError, match="mode"):
        egonce_positive_mask(verbs, nouns, mode="any")
