"""Sweeps: each point of a grid of settings, measured in its own window."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pandas as pd

from .bench import Bench
from .plan import Conditions, grid, schedule
from .stats import MEASURE_COLUMNS


def run_points(
    bench: Bench,
    address: str,
    points: list[dict[str, Any]],
    runs: list[tuple[int, int]],
    cond: Conditions,
    desc: str,
    label: Callable[[int, int], Mapping[str, Any]],
) -> pd.DataFrame:
    """Measure ``runs`` ((point index, repeat) pairs) and return their rows, each with
    ``label(point, repeat)``'s columns in front. Everything is put back on exit."""
    frames = []
    with bench.experiment(address, points, cond.relaunch, cond.trace):
        bar = bench.progress(len(runs), desc)
        try:
            for p, r in runs:
                bar.set_postfix_str(_short(points[p]), refresh=False)
                bench.apply(address, points[p], cond.relaunch)
                rows = bench.measure(address, cond.settle, cond.measure, cond.topics)
                for name, value in reversed(list(label(p, r).items())):
                    rows.insert(0, name, [value] * len(rows))
                frames.append(rows)
                bar.update(1)
        finally:
            bar.close()
    return pd.concat(frames, ignore_index=True)


def _short(point: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in point.items())


def run_sweep(
    bench: Bench,
    address: str,
    spec: Mapping[str, Iterable[Any]],
    cond: Conditions,
    *,
    repeats: int,
    order: str,
    seed: int | None = None,
) -> pd.DataFrame:
    """See :meth:`ExperimentsService.sweep`."""
    points = grid(spec)
    runs = schedule(len(points), repeats, order, seed)
    fields = list(points[0])

    def label(p: int, r: int) -> dict[str, Any]:
        return {**points[p], "point": p, "repeat": r}

    frame = run_points(bench, address, points, runs, cond, f"sweep {address}", label)
    frame = frame.sort_values(["point", "repeat", "topic", "metric"], kind="stable")
    frame = frame[[*fields, "point", "repeat", *MEASURE_COLUMNS]].reset_index(drop=True)
    frame.attrs["address"] = address
    frame.attrs["fields"] = fields
    return frame
