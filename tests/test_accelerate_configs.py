"""The accelerate config files in examples/accelerate_configs, read by accelerate's own loader and launcher.

DeepSpeed is not installed in CI: the DeepSpeed plugin is built from the environment the launcher prepares (what
the training scripts' `Accelerator` reads), without starting DeepSpeed. What ran by hand is in docs/training.md.
"""

import json
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from accelerate.commands import launch
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.utils import DeepSpeedPlugin, DistributedType
from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

from eva02at_hf.training.loop import (
    DEEPSPEED_CHECKPOINT_FILES,
    DEEPSPEED_ZERO3_MODEL_STATES,
    STATE_FILE,
    TrainingLoopState,
    check_deepspeed,
    checkpoint_files,
    checkpoint_problem,
    latest_checkpoint,
)
from eva02at_hf.training.models import load_model_and_processor, whole_weights

CONFIGS = Path(__file__).resolve().parents[1] / "examples" / "accelerate_configs"
SCRIPT = ["examples/finetune_ek100.py", "--data_dir", "annotations", "--num_frames", "16"]


def _launch_environment(monkeypatch, arguments: list[str]) -> dict[str, str]:
    """The environment `accelerate launch ARGUMENTS` would give the processes; nothing is started."""
    prepared: list[dict[str, str]] = []

    def deepspeed(args) -> None:
        prepared.append(prepare_deepspeed_cmd_env(args)[1])

    monkeypatch.setattr(launch, "deepspeed_launcher", deepspeed)
    monkeypatch.setattr(
        launch, "multi_gpu_launcher", lambda args: prepared.append(prepare_multi_gpu_env(args))
    )
    args = launch.launch_command_parser().parse_args(arguments)
    launch.launch_command(args)
    assert [args.training_script, *args.training_script_args] == SCRIPT  # passed through unchanged
    assert len(prepared) == 1
    return prepared[0]


def test_the_documented_configs_are_there() -> None:
    names = {path.name for path in CONFIGS.glob("*.yaml")}
    assert {"deepspeed_zero2.yaml", "deepspeed_zero3.yaml", "multi_gpu.yaml"} <= names


@pytest.mark.parametrize("name", sorted(path.name for path in CONFIGS.glob("*.yaml")))
def test_config_parses_for_one_node_of_eight(name: str, monkeypatch) -> None:
    config = load_config_from_file(str(CONFIGS / name))
    assert (config.num_processes, config.num_machines, config.use_cpu) == (8, 1, False)
    kind = {"deepspeed": DistributedType.DEEPSPEED, "fsdp": DistributedType.FSDP}
    assert config.distributed_type == next(
        (value for prefix, value in kind.items() if name.startswith(prefix)), DistributedType.MULTI_GPU
    )
    env = _launch_environment(monkeypatch, ["--config_file", str(CONFIGS / name), *SCRIPT])
    assert env.get("ACCELERATE_USE_DEEPSPEED", "false") == str(name.startswith("deepspeed")).lower()
    assert env.get("ACCELERATE_USE_FSDP", "false") == str(name.startswith("fsdp")).lower()
    # The scripts' own flags decide these: the config must not override them through the environment.
    assert "ACCELERATE_GRADIENT_ACCUMULATION_STEPS" not in env
    assert env.get("ACCELERATE_MIXED_PRECISION", "no") == "no"


@pytest.mark.parametrize(("stage", "gathers_weights"), [(2, False), (3, True)])
def test_deepspeed_plugin_from_the_launch_environment(stage: int, gathers_weights: bool, monkeypatch) -> None:
    env = _launch_environment(
        monkeypatch, ["--config_file", str(CONFIGS / f"deepspeed_zero{stage}.yaml"), *SCRIPT]
    )
    for key, value in env.items():
        if key.startswith("ACCELERATE_"):
            monkeypatch.setenv(key, value)
    plugin = DeepSpeedPlugin()
    zero = plugin.deepspeed_config["zero_optimization"]
    assert zero["stage"] == stage
    assert zero["offload_optimizer"]["device"] == zero["offload_param"]["device"] == "none"
    # ZeRO-3: save_pretrained ("last" / "best") needs the whole weights gathered from the shards.
    assert zero.get("stage3_gather_16bit_weights_on_model_save", False) == gathers_weights
    # Batch and accumulation are filled from the scripts' --batch_size / --gradient_accumulation_steps.
    assert plugin.deepspeed_config["train_micro_batch_size_per_gpu"] == "auto"
    assert plugin.deepspeed_config["gradient_accumulation_steps"] == "auto"


