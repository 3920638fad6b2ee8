"""``make bench``: run every benchmark module (``benchmarks/bench_*.py``) ``--runs`` times.

Each run prints our figure beside raw ezmsg's, measured in the same run. At the end, one
table: per figure the median over the runs and the spread (min–max over the runs), raw
ezmsg's from the same runs, the ratio computed per run pair with its median and spread,
and the target with MET (every run met it) or MISSED k/N. These machines are shared and
noisy: a figure is only as good as its spread.

Results go to one JSON file per invocation in ``benchmarks/results/`` (timestamp, machine,
git commit); ``python -m benchmarks.compare`` (``make bench-compare``) compares two.

Examples: ``python -m benchmarks`` (all, 5 runs), ``python -m benchmarks bench_settings
--runs 7``, ``python -m benchmarks --quick --runs 3`` (shorter measurements).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import time
from pathlib import Path

from . import _common

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="runs of each module (default 5)")
    parser.add_argument(
        "--json",
        default=str(_common.RESULTS_DIR),
        help="directory for the results file (default benchmarks/results); '' for none",
    )
    parser.add_argument("--quick", action="store_true", help="shorter measurements per run")
    parser.add_argument("only", nargs="*", help="module names (default: all)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    _common.QUICK = args.quick
    logging.getLogger("ezmsg").setLevel(logging.ERROR)
    names = sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if m.name.startswith("bench_"))
    unknown = sorted(set(args.only) - set(names))
    if unknown:
        parser.error(f"no benchmark module {unknown}; there are {names}")
    modules = args.only or names
    runs: list[list[_common.Result]] = []
    git = _common.git_commit()  # what is measured: the code as it was when the runs began
    t_start = time.perf_counter()
    for name in modules:
        module = importlib.import_module(f"benchmarks.{name}")
        for k in range(args.runs):
            print(f"== {name}: run {k + 1}/{args.runs}", flush=True)
            t0 = time.perf_counter()
            runs.append(list(module.main(None)))
            print(f"   ({time.perf_counter() - t0:.0f} s)", flush=True)
    figures = _common.fold(runs)
    _common.summary(figures, args.runs)
    print(f"\n  {time.perf_counter() - t_start:.0f} s in all", flush=True)
    if args.json:
        path = _common.write_results(figures, args.runs, modules, args.json, git)
        print(f"  results: {path}")


if __name__ == "__main__":
    main()
