"""Tests of the benchmark metrics: hand-computed cases, invariances, safe pickle loading, `evaluate` modules."""

from __future__ import annotations

import math
import os
import pickle
import warnings

import numpy as np
import pytest
import torch

from eva02at_hf.metrics import (
    charades_ego_map,
    egomcq_accuracy,
    ek100_mir,
    load,
    load_relevancy_pickle,
    module_path,
)
from eva02at_hf.metrics._inputs import stable_descending_order

LOG2_3 = math.log2(3)
MIR_KEYS = ("mAP_v2t", "mAP_t2v", "mAP_avg", "nDCG_v2t", "nDCG_t2v", "nDCG_avg")


def reference_mir(similarity: np.ndarray, relevancy: np.ndarray) -> tuple[float, float]:
    """Plain-Python per-query loop of the official definitions (rows are queries); NaN queries skipped."""
    aps, ndcgs = [], []
    for sims, rels in zip(similarity.tolist(), relevancy.tolist(), strict=True):
        ranked = [rel for _, _, rel in sorted(zip((-s for s in sims), range(len(sims)), rels, strict=True))]
        cumulative, precision_sum, num_full = 0.0, 0.0, 0
        for k, rel in enumerate(ranked, start=1):
            cumulative += rel
            if rel == 1:
                precision_sum += cumulative / k
                num_full += 1
        if num_full:
            aps.append(precision_sum / num_full)
        cutoff = sum(rel > 0 for rel in ranked)
        if cutoff:
            dcg = sum(rel / math.log2(k + 1) for k, rel in enumerate(ranked[:cutoff], start=1))
            ideal = sorted(ranked, reverse=True)[:cutoff]
            ndcgs.append(dcg / sum(rel / math.log2(k + 1) for k, rel in enumerate(ideal, start=1)))
    return 100 * sum(aps) / len(aps), 100 * sum(ndcgs) / len(ndcgs)


def random_mir_problem(num_videos: int, num_texts: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    similarity = rng.standard_normal((num_videos, num_texts)).astype(np.float32)
    relevancy = rng.choice([0.0, 0.0, 0.0, 0.25, 0.5, 0.75, 1.0], size=(num_videos, num_texts))
    relevancy[np.arange(num_videos), np.arange(num_videos) % num_texts] = 1.0  # every video has a caption
    relevancy[np.arange(num_texts) % num_videos, np.arange(num_texts)] = 1.0  # every caption has a video
    return similarity, relevancy


def assert_results_close(actual: dict[str, float], expected: dict[str, float], tol: float = 1e-9) -> None:
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        assert actual[key] == pytest.approx(value, abs=tol), key


# ---------------------------------------------------------------- EK-100 MIR


def test_ek100_perfect_ranking_is_100():
    relevancy = np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.25], [0.5, 0.0, 1.0]])
    # Similarity ordered like relevancy, with no tie in any row or column.
    result = ek100_mir(relevancy, relevancy)
    assert_results_close(result, dict.fromkeys(MIR_KEYS, 100.0))