def _deepspeed_accelerator(gradient_clipping: object) -> SimpleNamespace:
    """The two attributes `check_deepspeed` reads from an `Accelerator` launched with DeepSpeed (not installed)."""
    plugin = SimpleNamespace(deepspeed_config={"gradient_clipping": gradient_clipping})
    return SimpleNamespace(
        distributed_type=DistributedType.DEEPSPEED, state=SimpleNamespace(deepspeed_plugin=plugin)
    )


def test_deepspeed_check_keeps_logit_scale_as_a_buffer_and_matches_clipping(tiny_model) -> None:
    before = tiny_model.state_dict()
    tiny_model.logit_scale.requires_grad_(False)
    check_deepspeed(_deepspeed_accelerator(0.0), tiny_model, max_grad_norm=None)
    assert all(
        parameter.ndim > 0 for parameter in tiny_model.parameters()
    )  # DeepSpeed can broadcast them all
    assert "logit_scale" in dict(tiny_model.named_buffers())
    after = tiny_model.state_dict()
    assert after.keys() == before.keys() and torch.equal(after["logit_scale"], before["logit_scale"])
    check_deepspeed(_deepspeed_accelerator(1.0), tiny_model, max_grad_norm=1.0)
    for clipping, max_grad_norm in (("auto", None), (0.0, 1.0), (1.0, None)):
        with pytest.raises(ValueError, match="gradient_clipping"):
            check_deepspeed(_deepspeed_accelerator(clipping), tiny_model, max_grad_norm)


def test_deepspeed_check_refuses_a_trainable_0d_parameter(tiny_model) -> None:
    with pytest.raises(ValueError, match="trainable 0-d parameter 'logit_scale'"):
        check_deepspeed(_deepspeed_accelerator(0.0), tiny_model, max_grad_norm=None)


@pytest.mark.parametrize("zero3", [False, True])
def test_a_deepspeed_checkpoint_is_recognised_complete(zero3: bool, tmp_path: Path) -> None:
    """The layouts `save_state` writes under DeepSpeed ZeRO-2 / ZeRO-3 (seen with DeepSpeed 0.19.8): `latest` finds
    them, and a missing optimizer partition is named."""
    folder = tmp_path / "checkpoints" / "step_6"
    files = (
        (DEEPSPEED_ZERO3_MODEL_STATES, *DEEPSPEED_CHECKPOINT_FILES[1:])
        if zero3
        else DEEPSPEED_CHECKPOINT_FILES
    )
    for name in (*files, "latest"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"x")
    (folder / STATE_FILE).write_text(json.dumps(asdict(TrainingLoopState(global_step=6))))
    assert checkpoint_files(str(folder)) == files
    assert checkpoint_problem(str(folder)) is None
    assert latest_checkpoint(str(tmp_path)) == str(folder)
    (folder / "pytorch_model" / "zero_pp_rank_0_mp_rank_00_optim_states.pt").unlink()
    assert checkpoint_problem(str(folder)).endswith("zero_pp_rank_0_mp_rank_00_optim_states.pt is missing")


def test_models_are_built_whole_under_an_accelerate_zero3_launch() -> None:
    """accelerate registers its ZeRO-3 config with transformers; the scripts' models are still built unpartitioned,
    with the initial weights of a run without DeepSpeed."""
    from accelerate.utils.deepspeed import HfDeepSpeedConfig
    from transformers.integrations import deepspeed as hf_deepspeed

    torch.manual_seed(0)
    expected = load_model_and_processor(None, "eva02at-tiny")[0].state_dict()
    registered = HfDeepSpeedConfig({"zero_optimization": {"stage": 3}})
    hf_deepspeed.set_hf_deepspeed_config(registered)
    try:
        assert hf_deepspeed.is_deepspeed_zero3_enabled()
        with whole_weights():
            assert not hf_deepspeed.is_deepspeed_zero3_enabled()
            torch.manual_seed(0)
            found = load_model_and_processor(None, "eva02at-tiny")[0].state_dict()
        assert hf_deepspeed.is_deepspeed_zero3_enabled()  # restored for accelerator.prepare
    finally:
        hf_deepspeed.unset_hf_deepspeed_config()
    assert found.keys() == expected.keys()
    assert all(torch.equal(found[name], expected[name]) for name in expected)
