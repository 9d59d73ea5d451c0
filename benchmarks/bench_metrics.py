"""Benchmark of `eva02at_hf.metrics.ek100_mir` on a random EK-100-sized problem (9,668 videos x 3,842 captions).

Compares wall time and peak extra resident memory against two NumPy implementations of the same definitions written
here: a straightforward per-query loop (the baseline) and a full-matrix vectorisation in the style of the official
challenge script. All use a stable sort on descending similarity, so the numbers must agree to 1e-6.

    python benchmarks/bench_metrics.py [--videos 9668] [--texts 3842] [--repeats 1] [--with-evaluate]

``--with-evaluate`` adds the `evaluate` module: ``compute`` on whole arrays (passed straight to the function) and
the ``add_batch`` + ``compute`` path through evaluate's Arrow cache, with their cost relative to the function.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from eva02at_hf.metrics import ek100_mir, load

KEYS = ("mAP_v2t", "mAP_t2v", "nDCG_v2t", "nDCG_t2v")


def random_problem(num_videos: int, num_texts: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """EK-100-like relevancy: 0.5 * [same verb] + 0.5 * [same noun], each video narrated by one of the captions."""
    rng = np.random.default_rng(seed)
    verbs = rng.zipf(1.6, num_texts) % 97
    nouns = rng.zipf(1.4, num_texts) % 300
    caption_of_video = np.concatenate(
        [np.arange(num_texts), rng.integers(0, num_texts, num_videos - num_texts)]
    )
    video_verbs, video_nouns = verbs[caption_of_video], nouns[caption_of_video]
    relevancy = 0.5 * (video_verbs[:, None] == verbs[None, :]) + 0.5 * (
        video_nouns[:, None] == nouns[None, :]
    )
    similarity = (rng.standard_normal(relevancy.shape) + 1.5 * relevancy).astype(np.float32)
    return similarity, relevancy


def loop_numpy(similarity: np.ndarray, relevancy: np.ndarray) -> dict[str, float]:
    """Baseline: one query at a time, directly from the definitions."""

    def one_direction(sim: np.ndarray, rel: np.ndarray) -> tuple[float, float]:
        ranks = np.arange(1, sim.shape[1] + 1, dtype=np.float64)
        discount = 1.0 / np.log2(ranks + 1)
        average_precisions, ndcgs = [], []
        for sims, rels in zip(sim, rel, strict=True):
            ranked = rels[np.argsort(-sims, kind="stable")].astype(np.float64)
            full = ranked == 1
            average_precisions.append(np.sum(np.cumsum(ranked)[full] / ranks[full]) / np.count_nonzero(full))
            cutoff = np.count_nonzero(ranked)
            ideal = np.sort(ranked)[::-1]
            ndcgs.append(ranked[:cutoff] @ discount[:cutoff] / (ideal[:cutoff] @ discount[:cutoff]))
        return 100 * np.nanmean(average_precisions), 100 * np.nanmean(ndcgs)

    map_v2t, ndcg_v2t = one_direction(similarity, relevancy)
    map_t2v, ndcg_t2v = one_direction(np.ascontiguousarray(similarity.T), np.ascontiguousarray(relevancy.T))
    return {"mAP_v2t": map_v2t, "mAP_t2v": map_t2v, "nDCG_v2t": ndcg_v2t, "nDCG_t2v": ndcg_t2v}


def full_matrix_numpy(similarity: np.ndarray, relevancy: np.ndarray) -> dict[str, float]:
    """Whole-matrix vectorisation as in the official script (with a stable sort)."""

    def one_direction(sim: np.ndarray, rel: np.ndarray) -> tuple[float, float]:
        rows = np.arange(sim.shape[0])[:, None]
        ranks = np.arange(1, sim.shape[1] + 1, dtype=np.float64)
        ranked = rel[rows, np.argsort(-sim, axis=1, kind="stable")]
        cumulative = np.cumsum(ranked, axis=1)
        cumulative[ranked != 1] = 0
        average_precision = np.sum(cumulative / ranks, axis=1) / np.sum(ranked == 1, axis=1)
        k_counts = np.sort(rel, axis=1)[:, ::-1] > 0
        logs = np.log2(ranks + 1)
        dcg = np.sum(ranked * k_counts / logs, axis=1)
        idcg = np.sum(np.sort(rel, axis=1)[:, ::-1] * k_counts / logs, axis=1)
        return 100 * np.nanmean(average_precision), 100 * np.nanmean(dcg / idcg)

    map_v2t, ndcg_v2t = one_direction(similarity, relevancy)
    map_t2v, ndcg_t2v = one_direction(similarity.T, relevancy.T)
    return {"mAP_v2t": map_v2t, "mAP_t2v": map_t2v, "nDCG_v2t": ndcg_v2t, "nDCG_t2v": ndcg_t2v}


FUNCTION = "eva02at_hf ek100_mir"
EVALUATE_DIRECT = "evaluate compute(arrays)"
EVALUATE_ARROW = "evaluate add_batch + compute (Arrow)"


def accumulate_and_compute(metric, similarity: np.ndarray, relevancy: np.ndarray) -> dict[str, float]:
    """evaluate's Arrow path, which every compute took before `DirectCompute`: rows cached, read back as lists."""
    metric.add_batch(predictions=similarity, references=relevancy)
    return metric.compute()