def test_ek100_hand_computed():
    similarity = np.array([[0.9, 0.8, 0.7, 0.6, 0.5], [0.1, 0.2, 0.3, 0.4, 0.05]])
    relevancy = np.array([[0.5, 1.0, 0.0, 1.0, 0.0], [1.0, 0.5, 0.5, 0.0, 0.0]])
    # V->T row 0 ranks relevancies [.5, 1, 0, 1, 0]: AP = (1.5/2 + 2.5/4) / 2; the 0.5 item raises both precisions.
    # Row 1 (reversed-ish) ranks [0, .5, .5, 1, 0]: AP = (2/4) / 1. nDCG truncated at K = 3 non-zero items.
    ap_v = [(1.5 / 2 + 2.5 / 4) / 2, 2.0 / 4]
    ndcg_v = [
        (0.5 + 1 / LOG2_3) / (1 + 1 / LOG2_3 + 0.5 / 2),
        (0.5 / LOG2_3 + 0.5 / 2) / (1 + 0.5 / LOG2_3 + 0.5 / 2),
    ]
    # T->V columns: [.5, 1] -> AP 1.5/2, nDCG (.5 + 1/log2 3)/(1 + .5/log2 3); [1, .5] -> 1, 1;
    # [0, .5] -> AP undefined (no relevancy-1 item), nDCG 0; [1, 0] -> 1, 1; [0, 0] -> both undefined.
    ap_t = [1.5 / 2, 1.0, 1.0]
    ndcg_t = [(0.5 + 1 / LOG2_3) / (1 + 0.5 / LOG2_3), 1.0, 0.0, 1.0]
    expected = {
        "mAP_v2t": 100 * sum(ap_v) / 2,
        "mAP_t2v": 100 * sum(ap_t) / 3,
        "nDCG_v2t": 100 * sum(ndcg_v) / 2,
        "nDCG_t2v": 100 * sum(ndcg_t) / 4,
    }
    expected["mAP_avg"] = (expected["mAP_v2t"] + expected["mAP_t2v"]) / 2
    expected["nDCG_avg"] = (expected["nDCG_v2t"] + expected["nDCG_t2v"]) / 2
    with pytest.warns(UserWarning) as record:
        result = ek100_mir(similarity, relevancy)
    assert_results_close(result, {key: expected[key] for key in MIR_KEYS})
    messages = [str(warning.message) for warning in record]
    assert any("2 of 5 t2v queries" in message and "AP" in message for message in messages)
    assert any("1 of 5 t2v queries" in message and "nDCG" in message for message in messages)


def test_ek100_reversed_ranking():
    # One query, relevancies [1, .5, 0, 0] retrieved in reverse: ranked [0, 0, .5, 1].
    similarity = np.array([[0.1, 0.2, 0.3, 0.4]])
    relevancy = np.array([[1.0, 0.5, 0.0, 0.0]])
    with pytest.warns(UserWarning):
        result = ek100_mir(similarity, relevancy)
    assert result["mAP_v2t"] == pytest.approx(100 * 1.5 / 4)  # cumulative soft relevancy 1.5 at rank 4
    assert result["nDCG_v2t"] == pytest.approx(0.0)  # both non-zero items fall outside the first K = 2 ranks


def test_ek100_ties_in_relevancy():
    # Two fully relevant items; which of them is ranked first does not matter.
    relevancy = np.array([[1.0, 1.0, 0.0]])
    for similarity in ([[0.2, 0.9, 0.5]], [[0.9, 0.2, 0.5]]):
        with pytest.warns(UserWarning):
            result = ek100_mir(np.array(similarity), relevancy)
        assert result["mAP_v2t"] == pytest.approx(100 * (1 / 1 + 2 / 3) / 2)
        assert result["nDCG_v2t"] == pytest.approx(100 * 1 / (1 + 1 / LOG2_3))


def test_ek100_ties_in_similarity_use_stable_order():
    # Tied similarity, relevancies [.5, 1]: the lower index is ranked first, so AP = 1.5/2 and not 1/1.
    relevancy = np.array([[0.5, 1.0]])
    with pytest.warns(UserWarning):
        tied = ek100_mir(np.array([[0.5, 0.5]]), relevancy)
        swapped = ek100_mir(np.array([[0.5, 0.5]]), relevancy[:, ::-1])
    assert tied["mAP_v2t"] == pytest.approx(75.0)
    assert swapped["mAP_v2t"] == pytest.approx(100.0)  # ties make the result depend on column order


