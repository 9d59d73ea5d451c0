"""Training library: schedules, resumable data, shape-stable collation, objectives, resume and 2-process DDP."""

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from _helpers import cpu_environment, python_processes, tiny_ek100_loop
from accelerate.utils import DistributedType
from safetensors.torch import load_file
from torch.distributed.fsdp import StateDictType

from eva02at_hf.data import synthetic
from eva02at_hf.objectives import HardMiningSampler, RetrievalObjective, SMSLoss, build_loss
from eva02at_hf.training import (
    ClipTextDataset,
    EK100Split,
    EpochShuffleSampler,
    TrainingCollator,
    TrainingLoop,
    TrainingLoopConfig,
    build_scheduler,
    cached_relevancy,
    load_model_and_processor,
)
from eva02at_hf.training.loop import check_fsdp, check_metric_for_best, checkpoint_steps

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def synthetic_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    synthetic.generate(root, num_clips=48, seed=1, test_fraction=0.3)
    cache = root / "cache"
    return root, EK100Split(root, root / "videos", "train", cache, datasets_cache_dir=str(cache))


def test_warmup_then_cosine_schedule():
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([parameter], lr=2e-5)
    scheduler = build_scheduler(optimizer, "cosine", total_steps=10, warmup_steps=4, warmup_start_lr=1e-6)
    rates = []
    for _ in range(10):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    rates.append(scheduler.get_last_lr()[0])
    # Warm-up 1e-6 -> 2e-5 in 4 equal steps of 4.75e-6, then cosine over 6 steps down to 1e-6.
    assert rates[:5] == pytest.approx([1e-6, 5.75e-6, 10.5e-6, 15.25e-6, 2e-5], rel=1e-6)
    assert rates[7] == pytest.approx(1e-6 + 19e-6 * (1 + np.cos(np.pi * 3 / 6)) / 2, rel=1e-6)
    assert rates[10] == pytest.approx(1e-6, rel=1e-6)
    constant = build_scheduler(torch.optim.AdamW([parameter], lr=3e-5), "constant", total_steps=5)
    assert constant.get_last_lr()[0] == pytest.approx(3e-5)


def test_sampler_is_epoch_seeded_permutation():
    sampler = EpochShuffleSampler(10, seed=3)
    first = list(sampler)
    assert sorted(first) == list(range(10)) and list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first


def test_hard_mined_positives_are_candidates_and_reproducible(synthetic_set):
    _, train = synthetic_set
    positives = HardMiningSampler(train.relevancy, 0.1)
    dataset = ClipTextDataset(train.clips, train.sentences, positives, seed=0)
    dense = train.relevancy.toarray()
    draws = [dataset[i]["sentence_index"] for i in range(len(dataset))]
    assert all(dense[i, j] >= 0.1 for i, j in enumerate(draws))
    assert [dataset[i]["sentence_index"] for i in range(len(dataset))] == draws
    assert dataset[5]["text"] == train.sentences[draws[5]]


def test_collator_keeps_batch_shape_and_masks_bad_clips(synthetic_set, tmp_path):
    _, train = synthetic_set
    _, processor = load_model_and_processor(None, num_frames=2)
    collator = TrainingCollator(processor, 2, keep_columns=("clip_index",))
    rows = [{**train.clips[i], "text": "x", "clip_index": i} for i in range(3)]
    rows[1]["video_paths"] = [str(tmp_path / "missing.mp4")]
    batch = collator(rows)
    assert batch["pixel_values"].shape == (3, 2, 3, 32, 32)
    assert batch["valid"].tolist() == [True, False, True]
    assert batch["pixel_values"][1].abs().sum() == 0 and batch["pixel_values"][0].abs().sum() > 0
    assert batch["clip_index"].tolist() == [0, 1, 2] and batch["input_ids"].shape == (3, 77)
    assert collator.num_skipped == 1


