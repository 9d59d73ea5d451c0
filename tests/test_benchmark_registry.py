"""The benchmark registry (`eva02at_hf.training.benchmarks`): the four declarations match what their evaluators
return, and a benchmark registered in one place reaches `eva02at eval`, the zero-shot script, the training loop's
``--metric_for_best`` and the model card."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from huggingface_hub import ModelCard

from eva02at_hf import EVA02ATConfig
from eva02at_hf.apps.cli import EXIT_OK, EXIT_USAGE, build_parser, main
from eva02at_hf.apps.hub import check_results, load_results, render_model_card
from eva02at_hf.data import synthetic
from eva02at_hf.metrics import charades_ego_map, egomcq_accuracy, ek100_mir
from eva02at_hf.objectives import build_loss
from eva02at_hf.training import (
    BENCHMARKS,
    Benchmark,
    BenchmarkData,
    EK100Split,
    Metric,
    TrainingCollator,
    TrainingLoopConfig,
    build_ek100_loop,
    check_metric_for_best,
    load_model_and_processor,
    register_benchmark,
    unregister_benchmark,
)
from eva02at_hf.training.benchmarks import HubMetadata, higher_is_better, is_improvement
from eva02at_hf.training.loop import card_results

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# What each evaluator computes its metrics with, fed below with a perfect and a reversed ranking.
METRIC_FUNCTIONS = {
    "ek100_mir": ek100_mir,
    "synthetic": ek100_mir,
    "egomcq": egomcq_accuracy,
    "charades_ego": charades_ego_map,
}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    synthetic.generate(
        root, num_clips=40, seed=0, max_clips_per_video=6, test_fraction=0.5, layouts=synthetic.LAYOUTS
    )
    return root


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    model, processor = load_model_and_processor(None, num_frames=2)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def test_the_four_benchmarks_are_registered() -> None:
    assert set(METRIC_FUNCTIONS) <= set(BENCHMARKS)
    assert [BENCHMARKS[name].split for name in METRIC_FUNCTIONS] == ["test", "test", "validation", "test"]


def test_declared_metrics_are_what_the_evaluators_return(data: Path, tmp_path: Path, monkeypatch) -> None:
    """A tiny run of every real benchmark through its declared loader, evaluator and batcher."""
    torch.manual_seed(0)
    model, processor = load_model_and_processor(None, num_frames=2)
    accelerator = Accelerator(cpu=True)
    for name in METRIC_FUNCTIONS:
        benchmark = BENCHMARKS[name]
        batches = []

        def counting(self, rows, batcher=benchmark.collator.__call__, batches=batches):
            batches.append(len(rows))
            return batcher(self, rows)

        monkeypatch.setattr(benchmark.collator, "__call__", counting)
        loaded = benchmark.load(data, data / "videos", cache_dir=tmp_path / name)
        metrics = benchmark.evaluate(model, processor, loaded, accelerator, num_frames=2, batch_size=10)
        monkeypatch.undo()
        assert batches, f"{name}: the evaluator did not batch with the declared {benchmark.collator.__name__}"
        assert metrics.pop("num_skipped") == 0
        assert set(metrics) == set(benchmark.metrics), name
        assert all(0 <= value <= 100 for value in metrics.values() if value == value), (name, metrics)
        assert all(isinstance(count, int | str) for count in loaded.info.values())


def _perfect_and_reversed(name: str) -> tuple[dict[str, float], dict[str, float]]:
    """The benchmark's metrics of a perfect ranking and of the same ranking reversed."""
    if name in ("ek100_mir", "synthetic"):
        relevancy = np.array([[1.0, 0.5, 0.0], [0.2, 1.0, 0.5], [0.0, 0.3, 1.0], [1.0, 0.0, 0.1]])
        return ek100_mir(relevancy, relevancy), ek100_mir(-relevancy, relevancy)
    if name == "egomcq":
        answers, types = np.array([0, 3, 1, 4]), np.array([1, 2, 1, 2])
        perfect = np.eye(5)[answers]
        return egomcq_accuracy(perfect, answers, types), egomcq_accuracy(-perfect, answers, types)
    targets = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 1], [1, 1, 0]])
    return charades_ego_map(targets.astype(float), targets), charades_ego_map(-targets.astype(float), targets)