def test_ek100_stable_tie_break_on_long_rows():
    # All similarities tied: the ranking is the column order, for rows long enough to use non-insertion sorts.
    rng = np.random.default_rng(1)
    relevancy = rng.choice([0.0, 0.5, 1.0], size=(3, 5000))
    relevancy[:, 0] = 1.0
    similarity = np.zeros((3, 5000), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = ek100_mir(similarity, relevancy)
    expected_map, expected_ndcg = reference_mir(np.zeros((3, 5000)), relevancy)
    assert result["mAP_v2t"] == pytest.approx(expected_map, abs=1e-9)
    assert result["nDCG_v2t"] == pytest.approx(expected_ndcg, abs=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stable_descending_order_matches_numpy_stable_argsort(dtype):
    rng = np.random.default_rng(2)
    scores = np.round(rng.standard_normal((6, 300)), 1).astype(dtype)  # many ties
    scores[0, :4] = [0.0, -0.0, np.inf, -np.inf]
    scores[1, :] = -0.0
    scores[1, ::3] = 0.0  # +0 and -0 compare equal: they must stay in column order
    expected = np.argsort(-scores, axis=1, kind="stable")
    np.testing.assert_array_equal(stable_descending_order(scores), expected)
    np.testing.assert_array_equal(stable_descending_order(scores)[1], np.arange(300))


def test_ek100_matches_reference_loop():
    similarity, relevancy = random_mir_problem(40, 25)
    result = ek100_mir(similarity, relevancy)
    map_v2t, ndcg_v2t = reference_mir(similarity, relevancy)
    map_t2v, ndcg_t2v = reference_mir(similarity.T, relevancy.T)
    expected = {"mAP_v2t": map_v2t, "mAP_t2v": map_t2v, "nDCG_v2t": ndcg_v2t, "nDCG_t2v": ndcg_t2v}
    for key, value in expected.items():
        assert result[key] == pytest.approx(value, abs=1e-9), key


def test_ek100_chunked_rows_match_single_block(monkeypatch):
    similarity, relevancy = random_mir_problem(30, 20, seed=3)
    full = ek100_mir(similarity, relevancy)
    monkeypatch.setattr(
        "eva02at_hf.metrics.retrieval._CHUNK_ELEMENTS", 45
    )  # 2 rows per chunk, several threads
    assert_results_close(ek100_mir(similarity, relevancy), full, tol=1e-12)


def test_ek100_invariant_to_row_and_column_order():
    similarity, relevancy = random_mir_problem(30, 20, seed=4)
    rng = np.random.default_rng(5)
    rows, columns = rng.permutation(30), rng.permutation(20)
    permuted = ek100_mir(similarity[rows][:, columns], relevancy[rows][:, columns])
    assert_results_close(permuted, ek100_mir(similarity, relevancy))


def test_ek100_transpose_swaps_directions():
    similarity, relevancy = random_mir_problem(30, 20, seed=6)
    result, transposed = ek100_mir(similarity, relevancy), ek100_mir(similarity.T, relevancy.T)
    for metric in ("mAP", "nDCG"):
        assert transposed[f"{metric}_v2t"] == pytest.approx(result[f"{metric}_t2v"], abs=1e-12)
        assert transposed[f"{metric}_t2v"] == pytest.approx(result[f"{metric}_v2t"], abs=1e-12)
        assert transposed[f"{metric}_avg"] == pytest.approx(result[f"{metric}_avg"], abs=1e-12)


def test_ek100_accepts_torch_tensors():
    similarity, relevancy = random_mir_problem(12, 9, seed=7)
    from_torch = ek100_mir(torch.from_numpy(similarity).to(torch.bfloat16), torch.from_numpy(relevancy))
    from_numpy = ek100_mir(torch.from_numpy(similarity).to(torch.bfloat16).float().numpy(), relevancy)
    assert_results_close(from_torch, from_numpy, tol=1e-12)


def test_ek100_accepts_sparse_relevancy():
    import scipy.sparse as sparse

    similarity, relevancy = random_mir_problem(12, 9, seed=13)
    from_sparse = ek100_mir(similarity, sparse.csr_array(relevancy.astype(np.float32)))
    assert_results_close(from_sparse, ek100_mir(similarity, relevancy.astype(np.float32)), tol=0)


def test_ek100_undefined_everywhere_gives_nan():
    with pytest.warns(UserWarning):
        result = ek100_mir(np.array([[0.3, 0.2]]), np.zeros((1, 2)))
    assert all(math.isnan(value) for value in result.values())


@pytest.mark.parametrize(
    ("similarity", "relevancy", "message"),
    [
        (np.zeros((2, 3)), np.zeros((3, 2)), "same shape"),
        (np.zeros(3), np.zeros(3), "`similarity` must have 2 dimension"),
        (np.zeros((2, 2)), np.full((2, 2), 1.5), r"`relevancy` values must lie in \[0, 1\]"),
        (np.full((2, 2), np.nan), np.zeros((2, 2)), "`similarity` contains NaN"),
        (np.array([["a", "b"]]), np.zeros((1, 2)), "`similarity` must be real-valued numeric"),
        (np.zeros((0, 3)), np.zeros((0, 3)), "must not be empty"),
    ],
)
def test_ek100_rejects_bad_input(similarity, relevancy, message):
    with pytest.raises((ValueError, TypeError), match=message):
        ek100_mir(similarity, relevancy)


# ---------------------------------------------------------------- relevancy pickle


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_relevancy_pickle_round_trip(tmp_path, protocol):
    similarity, relevancy = random_mir_problem(8, 6, seed=8)
    path = tmp_path / "caption_relevancy_EPIC_100_retrieval_test.pkl"
    path.write_bytes(pickle.dumps(relevancy, protocol=protocol))
    loaded = load_relevancy_pickle(path)
    np.testing.assert_array_equal(loaded, relevancy)
    assert_results_close(ek100_mir(similarity, str(path)), ek100_mir(similarity, relevancy), tol=0)


class _Exploit:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {self.marker}",)


def test_relevancy_pickle_refuses_code_execution(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_Exploit(str(marker))))
    with pytest.raises(pickle.UnpicklingError, match=r"evil\.pkl.*(posix|os|nt)\.system"):
        load_relevancy_pickle(path)
    with pytest.raises(pickle.UnpicklingError):
        ek100_mir(np.zeros((1, 1)), path)
    assert not marker.exists()


def test_relevancy_pickle_rejects_non_matrix_and_missing_file(tmp_path):
    path = tmp_path / "list.pkl"
    path.write_bytes(pickle.dumps([[1.0, 0.0]]))
    with pytest.raises(ValueError, match="2-D numpy array"):
        load_relevancy_pickle(path)
    with pytest.raises(FileNotFoundError, match="missing.pkl"):
        load_relevancy_pickle(tmp_path / "missing.pkl")


# ---------------------------------------------------------------- EgoMCQ


def test_egomcq_type_codes_are_not_swapped():
    # Type 1 (inter-video) questions all right, type 2 (intra-video) all wrong.
    scores = np.array([[0.1, 0.9, 0.0, 0.0, 0.0], [0.8, 0.1, 0.0, 0.0, 0.0], [0.9, 0.1, 0.0, 0.0, 0.0]])
    result = egomcq_accuracy(scores, answers=[1, 0, 4], types=[1, 1, 2])
    assert result == {"inter_video_accuracy": 100.0, "intra_video_accuracy": 0.0}


def test_egomcq_hand_computed():
    scores = torch.tensor(
        [
            [0.1, 0.2, 0.3, 0.4, 0.5],  # predicts 4
            [0.5, 0.4, 0.3, 0.2, 0.1],  # predicts 0
            [0.0, 0.0, 0.9, 0.0, 0.0],  # predicts 2
            [0.0, 0.7, 0.0, 0.0, 0.6],  # predicts 1
            [0.3, 0.3, 0.3, 0.3, 0.3],  # all tied: predicts the first candidate, 0
        ]
    )
    answers = torch.tensor([4, 1, 2, 4, 0])
    types = torch.tensor([1, 1, 2, 2, 2])
    result = egomcq_accuracy(scores, answers, types)
    assert result["inter_video_accuracy"] == pytest.approx(100 * 1 / 2)
    assert result["intra_video_accuracy"] == pytest.approx(100 * 2 / 3)


def test_egomcq_missing_type_is_nan():
    result = egomcq_accuracy(np.eye(5)[:2], [0, 1], [2, 2])
    assert math.isnan(result["inter_video_accuracy"])
    assert result["intra_video_accuracy"] == 100.0


@pytest.mark.parametrize(
    ("answers", "types", "message"),
    [
        ([0, 5], [1, 2], r"`answers` must be candidate indices in \[0, 4\]"),
        ([0, 1], [1, 3], "`types` must be 1"),
        ([0], [1, 2], "`answers` must have one entry per question"),
        ([0.5, 1], [1, 2], "`answers` must hold integers"),
    ],
)
def test_egomcq_rejects_bad_input(answers, types, message):
    with pytest.raises(ValueError, match=message):
        egomcq_accuracy(np.zeros((2, 5)), answers, types)


# ---------------------------------------------------------------- Charades-Ego


def test_charades_hand_computed_with_unlabelled_video():
    scores = np.array([[0.9, 0.1, 0.3], [0.8, 0.7, 0.2], [0.1, 0.6, 0.9], [0.4, 0.2, 0.8]])
    targets = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0]])
    # Video 3 has no label and is ranked last everywhere, so class 0 ranks its positives 1st and 3rd:
    # AP = (1/1 + 2/3) / 2 (it would be (1/1 + 2/4) / 2 if video 3 kept its score 0.4). Class 1: AP 1.
    # Class 2 has no positive and is skipped.
    assert charades_ego_map(scores, targets)["mAP"] == pytest.approx(100 * ((1 + 2 / 3) / 2 + 1) / 2)


