"""The performance suite runs end to end (`benchmarks/run_suite.py --smoke`) and its tables say what they should.

Timings are never asserted; what is checked is what the tables must hold whatever the machine: token counts,
parity with timm at the same weights, joint attention costing more FLOPs than per-frame attention, and gradient
checkpointing needing fewer activations.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from eva02at_hf import EVA02ATConfig

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def markdown_tables(text: str) -> dict[str, list[dict[str, str]]]:
    """{section (the `## ` heading): rows of its last table, as {column: cell}}."""
    tables: dict[str, list[dict[str, str]]] = {}
    section, header = "", None
    for line in text.splitlines():
        if line.startswith("## "):
            section, header = line[3:].strip(), None
        elif line.startswith("| "):
            cells = [cell.strip() for cell in line.strip("|").split(" | ")]
            if header is None:
                header, tables[section] = cells, []
            else:
                tables[section].append(dict(zip(header, cells, strict=True)))
        elif line.startswith("|-"):
            continue
        else:
            header = None
    return tables


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, str]]]:
    output = tmp_path_factory.mktemp("bench") / "suite.md"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run_suite.py"),
            "--smoke",
            "--device",
            "cpu",
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return markdown_tables(output.read_text())


def test_suite_runs_all_four_benchmarks(smoke_report: dict[str, list[dict[str, str]]]) -> None:
    assert set(smoke_report) == {
        "bench_vision_forward.py",
        "bench_vs_timm.py",
        "bench_joint_attention.py",
        "bench_train_step.py",
    }


def test_vision_forward_table_covers_eager_sdpa_fp32_bf16(
    smoke_report: dict[str, list[dict[str, str]]],
) -> None:
    vision = EVA02ATConfig.from_preset("eva02at-tiny").vision_config
    patches = (vision.image_size // vision.patch_size) ** 2
    rows = smoke_report["bench_vision_forward.py"]
    cases = {(row["frames"], row["attn"], row["dtype"]) for row in rows}
    assert cases == {(f, a, d) for f in ("1", "2") for a in ("eager", "sdpa") for d in ("fp32", "bf16")}
    for row in rows:
        assert int(row["tokens"]) == 1 + int(row["frames"]) * patches
        assert float(row["clips/s"]) > 0 and float(row["peak MiB"]) > 0
        assert row["kernel"] == ("-" if row["attn"] == "eager" else "auto")


def test_ours_matches_timm_bit_for_bit_at_fp32(smoke_report: dict[str, list[dict[str, str]]]) -> None:
    fp32 = next(row for row in smoke_report["bench_vs_timm.py"] if row["dtype"] == "fp32")
    assert float(fp32["max abs diff ours vs timm"]) == 0.0


def test_joint_attention_costs_more_flops_than_per_frame(
    smoke_report: dict[str, list[dict[str, str]]],
) -> None:
    # 2 frames: the attention matmuls see 2 x 16 + 1 tokens jointly instead of 16 + 1 per frame.
    for row in smoke_report["bench_joint_attention.py"]:
        assert float(row["FLOP ratio"]) > 1.0


def test_checkpointing_needs_fewer_activations(smoke_report: dict[str, list[dict[str, str]]]) -> None:
    fp32 = {
        row["checkpointing"]: row for row in smoke_report["bench_train_step.py"] if row["dtype"] == "fp32"
    }
    without = float(fp32["False"]["activation estimate MiB"])
    assert float(fp32["True"]["activation estimate MiB"]) < without
