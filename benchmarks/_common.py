"""Shared reporting: our figure beside raw ezmsg's, measured in the same run, as a ratio.

One *run* of a benchmark module returns a list of :class:`Result` (one value per figure).
``python -m benchmarks`` repeats each module ``--runs`` times and folds the results into
:class:`Figure` objects: the median of the runs and their spread (min–max over the runs),
the raw figure from the same runs, and the ratio computed per run pair (ours / raw of the
same run, so a machine that is slow for a while slows both), then its median and spread.
A target is MET only when every run met it. :func:`write_results` writes one JSON file
per invocation (timestamp, machine, git commit) that ``python -m benchmarks.compare``
compares with another.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import socket
import statistics
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
RESULTS_DIR = HERE / "results"

# Set by ``python -m benchmarks --quick``: modules may then measure less (fewer changes,
# shorter windows) for a rough check. Read it as ``_common.QUICK`` at call time.
QUICK = False


@dataclass
class Result:
    """One figure from one run: ours, raw ezmsg's from the same run (or None), the target
    and whether this run met it. ``better`` is "lower" or "higher" (default: "higher"
    for a rate, a unit ending in ``/s``, or a percentage; "lower" otherwise)."""

    name: str
    ours: float
    raw: float | None
    unit: str
    target: str
    met: bool | None
    note: str = ""
    better: str = ""

    def __post_init__(self) -> None:
        if not self.better:
            self.better = "higher" if self.unit.endswith("/s") or self.unit == "%" else "lower"

    @property
    def ratio(self) -> float | None:
        if self.raw in (None, 0):
            return None
        return self.ours / self.raw


def median(values: list[float]) -> float:
    return statistics.median(values)


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18] if len(values) >= 20 else max(values)


def _g(value: float | None, width: int = 10) -> str:
    return f"{value:{width}.4g}" if value is not None else f"{'-':>{width}}"


def report(result: Result) -> Result:
    """Print one run's figure (one line) and return it."""
    met = {True: "met", False: "MISSED", None: ""}[result.met]
    ratio = f"{result.ratio:.3f}" if result.ratio is not None else "-"
    print(
        f"  {result.name:<46} lab {_g(result.ours)} {result.unit:<9} raw {_g(result.raw)}"
        f"  ratio {ratio:>6}  {met}" + (f"  ({result.note})" if result.note else ""),
        flush=True,
    )
    return result


@dataclass
class Spread:
    """Median and min–max of one quantity over the runs."""

    median: float
    low: float
    high: float
    values: list[float]

    @classmethod
    def of(cls, values: list[float]) -> Spread | None:
        if not values:
            return None
        return cls(statistics.median(values), min(values), max(values), list(values))

    def show(self, fmt: str = ".4g") -> str:
        return f"{self.median:{fmt}} [{self.low:{fmt}}–{self.high:{fmt}}]"


@dataclass
class Figure:
    """One figure over every run of an invocation."""

    name: str
    unit: str
    target: str
    better: str
    ours: list[float] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)
    ratio: list[float] = field(default_factory=list)
    met: list[bool] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, r: Result) -> None:
        self.ours.append(float(r.ours))
        if r.raw is not None:
            self.raw.append(float(r.raw))
        if r.ratio is not None:
            self.ratio.append(float(r.ratio))
        if r.met is not None:
            self.met.append(bool(r.met))
        if r.note:
            self.notes.append(r.note)

    @property
    def status(self) -> str:
        if not self.met:
            return ""
        hits = sum(self.met)
        return (
            f"MET {hits}/{len(self.met)}"
            if hits == len(self.met)
            else (f"MISSED {len(self.met) - hits}/{len(self.met)}")
        )

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = asdict(self)
        for key in ("ours", "raw", "ratio"):
            s = Spread.of(getattr(self, key))
            out[f"{key}_median"] = s.median if s else None
            out[f"{key}_min"] = s.low if s else None
            out[f"{key}_max"] = s.high if s else None
        out["status"] = self.status
        return out


def fold(runs: list[list[Result]]) -> list[Figure]:
    """Results of every run, by figure name, in first-seen order."""
    figures: dict[str, Figure] = {}
    for results in runs:
        for r in results:
            fig = figures.setdefault(r.name, Figure(r.name, r.unit, r.target, r.better))
            fig.add(r)
    return list(figures.values())


def summary(figures: list[Figure], runs: int) -> None:
    """The table: median [min–max] over the runs, ours, raw, ratio, target, pass/miss."""
    print(
        f"\n  {'figure':<46} {'lab median [min–max]':>26} {'raw ezmsg':>26} "
        f"{'ratio':>22}  target / status   ({runs} runs, spread = min–max)"
    )
    for f in figures:
        ours, raw, ratio = Spread.of(f.ours), Spread.of(f.raw), Spread.of(f.ratio)
        print(
            f"  {f.name:<46} {ours.show() if ours else '-':>21} {f.unit:<4}"
            f" {raw.show() if raw else '-':>26} {ratio.show('.3f') if ratio else '-':>22}"
            f"  {f.target} {f.status}",
            flush=True,
        )


def git_commit() -> dict[str, Any]:
    """The commit (and branch, and whether tracked files differ) of this checkout."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=HERE, capture_output=True, text=True, timeout=10
        ).stdout.strip()

    try:
        return {
            "commit": git("rev-parse", "HEAD"),
            "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        }
    except Exception:  # no git here: the file still records the rest
        return {"commit": None, "branch": None, "dirty": None}


def machine() -> dict[str, Any]:
    try:
        import ezmsg.core as ez

        ezmsg_version = getattr(ez, "__version__", None)
    except Exception:  # benchmarks that do not need ezmsg still record the rest
        ezmsg_version = None
    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "ezmsg": ezmsg_version,
        "loadavg_at_start": load,
    }


def write_results(
    figures: list[Figure],
    runs: int,
    modules: list[str],
    directory: str | Path | None = None,
    git: dict[str, Any] | None = None,
) -> Path:
    """One JSON file for this invocation in ``directory`` (default benchmarks/results);
    ``git`` as :func:`git_commit` gave it when the runs started (default: now)."""
    directory = Path(directory) if directory is not None else RESULTS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    now = _dt.datetime.now(_dt.timezone.utc)
    path = directory / f"{now:%Y%m%dT%H%M%SZ}.json"
    doc = {
        "timestamp": now.isoformat(),
        "machine": machine(),
        "git": git if git is not None else git_commit(),
        "runs": runs,
        "quick": QUICK,
        "modules": modules,
        "spread": "min-max over the runs; ratio per run pair (ours/raw of the same run)",
        "figures": [f.as_json() for f in figures],
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def write_json(results: list[Result], path: str | Path | None) -> None:
    """One run's results of one module (a module run on its own with ``--json FILE``)."""
    if path is None:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([{**asdict(r), "ratio": r.ratio} for r in results], indent=2) + "\n")