def test_charades_perfect_and_reversed():
    targets = np.array([[1, 0], [0, 1], [0, 1], [0, 0]])
    perfect = np.array([[0.9, 0.1], [0.5, 0.8], [0.2, 0.7], [0.1, 0.2]])
    assert charades_ego_map(perfect, targets)["mAP"] == pytest.approx(100.0)
    # Reversed: class 0 positive at rank 3 of the 3 labelled videos (video 3 is unlabelled, ranked 4th);
    # class 1 positives at ranks 2 and 3.
    reversed_scores = -perfect
    expected = (1 / 3 + (1 / 2 + 2 / 3) / 2) / 2
    assert charades_ego_map(reversed_scores, targets)["mAP"] == pytest.approx(100 * expected)


def test_charades_classes_without_positive_skipped_and_order_invariant():
    rng = np.random.default_rng(9)
    scores = rng.standard_normal((20, 6))
    targets = (rng.random((20, 6)) < 0.3).astype(np.int64)
    targets[:, 2] = 0
    result = charades_ego_map(scores, targets)["mAP"]
    keep = [0, 1, 3, 4, 5]
    assert charades_ego_map(scores[:, keep], targets[:, keep])["mAP"] == pytest.approx(result, abs=1e-12)
    rows, columns = rng.permutation(20), rng.permutation(6)
    permuted = charades_ego_map(scores[rows][:, columns], targets[rows][:, columns])
    assert permuted["mAP"] == pytest.approx(result)
    from_torch = charades_ego_map(torch.from_numpy(scores), torch.from_numpy(targets).bool())
    assert from_torch["mAP"] == pytest.approx(result)


