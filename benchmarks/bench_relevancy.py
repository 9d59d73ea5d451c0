"""Time and peak memory of the EK-100 train relevancy (67,217 clips x 15,989 sentences, EVA02-AT Eq. 5).

Synthetic problem with EK-100-like class statistics: 97 verb classes and 300 noun classes with Zipf-like
frequencies, 1-3 nouns per narration; clips reuse the unique sentences (every clip has its own narration among
the sentences, as in EK-100). Compared against a naive Python double loop over set pairs (the reference EK-100
recipe) run on a subset of rows and extrapolated. Each case runs in a fresh process: peak memory is the
tracemalloc peak of numpy / scipy allocations and the process's peak RSS above its start.

    python benchmarks/bench_relevancy.py [--clips 67217] [--sentences 15989] [--naive-rows 200]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time
import tracemalloc

import numpy as np

NUM_VERBS, NUM_NOUNS = 97, 300


def synthetic_tables(num_clips: int, num_sentences: int, seed: int = 0) -> tuple[list, list, list, list]:
    """EK-100-like (clip verbs, clip nouns, sentence verbs, sentence nouns) class tables."""
    rng = np.random.default_rng(seed)

    def zipf(size: int, exponent: float) -> np.ndarray:
        weights = 1.0 / np.arange(1, size + 1) ** exponent
        return weights / weights.sum()

    verb_p, noun_p = zipf(NUM_VERBS, 1.1), zipf(NUM_NOUNS, 0.9)
    sentence_verbs = rng.choice(NUM_VERBS, size=num_sentences, p=verb_p).tolist()
    noun_counts = rng.choice([1, 2, 3], size=num_sentences, p=[0.8, 0.15, 0.05])
    sentence_nouns = [rng.choice(NUM_NOUNS, size=k, p=noun_p).tolist() for k in noun_counts]
    clip_to_sentence = np.concatenate(
        [
            np.arange(num_sentences),
            rng.choice(num_sentences, size=num_clips - num_sentences, p=zipf(num_sentences, 0.5)),
        ]
    )
    clip_verbs = [sentence_verbs[s] for s in clip_to_sentence]
    clip_nouns = [sentence_nouns[s] for s in clip_to_sentence]
    return clip_verbs, clip_nouns, sentence_verbs, sentence_nouns


def naive_relevancy(verbs: list, nouns: list, other_verbs: list, other_nouns: list) -> np.ndarray:
    """Reference double loop over set pairs."""
    out = np.zeros((len(verbs), len(other_verbs)), dtype=np.float32)
    col_sets = [({v}, set(n)) for v, n in zip(other_verbs, other_nouns, strict=True)]
    for i, (verb, noun) in enumerate(zip(verbs, nouns, strict=True)):
        verb_set, noun_set = {verb}, set(noun)
        for j, (other_verb_set, other_noun_set) in enumerate(col_sets):
            verb_iou = len(verb_set & other_verb_set) / len(verb_set | other_verb_set)
            noun_iou = len(noun_set & other_noun_set) / len(noun_set | other_noun_set)
            out[i, j] = 0.5 * verb_iou + 0.5 * noun_iou
    return out


def _run_case(case: str, num_clips: int, num_sentences: int, naive_rows: int, queue: mp.Queue) -> None:
    from eva02at_hf.objectives.relevancy import HardMiningSampler, pos_iou_relevancy

    clip_verbs, clip_nouns, sentence_verbs, sentence_nouns = synthetic_tables(num_clips, num_sentences)
    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    start = time.perf_counter()
    extra = ""
    if case == "naive":
        subset = naive_relevancy(
            clip_verbs[:naive_rows], clip_nouns[:naive_rows], sentence_verbs, sentence_nouns
        )
        seconds = (time.perf_counter() - start) * num_clips / naive_rows
        fast = pos_iou_relevancy(
            clip_verbs[:naive_rows], clip_nouns[:naive_rows], sentence_verbs, sentence_nouns
        )
        extra = f"extrapolated from {naive_rows} rows; max |naive - vectorised| = {np.abs(subset - fast).max():.1e}"
    elif case in ("dense", "sparse"):
        relevancy = pos_iou_relevancy(
            clip_verbs, clip_nouns, sentence_verbs, sentence_nouns, return_sparse=case == "sparse"
        )
        seconds = time.perf_counter() - start
        nnz = relevancy.nnz if case == "sparse" else int(np.count_nonzero(relevancy))
        extra = f"{nnz / (num_clips * num_sentences):.1%} non-zero"
    else:
        relevancy = pos_iou_relevancy(
            clip_verbs, clip_nouns, sentence_verbs, sentence_nouns, return_sparse=True
        )
        matrix_bytes, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        start = time.perf_counter()
        sampler = HardMiningSampler(relevancy, epsilon=0.1)
        build = time.perf_counter() - start
        draw_start = time.perf_counter()
        sampler.sample(np.arange(num_clips), rng=0)
        seconds = time.perf_counter() - start
        extra = (
            f"build {build:.2f} s + one epoch of draws {time.perf_counter() - draw_start:.3f} s; "
            f"{sampler.num_candidates.mean():.0f} candidates per clip; peaks include the "
            f"{matrix_bytes / 2**30:.2f} GiB sparse matrix, sampler keeps "
            f"{(sampler.indptr.nbytes + sampler.indices.nbytes) / 2**30:.2f} GiB"
        )
    _, peak = tracemalloc.get_traced_memory()
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put((seconds, peak / 2**30, (rss_peak - rss_start) / 2**20, extra))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", type=int, default=67_217)
    parser.add_argument("--sentences", type=int, default=15_989)
    parser.add_argument("--naive-rows", type=int, default=200)
    args = parser.parse_args()
    context = mp.get_context("spawn")
    cases = {
        "naive": "naive Python set loop (baseline)",
        "dense": "pos_iou_relevancy, dense float32",
        "sparse": "pos_iou_relevancy, return_sparse=True",
        "sampler": "HardMiningSampler on the sparse matrix",
    }
    print(
        f"relevancy {args.clips:,} clips x {args.sentences:,} sentences, {NUM_VERBS} verbs, {NUM_NOUNS} nouns"
    )
    print(f"{'case':<40} {'time (s)':>10} {'traced peak (GiB)':>18} {'RSS peak (GiB)':>15}  notes")
    results = {}
    for case, label in cases.items():
        queue = context.Queue()
        process = context.Process(
            target=_run_case, args=(case, args.clips, args.sentences, args.naive_rows, queue)
        )
        process.start()
        seconds, traced, rss, extra = queue.get()
        process.join()
        results[case] = seconds
        print(f"{label:<40} {seconds:>10.2f} {traced:>18.2f} {rss:>15.2f}  {extra}")
    print(f"speed-up of the dense build over the naive loop: {results['naive'] / results['dense']:.0f}x")


if __name__ == "__main__":
    main()