@pytest.mark.parametrize("name", sorted(METRIC_FUNCTIONS))
def test_declared_directions_rank_a_perfect_model_first(name: str) -> None:
    perfect, reversed_ = _perfect_and_reversed(name)
    declared = BENCHMARKS[name].metrics
    assert set(perfect) == set(declared)
    for metric, value in perfect.items():
        assert value == pytest.approx(100.0)
        better = value > reversed_[metric]
        assert better == declared[metric].higher_is_better, (name, metric, value, reversed_[metric])
        assert is_improvement(metric, value, reversed_[metric])


def _toy_loader(data_dir, video_root, split, cache_dir=None, **builder_kwargs) -> BenchmarkData:
    items = json.loads((Path(data_dir) / "toy.json").read_text())[split]
    return BenchmarkData((items,), {"num_items": len(items)})


def _toy_evaluator(model, processor, items, accelerator, num_frames, batch_size, num_workers) -> dict:
    """Rank each item's caption among all captions by the model's text embeddings."""
    tokens = processor(text=[item["caption"] for item in items], return_tensors="pt")
    with torch.no_grad():
        texts = model.get_text_features(tokens["input_ids"], tokens["attention_mask"]).pooler_output
    similarity = torch.nn.functional.normalize(texts, dim=-1) @ torch.nn.functional.normalize(texts, dim=-1).T
    ranks = (similarity > similarity.diagonal()[:, None]).sum(1) + 1
    return {
        "recall_at_1": 100.0 * float((ranks == 1).float().mean()),
        "median_rank": float(ranks.float().median()) + num_frames,
        "num_skipped": 0,
    }


TOY = Benchmark(
    name="toy_retrieval",
    description="a toy caption-retrieval benchmark declared in a test",
    loader=_toy_loader,
    evaluator=_toy_evaluator,
    collator=TrainingCollator,
    metrics={
        "recall_at_1": Metric("recall", "R@1"),
        "median_rank": Metric("median_rank", "Median rank", higher_is_better=False),
    },
    hub=HubMetadata(
        title="Toy caption retrieval (dev split)",
        task_type="text-retrieval",
        task_name="Toy retrieval",
        dataset_type="toy-retrieval",
        dataset_name="ToyRet",
    ),
    split="dev",
    splits=("dev",),
    flag_prefix="toy",
)


@pytest.fixture
def toy(tmp_path: Path):
    """The toy benchmark, registered for one test (and its data folder)."""
    folder = tmp_path / "toy"
    folder.mkdir()
    captions = ["cut the onion", "open the fridge", "wash the pan"]
    (folder / "toy.json").write_text(json.dumps({"dev": [{"caption": c} for c in captions]}))
    register_benchmark(TOY)
    try:
        yield folder
    finally:
        unregister_benchmark(TOY.name)


def _eval_choices() -> tuple[str, ...]:
    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    return next(a for a in commands["eval"]._actions if a.dest == "benchmark").choices