def test_charades_matches_reference_loop():
    rng = np.random.default_rng(14)
    scores = np.round(rng.standard_normal((40, 7)), 1)  # with ties
    targets = (rng.random((40, 7)) < 0.2).astype(int)
    targets[:3] = 0  # unlabelled videos
    targets[:, 4] = 0  # a class without positive
    aps = []
    for c in range(7):
        column = [-np.inf if not targets[v].any() else scores[v, c] for v in range(40)]
        ranking = sorted(range(40), key=lambda v: (-column[v], v))
        hits, precision_sum = 0, 0.0
        for k, v in enumerate(ranking, start=1):
            if targets[v, c] == 1:
                hits += 1
                precision_sum += hits / k
        if hits:
            aps.append(precision_sum / hits)
    assert charades_ego_map(scores, targets)["mAP"] == pytest.approx(100 * sum(aps) / len(aps), abs=1e-12)


def test_charades_no_positive_at_all_is_nan_and_bad_targets_rejected():
    assert math.isnan(charades_ego_map(np.zeros((3, 2)), np.zeros((3, 2)))["mAP"])
    with pytest.raises(ValueError, match="`targets` must be binary"):
        charades_ego_map(np.zeros((2, 2)), np.full((2, 2), 2))
    with pytest.raises(ValueError, match="same shape"):
        charades_ego_map(np.zeros((2, 2)), np.zeros((2, 3)))


# ---------------------------------------------------------------- evaluate modules


@pytest.fixture(scope="module")
def evaluate_offline():
    import evaluate

    patcher = pytest.MonkeyPatch()
    patcher.setattr(evaluate.config, "HF_EVALUATE_OFFLINE", True)
    yield evaluate
    patcher.undo()


def test_evaluate_ek100_from_folder_path_matches_function(evaluate_offline):
    metric = evaluate_offline.load(module_path("ek100_mir"))
    similarity, relevancy = random_mir_problem(15, 10, seed=10)
    result = metric.compute(predictions=similarity.tolist(), references=relevancy.tolist())
    assert_results_close(result, ek100_mir(similarity, relevancy), tol=1e-12)
    assert "EPIC-KITCHENS-100" in metric.citation and metric.description and metric.inputs_description