def test_objective_is_the_loss_on_valid_rows():
    relevancy = sp.csr_array(np.array([[1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32))
    videos = torch.nn.functional.normalize(
        torch.randn(3, 4, generator=torch.Generator().manual_seed(0)), dim=1
    )
    texts = torch.nn.functional.normalize(
        torch.randn(3, 4, generator=torch.Generator().manual_seed(1)), dim=1
    )
    batch = {
        "valid": torch.tensor([True, False, True]),
        "clip_index": torch.tensor([0, 1, 2]),
        "sentence_index": torch.tensor([0, 1, 2]),
    }
    loss = RetrievalObjective(build_loss("sms"), relevancy)(videos, texts, batch)
    keep = [0, 2]
    expected = SMSLoss(0.6, 0.1, 0.1)((videos @ texts.T)[keep][:, keep], torch.eye(2))
    assert loss.item() == pytest.approx(expected.item())


def test_relevancy_cache_is_reused(tmp_path):
    built = cached_relevancy(tmp_path, "rel", "abc", lambda: np.eye(3, dtype=np.float32))

    def fail():
        raise AssertionError("rebuilt")

    assert (cached_relevancy(tmp_path, "rel", "abc", fail) != built).nnz == 0
    with pytest.raises(ZeroDivisionError):
        cached_relevancy(tmp_path, "rel", "other", lambda: 1 / 0)


def _trainer(train, output_dir: str, evaluate=None, **overrides) -> TrainingLoop:
    settings = {"num_epochs": 2, "batch_size": 8, "learning_rate": 1e-3}
    return tiny_ek100_loop(train, output_dir, evaluate, **{**settings, **overrides})


def _scripted_evaluation(*metrics: dict) -> Callable:
    """An ``evaluate(model, accelerator)`` returning ``metrics`` one after the other."""
    queue = list(metrics)
    return lambda model, accelerator: queue.pop(0)


def test_push_to_hub_publishes_the_saved_model_with_a_card(synthetic_set, tmp_path, monkeypatch):
    import eva02at_hf.apps.hub

    calls = []
    monkeypatch.setattr(eva02at_hf.apps.hub, "publish", lambda *args, **kwargs: calls.append((args, kwargs)))
    _, train = synthetic_set
    output_dir = tmp_path / "run"
    results = _trainer(
        train, str(output_dir), max_steps=1, push_to_hub=True, hub_model_id="me/eva02at-run"
    ).train()
    assert results["world_size"] == 1 and results["num_skipped_clips"] == 0
    [(args, kwargs)] = calls
    folder, repo_id, card = args[:3]
    assert folder == str(output_dir / "last") and repo_id == "me/eva02at-run"  # no evaluation, so no best/
    assert (output_dir / "last" / "config.json").is_file()
    assert "me/eva02at-run" in str(card) and "library_name: transformers" in str(card)


def test_push_to_hub_card_holds_the_best_evaluation_after_results_json(
    synthetic_set, tmp_path, monkeypatch, capsys
):
    import eva02at_hf.apps.hub

    output_dir = tmp_path / "run"
    pushed = []

    def publish(folder, repo_id, card, staging, **kwargs):
        pushed.append((folder, str(card), json.loads((output_dir / "results.json").read_text())))

    monkeypatch.setattr(eva02at_hf.apps.hub, "publish", publish)
    _, train = synthetic_set
    evaluate = _scripted_evaluation(
        {"mAP_avg": 31.5, "nDCG_avg": 52.25, "num_skipped": 0},
        {"mAP_avg": 12.0, "nDCG_avg": 40.75, "num_skipped": 0},
    )
    results = _trainer(
        train, str(output_dir), evaluate, eval_every_epochs=1, push_to_hub=True, hub_model_id="me/run"
    ).train({"args": {"loss": "sms"}})
    [(folder, card, saved)] = pushed
    assert saved == results and saved["args"] == {"loss": "sms"}  # results.json was written before the push
    assert saved["best_metric"] == 31.5 and saved["final"]["mAP_avg"] == 12.0
    # The first epoch is the best: best/ is pushed, and its card holds that evaluation's metrics.
    assert folder == str(output_dir / "best")
    assert "value: 31.5" in card and "value: 52.25" in card and "name: mAP avg" in card
    assert "value: 12.0" not in card and "num_skipped" not in card
    out = capsys.readouterr().out
    assert "epoch 1/2 (step 4): mAP_avg 31.50, nDCG_avg 52.25, num_skipped 0" in out
    assert "epoch 2/2 (step 8): mAP_avg 12.00, nDCG_avg 40.75, num_skipped 0" in out


def test_failed_push_keeps_results_and_names_the_repository(synthetic_set, tmp_path, monkeypatch):
    import eva02at_hf.apps.hub

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(eva02at_hf.apps.hub, "publish", offline)
    _, train = synthetic_set
    output_dir = tmp_path / "run"
    trainer = _trainer(
        train,
        str(output_dir),
        _scripted_evaluation({"mAP_avg": 20.0, "nDCG_avg": 30.0}),
        max_steps=1,
        push_to_hub=True,
        hub_model_id="me/offline-run",
    )
    with pytest.raises(RuntimeError, match="'me/offline-run' failed .*OSError: no network"):
        trainer.train({"args": {"seed": 0}})
    saved = json.loads((output_dir / "results.json").read_text())
    assert saved["args"] == {"seed": 0} and saved["final"] == {"mAP_avg": 20.0, "nDCG_avg": 30.0}
    assert (output_dir / "last" / "model.safetensors").is_file()
    assert (output_dir / "best" / "model.safetensors").is_file()


def test_unknown_metric_for_best_names_the_flag_and_the_metrics(synthetic_set, tmp_path):
    _, train = synthetic_set
    evaluate = _scripted_evaluation({"mAP_avg": 20.0, "nDCG_avg": 30.0})
    trainer = _trainer(train, str(tmp_path / "run"), evaluate, max_steps=1, metric_for_best="map_avg")
    with pytest.raises(ValueError, match=r"--metric_for_best 'map_avg'.*\['mAP_avg', 'nDCG_avg'\]"):
        trainer.train()
    assert not (tmp_path / "run" / "best").exists()
    config = TrainingLoopConfig(output_dir=str(tmp_path), metric_for_best="mAP")
    check_metric_for_best(config, {"mAP": ("map", "mAP")})
    with pytest.raises(ValueError, match="--metric_for_best 'mAP'"):
        check_metric_for_best(config, ("mAP_avg",))


def test_loaded_model_processor_samples_the_training_frame_count(tmp_path):
    model, processor = load_model_and_processor(None, num_frames=2)
    assert processor.video_processor.num_frames == 2  # the preset's default processor samples 16
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    model, processor = load_model_and_processor(str(tmp_path), num_frames=4)
    assert model.config.vision_config.num_frames == 4 and processor.video_processor.num_frames == 4


def test_kill_and_resume_ends_at_the_same_weights(synthetic_set, tmp_path, capsys):
    _, train = synthetic_set
    full = _trainer(train, str(tmp_path / "full"))
    full.train()
    assert full.state.global_step == 2 * full.updates_per_epoch == 8
    # Checkpoints after updates 4 (epoch end) and 8 (epoch end); the default save_total_limit=2 keeps both.
    assert checkpoint_steps(str(tmp_path / "full")) == [4, 8]
    _trainer(train, str(tmp_path / "cut"), max_steps=3, checkpointing_steps=3).train()  # "killed" after 3
    # Another schedule would run the restored cosine scheduler past its end: refused, naming what changed.
    changed = _trainer(
        train, str(tmp_path / "cut"), resume_from_checkpoint="latest", num_epochs=3, learning_rate=2e-3
    )
    with pytest.raises(ValueError, match="--resume_from_checkpoint") as error:
        changed.train()
    assert "num_epochs 2 -> 3" in str(error.value) and "learning_rate 0.001 -> 0.002" in str(error.value)
    assert "batch_size" not in str(error.value)
    capsys.readouterr()
    # max_steps, checkpointing_steps and save_total_limit do not touch the schedule: they may change.
    resumed = _trainer(train, str(tmp_path / "cut"), resume_from_checkpoint="latest", save_total_limit=1)
    resumed.train()
    assert f"resumed from {tmp_path / 'cut' / 'checkpoints' / 'step_3'} at step 3" in capsys.readouterr().out
    assert resumed.state.global_step == 8
    assert checkpoint_steps(str(tmp_path / "cut")) == [8]  # older checkpoints rotated away
    expected = load_file(tmp_path / "full" / "last" / "model.safetensors")
    found = load_file(tmp_path / "cut" / "last" / "model.safetensors")
    assert expected.keys() == found.keys()
    for name in expected:
        torch.testing.assert_close(found[name], expected[name], rtol=0, atol=1e-6, msg=name)


FSDP2_CONFIG = REPO / "examples" / "accelerate_configs" / "fsdp2.yaml"


def _fsdp2_env() -> dict[str, str]:
    """The FSDP variables `accelerate launch --config_file examples/accelerate_configs/fsdp2.yaml` sets (computed
    by accelerate's launcher; `accelerate launch --cpu` would drop them, see tests/fsdp_on_cpu.py)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env

    args = launch_command_parser().parse_args(["--config_file", str(FSDP2_CONFIG), "train.py"])
    env = prepare_multi_gpu_env(_validate_launch_command(args)[0])
    return {k: v for k, v in env.items() if k.startswith("FSDP_") or k == "ACCELERATE_USE_FSDP"}


def test_fsdp2_preparation_wraps_the_blocks_and_keeps_logit_scale_as_a_buffer():
    model, _ = load_model_and_processor(None, num_frames=2)
    value = model.logit_scale.item()
    plugin = SimpleNamespace(
        transformer_cls_names_to_wrap=None, state_dict_type=StateDictType.FULL_STATE_DICT
    )
    fsdp2 = SimpleNamespace(
        distributed_type=DistributedType.FSDP, is_fsdp2=True, state=SimpleNamespace(fsdp_plugin=plugin)
    )
    with pytest.raises(ValueError, match="fsdp_state_dict_type: SHARDED_STATE_DICT"):
        check_fsdp(fsdp2, model)
    plugin.state_dict_type = StateDictType.SHARDED_STATE_DICT
    model.logit_scale.requires_grad_(True)
    with pytest.raises(ValueError, match="'logit_scale'"):  # a trainable 0-d parameter cannot be sharded
        check_fsdp(fsdp2, model)
    model.logit_scale.requires_grad_(False)
    check_fsdp(fsdp2, model)
    assert plugin.transformer_cls_names_to_wrap == ["CLIPEncoderLayer", "EVA02ATEncoderLayer"]
    assert "logit_scale" not in dict(model.named_parameters())
    assert model.state_dict()["logit_scale"].item() == value and model.logit_scale.ndim == 0
    fsdp1 = SimpleNamespace(distributed_type=DistributedType.FSDP, is_fsdp2=False)
    with pytest.raises(ValueError, match="fsdp_version: 2"):
        check_fsdp(fsdp1, model)


def test_fsdp2_config_asks_accelerate_for_sharded_fsdp2_checkpoints():
    env = _fsdp2_env()
    assert env["ACCELERATE_USE_FSDP"] == "true" and env["FSDP_VERSION"] == "2"
    assert env["FSDP_STATE_DICT_TYPE"] == "SHARDED_STATE_DICT"
    assert env["FSDP_AUTO_WRAP_POLICY"] == "TRANSFORMER_BASED_WRAP"
    assert "FSDP_TRANSFORMER_CLS_TO_WRAP" not in env  # the loop's default: the transformer blocks


def _finetune(data_dir: Path, output_dir: Path, nproc: int, *extra: str, fsdp: bool = False) -> dict:
    command = [
        *python_processes(nproc),
        *([str(REPO / "tests" / "fsdp_on_cpu.py")] if fsdp else []),
        str(REPO / "examples" / "finetune_ek100.py"),
        *(
            "--data_dir",
            str(data_dir),
            "--video_root",
            str(data_dir / "videos"),
            "--output_dir",
            str(output_dir),
        ),
        *(
            "--num_frames",
            "2",
            "--batch_size",
            str(8 // nproc),
            "--num_epochs",
            "1",
            "--learning_rate",
            "1e-3",
        ),
        *("--num_workers", "0", "--report_to", "none", "--eval_batch_size", "8", "--warmup_epochs", "0"),
        *extra,
    ]
    env = cpu_environment(**(_fsdp2_env() if fsdp else {}))
    subprocess.run(command, check=True, env=env, cwd=output_dir.parent, timeout=300)
    return json.loads((output_dir / "results.json").read_text())


@pytest.mark.slow
def test_two_gloo_processes_match_one(synthetic_set, tmp_path):
    data_dir, _ = synthetic_set
    single = _finetune(data_dir, tmp_path / "one", 1)
    double = _finetune(data_dir, tmp_path / "two", 2)
    assert single["world_size"] == 1 and double["world_size"] == 2
    # Same global batches (per-example seeds): only float summation order differs.
    one = load_file(tmp_path / "one" / "last" / "model.safetensors")
    two = load_file(tmp_path / "two" / "last" / "model.safetensors")
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=0, atol=1e-4, msg=name)
    for key, value in single["final"].items():
        assert double["final"][key] == pytest.approx(value, abs=0.5), key


@pytest.mark.slow
def test_fsdp2_matches_one_process_and_resumes_exactly_from_sharded_checkpoints(synthetic_set, tmp_path):
    data_dir, _ = synthetic_set
    single = _finetune(data_dir, tmp_path / "one", 1)
    sharded = _finetune(data_dir, tmp_path / "fsdp", 2, "--checkpointing_steps", "2", fsdp=True)
    assert sharded["world_size"] == 2
    # Sharded checkpoints (torch.distributed.checkpoint): one file per process for weights and optimizer.
    checkpoint = tmp_path / "fsdp" / "checkpoints" / "step_2"
    for folder in ("pytorch_model_fsdp_0", "optimizer_0"):
        assert sorted(p.name for p in (checkpoint / folder).glob("*.distcp")) == [
            "__0_0.distcp",
            "__1_0.distcp",
        ]
    assert not list(checkpoint.glob("*.safetensors"))
    one = load_file(tmp_path / "one" / "last" / "model.safetensors")
    two = load_file(tmp_path / "fsdp" / "last" / "model.safetensors")
    assert one.keys() == two.keys()  # logit_scale included (a buffer while sharded)
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=0, atol=1e-4, msg=name)
    for key, value in single["final"].items():
        assert sharded["final"][key] == pytest.approx(value, abs=0.5), key
    # The saved folder names the model's own class, not FSDP2's generated subclass.
    saved = json.loads((tmp_path / "fsdp" / "last" / "config.json").read_text())
    assert saved["auto_map"]["AutoModel"] == "modeling_eva02at.EVA02ATForVideoTextRetrieval"
    assert not list((tmp_path / "fsdp" / "last").glob("_fsdp*.py"))
    # Resume mid-epoch (update 2 of 4) from the sharded checkpoint, found by `latest` (complete: both `.metadata`):
    # the same weights as the uninterrupted run.
    shutil.copytree(checkpoint, tmp_path / "resumed" / "checkpoints" / "step_2")
    _finetune(data_dir, tmp_path / "resumed", 2, "--resume_from_checkpoint", "latest", fsdp=True)
    resumed = load_file(tmp_path / "resumed" / "last" / "model.safetensors")
    for name in two:
        torch.testing.assert_close(resumed[name], two[name], rtol=0, atol=0, msg=name)
