"""``make bench-compare``: a figure counts as worse only beyond the spread of both runs."""

from __future__ import annotations

import json

from benchmarks._common import Result, fold, write_results
from benchmarks.compare import compare, verdict


def _figures(ours: list[float], raw: list[float] | None, unit: str = "ms"):
    runs = [
        [Result("f", o, None if raw is None else raw[i], unit, "<= raw", None)]
        for i, o in enumerate(ours)
    ]
    return fold(runs)


def test_ratio_is_per_run_pair_and_spread_is_min_max(tmp_path):
    (fig,) = _figures([1.0, 2.0, 3.0], [2.0, 2.0, 6.0])
    assert fig.ratio == [0.5, 1.0, 0.5]
    path = write_results([fig], 3, ["bench_x"], tmp_path)
    doc = json.loads(path.read_text())
    (row,) = doc["figures"]
    assert (row["ratio_median"], row["ratio_min"], row["ratio_max"]) == (0.5, 0.5, 1.0)
    assert (row["ours_median"], row["ours_min"], row["ours_max"]) == (2.0, 1.0, 3.0)
    assert {"timestamp", "machine", "git", "runs"} <= set(doc)


def test_verdict_by_ratio_and_direction(tmp_path):
    def row(ours, raw, unit="ms"):
        return _figures(ours, raw, unit)[0].as_json()

    base = row([1.0, 1.1, 1.2], [1.0, 1.0, 1.0])
    assert verdict(base, row([1.5, 1.6, 1.7], [1.0, 1.0, 1.0]))[0] == "worse"
    assert verdict(base, row([1.15, 1.5, 1.6], [1.0, 1.0, 1.0]))[0] == "same"  # overlaps
    assert verdict(base, row([0.5, 0.6, 0.7], [1.0, 1.0, 1.0]))[0] == "better"
    # a slower machine slows raw as much: the ratio is the same
    assert verdict(base, row([2.0, 2.2, 2.4], [2.0, 2.0, 2.0]))[0] == "same"
    # a rate: higher is better; no raw figure: the value itself
    rate = row([100.0, 110.0, 105.0], None, "msg/s")
    assert verdict(rate, row([50.0, 60.0, 55.0], None, "msg/s"))[:2] == ("worse", "ours")
    old = write_results(_figures([1.0, 1.1, 1.2], [1.0] * 3), 3, ["b"], tmp_path / "a")
    new = write_results(_figures([1.5, 1.6, 1.7], [1.0] * 3), 3, ["b"], tmp_path / "b")
    assert compare(old, new) == 1 and compare(old, old) == 0
