"""Run the performance suite (issue 9's benchmarks 1-4) in one command and collect the tables in one Markdown file.

Each benchmark runs as its own process, with the same device, precisions and SDPA kernel, and its tables go to
stdout and to `--output`. On a GPU (section 5 of RESULTS.md):

    python benchmarks/run_suite.py --device cuda --dtype fp32 bf16 --sdpa-backend flash --output gpu.md

`--smoke` runs every benchmark at the smallest size (tiny preset, 1-2 frames, one repeat) to check that the
suite works on a machine, in about a minute on two CPU cores; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

FULL = {
    "bench_vision_forward.py": ["--presets", "eva02at-tiny", "eva02at-b", "eva02at-l"],
    "bench_vs_timm.py": [],
    "bench_joint_attention.py": ["--frames", "4", "8", "16"],
    "bench_train_step.py": ["--frames", "4", "8", "16"],
}
SMOKE = {
    "bench_vision_forward.py": ["--presets", "eva02at-tiny", "--frames", "1", "2", "--batch-size", "1"],
    "bench_vs_timm.py": ["--batch-size", "1"],
    "bench_joint_attention.py": ["--preset", "eva02at-tiny", "--frames", "2"],
    "bench_train_step.py": ["--preset", "eva02at-tiny", "--frames", "1"],
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--device", default=None, help="passed to every benchmark (default: cuda if available)"
    )
    parser.add_argument(
        "--dtype", nargs="+", default=None, help="passed to every benchmark (default fp32 bf16)"
    )
    parser.add_argument("--sdpa-backend", default="auto", help="passed to every benchmark")
    parser.add_argument(
        "--only", nargs="+", choices=sorted(FULL), default=None, help="run these benchmarks only"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="smallest sizes, one repeat: checks the suite runs"
    )
    parser.add_argument("--output", type=Path, default=None, help="Markdown file to write the tables to")
    args = parser.parse_args()

    common = ["--sdpa-backend", args.sdpa_backend]
    if args.device:
        common += ["--device", args.device]
    if args.dtype:
        common += ["--dtype", *args.dtype]
    if args.smoke:
        common += ["--repeats", "1"]
    plan = SMOKE if args.smoke else FULL
    scripts = args.only or list(plan)

    report = [f"# EVA02-AT performance suite, {datetime.date.today().isoformat()}", ""]
    for script in scripts:
        command = [sys.executable, str(HERE / script), *common, *plan[script]]
        print(f"$ {' '.join(command[1:])}", flush=True)
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, cwd=HERE)
        sys.stdout.write(result.stdout)
        if result.returncode != 0:
            sys.stderr.write(result.stderr)
            raise SystemExit(f"{script} failed with exit status {result.returncode} (its stderr is above).")
        tables = [line for line in result.stdout.splitlines() if not line.startswith("{")]
        report += [f"## {script}", "", f"`{' '.join(command[2:])}` ({time.perf_counter() - start:.0f} s)", ""]
        report += [*tables, ""]
    if args.output:
        args.output.write_text("\n".join(report))
        print(f"\nWrote {args.output}")


if __name__ == "__main__":
    main()
