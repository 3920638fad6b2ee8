"""Shared reporting: our figure beside raw ezmsg's, measured in the same run, as a ratio."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Result:
    name: str
    ours: float
    raw: float | None
    unit: str
    target: str
    met: bool | None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.raw in (None, 0):
            return None
        return self.ours / self.raw


def median(values: list[float]) -> float:
    return statistics.median(values)


def report(result: Result) -> Result:
    ratio = f"{result.ratio:7.3f}" if result.ratio is not None else "      -"
    raw = f"{result.raw:12.4g}" if result.raw is not None else "           -"
    met = {True: "MET", False: "MISSED", None: ""}[result.met]
    print(
        f"{result.name:<44} lab {result.ours:12.4g} {result.unit:<10} raw ezmsg {raw}"
        f"  ratio {ratio}  target {result.target:<12} {met}"
        + (f"  ({result.note})" if result.note else ""),
        flush=True,
    )
    return result


def write_json(results: list[Result], path: str | Path | None) -> None:
    if path is None:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([{**asdict(r), "ratio": r.ratio} for r in results], indent=2) + "\n")
