"""``make bench``: run every benchmark module (``benchmarks/bench_*.py``).

Each prints our figure beside raw ezmsg's, measured in the same run, as a ratio. With
``--json DIR`` each module also writes ``DIR/<module>.json``. Medians, not means: these
machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
from pathlib import Path

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", help="directory to write one JSON file per module")
    parser.add_argument("only", nargs="*", help="module names (default: all)")
    args = parser.parse_args()
    logging.getLogger("ezmsg").setLevel(logging.ERROR)
    names = sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if m.name.startswith("bench_"))
    for name in args.only or names:
        module = importlib.import_module(f"benchmarks.{name}")
        out = None if args.json is None else str(Path(args.json) / f"{name}.json")
        module.main(out)
        print()


if __name__ == "__main__":
    main()