def test_evaluate_egomcq_types_accumulate_with_add_batch(evaluate_offline):
    metric = evaluate_offline.load(module_path("egomcq"))
    rng = np.random.default_rng(11)
    scores, answers, types = rng.random((12, 5)), rng.integers(0, 5, 12), rng.integers(1, 3, 12)
    for batch in (slice(0, 5), slice(5, 12)):
        metric.add_batch(
            predictions=scores[batch].tolist(), references=answers[batch].tolist(), types=types[batch]
        )
    assert metric.compute() == egomcq_accuracy(scores, answers, types)


def test_evaluate_charades_via_package_loader(evaluate_offline):
    metric = load("charades_ego")
    rng = np.random.default_rng(12)
    scores, targets = rng.standard_normal((10, 4)), (rng.random((10, 4)) < 0.4).astype(int)
    result = metric.compute(predictions=scores.tolist(), references=targets.tolist())
    assert result == pytest.approx(charades_ego_map(scores, targets))


def _modules_and_inputs() -> list[tuple[str, dict]]:
    rng = np.random.default_rng(13)
    similarity, relevancy = random_mir_problem(14, 9, seed=13)
    similarity[:, 3] = similarity[:, 2]  # ties: ranked in column order on both paths
    return [
        ("ek100_mir", {"predictions": similarity, "references": relevancy}),
        (
            "egomcq",
            {
                "predictions": rng.random((12, 5)).astype(np.float32),
                "references": rng.integers(0, 5, 12),
                "types": rng.integers(1, 3, 12),
            },
        ),
        (
            "charades_ego",
            {
                "predictions": rng.standard_normal((10, 4)),
                "references": (rng.random((10, 4)) < 0.4).astype(int),
            },
        ),
    ]


@pytest.mark.parametrize(
    ("name", "inputs"), _modules_and_inputs(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_evaluate_compute_takes_arrays_without_arrow_and_matches_the_arrow_path(
    evaluate_offline, name, inputs
):
    """A single-process compute of whole arrays / tensors skips evaluate's Arrow cache; numbers are identical to
    the accumulated (Arrow, lists) path and to the plain function."""
    function = {"ek100_mir": ek100_mir, "egomcq": egomcq_accuracy, "charades_ego": charades_ego_map}[name]
    expected = function(*inputs.values())
    accumulated = load(name)
    half = len(inputs["predictions"]) // 2
    for rows in (slice(0, half), slice(half, None)):
        accumulated.add_batch(**{key: value[rows].tolist() for key, value in inputs.items()})
    assert accumulated.compute() == expected

    direct = load(name)
    direct.add_batch = direct._init_writer = None  # any use of the Arrow path would now fail
    assert direct.compute(**inputs) == expected
    assert direct.compute(**{key: torch.from_numpy(value) for key, value in inputs.items()}) == expected
    with pytest.raises(ValueError, match="same shape|one entry per question"):
        direct.compute(**{**inputs, "references": inputs["references"][:-1]})


def test_evaluate_compute_still_reports_missing_inputs(evaluate_offline):
    scores = np.zeros((2, 5))
    with pytest.raises(ValueError, match="inputs are missing"):
        load("egomcq").compute(predictions=scores, references=[0, 1])


def test_evaluate_modules_declare_their_card_and_refuse_unknown_inputs(evaluate_offline):
    metric = load("charades_ego")
    assert type(metric).__name__ == "CharadesEgo" and metric.name == "charades_ego"
    assert metric.homepage == "https://prior.allenai.org/projects/charades-ego"
    assert metric.codebase_urls == ["https://github.com/gsig/charades-algorithms"]
    assert metric.reference_urls == ["https://arxiv.org/abs/1804.09626"]
    assert "Charades-Ego" in metric.citation and "Charades-Ego" in metric.description
    assert "predictions (2-D" in metric.inputs_description and "predictions (2-D" in type(metric).__doc__
    with pytest.raises(TypeError, match=r"unexpected inputs \['top_k'\]"):
        metric.compute(predictions=np.eye(2), references=np.eye(2, dtype=int), top_k=1)


def test_load_unknown_metric():
    with pytest.raises(ValueError, match="unknown metric 'ek100'"):
        load("ek100")