def _kib(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def measure(function: Callable[[], dict[str, float]]) -> tuple[dict[str, float], float, float, float]:
    """Result, wall and CPU seconds, and peak resident memory above the starting point (MiB, NaN if unsupported).

    CPU seconds (all threads of this process) are less sensitive than wall time to other load on the machine.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets the VmHWM high-water mark (Linux)
        start_kib = _kib("VmRSS")
    except OSError:
        start_kib = None
    start, start_cpu = time.perf_counter(), time.process_time()
    result = function()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
    peak = (_kib("VmHWM") - start_kib) / 1024 if start_kib is not None else float("nan")
    return result, seconds, cpu_seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--videos", type=int, default=9668)
    parser.add_argument("--texts", type=int, default=3842)
    parser.add_argument("--repeats", type=int, default=1, help="runs per implementation; the fastest is kept")
    parser.add_argument("--with-evaluate", action="store_true", help="also time the `evaluate` module")
    args = parser.parse_args()

    similarity, relevancy = random_problem(args.videos, args.texts)
    print(f"problem: {args.videos} x {args.texts}, similarity float32, relevancy float64")
    print(f"relevancy: {np.mean(relevancy == 1):.4%} ones, {np.mean(relevancy > 0):.2%} non-zero\n")

    relevancy_tensor = torch.from_numpy(relevancy)
    candidates: dict[str, Callable[[], dict[str, float]]] = {
        "per-query NumPy loop (baseline)": lambda: loop_numpy(similarity, relevancy),
        "full-matrix NumPy (official style)": lambda: full_matrix_numpy(similarity, relevancy),
        FUNCTION: lambda: ek100_mir(similarity, relevancy),
        "eva02at_hf ek100_mir (torch inputs)": lambda: ek100_mir(
            torch.from_numpy(similarity), relevancy_tensor
        ),
    }
    if args.with_evaluate:
        metric = load("ek100_mir")
        candidates[EVALUATE_DIRECT] = lambda: metric.compute(predictions=similarity, references=relevancy)
        candidates[EVALUATE_ARROW] = lambda: accumulate_and_compute(metric, similarity, relevancy)

    rows, reference, baseline_seconds, worst = [], None, None, 0.0
    for name, function in candidates.items():
        runs = [measure(function) for _ in range(args.repeats)]
        result, seconds, cpu_seconds, peak = min(runs, key=lambda run: run[1])
        reference = reference or result
        baseline_seconds = baseline_seconds or seconds
        difference = max(abs(result[key] - reference[key]) for key in KEYS)
        worst = max(worst, difference)
        rows.append((name, seconds, baseline_seconds / seconds, cpu_seconds, peak, difference))

    header = f"{'implementation':38s} {'wall (s)':>9s} {'speed-up':>9s} {'CPU (s)':>8s} {'peak MiB':>9s} {'max |diff|':>11s}"
    print(header)
    for name, seconds, speedup, cpu_seconds, peak, difference in rows:
        print(f"{name:38s} {seconds:9.2f} {speedup:8.1f}x {cpu_seconds:8.2f} {peak:9.0f} {difference:11.1e}")
    print(f"(wall time on {os.cpu_count()} logical CPUs; numpy baselines are single-threaded)")
    if args.with_evaluate:
        timings = {name: (seconds, cpu_seconds) for name, seconds, _, cpu_seconds, _, _ in rows}
        print(f"\n{'evaluate path':38s} {'wall / function':>16s} {'CPU / function':>15s}")
        for name in (EVALUATE_DIRECT, EVALUATE_ARROW):
            wall_ratio = timings[name][0] / timings[FUNCTION][0]
            cpu_ratio = timings[name][1] / timings[FUNCTION][1]
            print(f"{name:38s} {wall_ratio:15.2f}x {cpu_ratio:14.2f}x")
    print("\n" + ", ".join(f"{key} = {reference[key]:.4f}" for key in KEYS))
    print(f"identical to 1e-6: {'yes' if worst <= 1e-6 else 'NO'}")
    if worst > 1e-6:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
