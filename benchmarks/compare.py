"""Compare two benchmark results files: what got slower beyond the spread.

``python -m benchmarks.compare [OLD NEW]`` (default: the two latest files in
``benchmarks/results/``; ``make bench-compare``). A figure that has a raw ezmsg figure is
compared by its ratio (ours / raw of the same run), which cancels most of a shared
machine's ups and downs; one without, by its own value. It counts as *worse* only when
the two spreads (min–max over the runs) do not overlap in the worse direction; *better*
likewise; anything else is *same* (within the noise). Exits 1 if anything got worse.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ._common import RESULTS_DIR


def latest_two(directory: Path = RESULTS_DIR) -> tuple[Path, Path]:
    files = sorted(directory.glob("*.json"))
    if len(files) < 2:
        raise SystemExit(
            f"need two results files in {directory} to compare, found {len(files)}; "
            "run `make bench` (or python -m benchmarks) twice, or name the files."
        )
    return files[-2], files[-1]


def _load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SystemExit(f"no results file {path}; see {RESULTS_DIR} for the ones there are")
    doc = json.loads(path.read_text())
    if not isinstance(doc, dict) or "figures" not in doc:
        raise SystemExit(f"{path} is not a results file of python -m benchmarks")
    return doc


def verdict(old: dict[str, Any], new: dict[str, Any]) -> tuple[str, str, str]:
    """(worse|better|same, what was compared, how it looks) for one figure in both."""
    key = "ratio" if old.get("ratio_median") is not None and new.get("ratio_median") else "ours"
    lo_o, hi_o = old[f"{key}_min"], old[f"{key}_max"]
    lo_n, hi_n = new[f"{key}_min"], new[f"{key}_max"]
    higher_better = new.get("better", "lower") == "higher"
    fmt = ".3f" if key == "ratio" else ".4g"
    shown = (
        f"{old[f'{key}_median']:{fmt}} [{lo_o:{fmt}}–{hi_o:{fmt}}] -> "
        f"{new[f'{key}_median']:{fmt}} [{lo_n:{fmt}}–{hi_n:{fmt}}]"
    )
    if higher_better:
        worse, better = hi_n < lo_o, lo_n > hi_o
    else:
        worse, better = lo_n > hi_o, hi_n < lo_o
    return ("worse" if worse else "better" if better else "same"), key, shown


def compare(old_path: Path, new_path: Path) -> int:
    old_doc, new_doc = _load(old_path), _load(new_path)
    print(
        f"old: {old_path.name}  commit {(old_doc['git'].get('commit') or '?')[:10]}"
        f"  {old_doc['runs']} runs  on {old_doc['machine'].get('hostname')}"
    )
    print(
        f"new: {new_path.name}  commit {(new_doc['git'].get('commit') or '?')[:10]}"
        f"  {new_doc['runs']} runs  on {new_doc['machine'].get('hostname')}"
    )
    if old_doc["machine"].get("hostname") != new_doc["machine"].get("hostname"):
        print("  (different machines: compare ratios, not figures)")
    old = {f["name"]: f for f in old_doc["figures"]}
    worse = 0
    for fig in new_doc["figures"]:
        before = old.get(fig["name"])
        if before is None:
            print(f"  new     {fig['name']}")
            continue
        what, key, shown = verdict(before, fig)
        worse += what == "worse"
        label = {"worse": "WORSE", "better": "better", "same": "same"}[what]
        unit = "" if key == "ratio" else f" {fig['unit']}"
        print(f"  {label:<7} {fig['name']:<46} {key:<5} {shown}{unit}")
    for name in sorted(set(old) - {f["name"] for f in new_doc["figures"]}):
        print(f"  gone    {name}")
    print(f"{worse} figure(s) worse beyond the spread (min–max over the runs)")
    return 1 if worse else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", nargs="*", help="OLD NEW (default: the two latest)")
    args = parser.parse_args()
    if len(args.files) not in (0, 2):
        parser.error("give two files (OLD NEW) or none")
    old, new = (Path(f) for f in args.files) if args.files else latest_two()
    sys.exit(compare(old, new))


if __name__ == "__main__":
    main()