def test_a_registered_benchmark_reaches_the_cli_the_card_and_the_loop(
    toy: Path, model_dir: Path, data: Path, tmp_path: Path, capsys
) -> None:
    assert "toy_retrieval" in _eval_choices()
    # eva02at eval: the declared split, the loader's counts and the evaluator's metrics in a card-ready JSON.
    out = tmp_path / "toy.json"
    argv = [
        "eval",
        "toy_retrieval",
        "--model",
        str(model_dir),
        "--data_dir",
        str(toy),
        "--video_root",
        str(toy),
    ]
    assert main([*argv, "--num_frames", "2", "--output", str(out)]) == EXIT_OK
    [entry] = load_results(out)["results"]
    assert entry["split"] == "dev" and entry["num_items"] == 3 and entry["num_skipped"] == 0
    assert set(entry["metrics"]) == {"recall_at_1", "median_rank"} and entry["metrics"]["median_rank"] >= 3
    assert main([*argv, "--split", "test"]) == EXIT_USAGE
    assert "--split test: toy_retrieval has the splits dev" in capsys.readouterr().err

    # The model card: model-index entries with the declared task, dataset and metric names, and a table.
    card = render_model_card(EVA02ATConfig.from_preset("eva02at-tiny"), load_results(out), "me/toy")
    results = ModelCard(str(card)).data.eval_results
    assert {(r.task_type, r.dataset_type, r.dataset_split) for r in results} == {
        ("text-retrieval", "toy-retrieval", "dev")
    }
    assert sorted(r.metric_name for r in results) == ["Median rank", "R@1"]
    assert "### Toy caption retrieval (dev split)" in card.text and "| R@1 | Median rank |" in card.text

    # The loop: --metric_for_best validation, the declared direction (the lowest median rank is best), the card.
    config = TrainingLoopConfig(output_dir=str(tmp_path), metric_for_best="median_rank")
    check_metric_for_best(config, TOY.metrics)
    assert not higher_is_better("median_rank")
    assert card_results({"median_rank": 4.0, "num_skipped": 0}, "fine-tuned")["results"][0]["benchmark"] == (
        "toy_retrieval"
    )
    train = EK100Split(
        data, data / "videos", "train", tmp_path / "cache", datasets_cache_dir=str(tmp_path / "cache")
    )
    scripted = iter([{"median_rank": 5.0}, {"median_rank": 3.0}, {"median_rank": 4.0}])
    torch.manual_seed(0)
    model, processor = load_model_and_processor(None, num_frames=2)
    loop_config = TrainingLoopConfig(
        output_dir=str(tmp_path / "run"),
        num_epochs=3,
        eval_every_epochs=1,
        batch_size=4,
        num_workers=0,
        report_to="none",
        metric_for_best="median_rank",
    )
    results = build_ek100_loop(
        loop_config, model, processor, train, build_loss("sms"), 2, evaluate=lambda m, a: next(scripted)
    ).train()
    assert results["best_metric"] == 3.0 and results["final"]["median_rank"] == 4.0


def test_a_registered_benchmark_gets_the_zero_shot_script_flags(toy: Path, tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "example_evaluate_zeroshot_toy", EXAMPLES / "evaluate_zeroshot.py"
    )
    script = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = script
    spec.loader.exec_module(script)
    results = script.main(["--output_dir", str(tmp_path), "--toy_dir", str(toy), "--toy_videos", str(toy)])
    assert list(results) == ["toy_retrieval"]
    assert set(results["toy_retrieval"]) == {"recall_at_1", "median_rank", "num_skipped"}
    # num_frames (16 by default) reaches the evaluator: the toy adds it to the median rank.
    assert results["toy_retrieval"]["median_rank"] >= 17
    with pytest.raises(ValueError, match="--toy_dir needs --toy_videos"):
        script.main(["--output_dir", str(tmp_path), "--toy_dir", str(toy)])


def test_unregistered_benchmarks_are_gone_everywhere(toy: Path) -> None:
    unregister_benchmark(TOY.name)
    try:
        assert "toy_retrieval" not in _eval_choices() and higher_is_better("median_rank")
        with pytest.raises(ValueError, match="benchmark 'toy_retrieval' is not one of"):
            check_results({"results": [{"benchmark": "toy_retrieval", "metrics": {"median_rank": 2.0}}]})
        assert card_results({"median_rank": 2.0}, "zero-shot") is None
    finally:
        register_benchmark(TOY)  # the fixture unregisters it


def test_registration_refuses_clashes() -> None:
    with pytest.raises(ValueError, match="'ek100_mir' is already registered"):
        register_benchmark(BENCHMARKS["ek100_mir"])
    flipped = Benchmark(**{**vars(TOY), "name": "flipped", "metrics": {"mAP": Metric("map", "mAP", False)}})
    with pytest.raises(ValueError, match="metric 'mAP' has the opposite direction in 'charades_ego'"):
        register_benchmark(flipped)
    assert "flipped" not in BENCHMARKS
    with pytest.raises(ValueError, match="split 'dev' is not one of"):
        Benchmark(**{**vars(TOY), "splits": ("test",)})
