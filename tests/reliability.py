"""``make reliability``: run the faults, a 2-minute load, the observers, the fuzzing and
the security checks; print one table of what was tried, how many times, what held, peak
memory and anything lost; then the throughput kept under observation (a benchmark figure,
not a test).

    python -m tests.reliability [--load-seconds 120] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = [
    "tests/integration/test_faults.py",
    "tests/integration/test_kernel_faults.py",
    "tests/integration/test_jupyterlab_kernel.py",
    "tests/integration/test_close_races.py::test_kernel_shutdown_with_three_pipelines_leaves_nothing_running",
    "tests/integration/test_start_methods.py::test_real_kernel_defaults_and_kill",
    "tests/integration/test_lifecycle.py::test_killed_server_gives_connection_error_within_timeout",
    "tests/integration/test_load.py",
    "tests/integration/test_observers.py",
    "tests/integration/test_fuzz.py",
    "tests/integration/test_security.py",
]
SHOWN = ("messages", "lost", "peak_rss_mb", "rss_growth_mb", "worst_rate_error_pct")


def _rows(path: Path) -> list[dict[str, object]]:
    rows = []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        figs = rec["figures"] or [{"what": rec["test"].split("::")[-1], "tried": 1}]
        for fig in figs:
            rows.append({"outcome": rec["outcome"], "seconds": rec["seconds"], **fig})
    return rows


def table(rows: list[dict[str, object]]) -> str:
    head = "| what was tried | times | held | peak MB | lost | notes |\n|---|---|---|---|---|---|"
    lines = [head]
    for r in rows:
        notes = ", ".join(
            f"{k}={v}"
            for k, v in r.items()
            if k not in {"what", "tried", "outcome", "seconds", "lost", "peak_rss_mb"}
        )
        lines.append(
            f"| {r.get('what')} | {r.get('tried', 1)} | "
            f"{'yes' if r['outcome'] == 'passed' else 'NO (' + str(r['outcome']) + ')'} | "
            f"{r.get('peak_rss_mb', '')} | {r.get('lost', '')} | {notes} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--load-seconds", type=float, default=120.0)
    parser.add_argument("--markdown", type=Path, default=None)
    parser.add_argument("--no-throughput", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results.jsonl"
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "EZMSG_LAB_RELIABILITY_JSON": str(results),
            "EZMSG_LAB_LOAD_S": str(args.load_seconds),
        }
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS],
            cwd=ROOT,
            env=env,
            check=False,
        )
        rows = _rows(results) if results.exists() else []
    machine = f"{platform.node()}, {os.cpu_count()} cores, {platform.python_version()}"
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = f"Reliability run of {stamp} on {machine}:\n\n{table(rows)}\n"
    if not args.no_throughput:
        sys.path.insert(0, str(ROOT))
        from benchmarks.bench_live_data import bench_throughput

        results_tp = bench_throughput()
        text += "\nThroughput kept under observation (benchmark, medians of 3):\n\n"
        for r in results_tp:
            text += f"- {r.name}: {(r.ratio or 0) * 100:.1f} % of unobserved ({r.note})\n"
    print("\n" + text)
    if args.markdown:
        args.markdown.write_text(text)
    return 0 if rows and all(r["outcome"] == "passed" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
