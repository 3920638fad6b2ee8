"""Load: 50 publishers (up to 1 kHz, 7,350 messages a second) in 5 processes, the Lab
polling at 10 Hz and tracing at its default budget.

``EZMSG_LAB_LOAD_S`` sets the duration: 30 s in ``make test``, 600 s in ``make soak``,
120 s in ``make reliability``. Asserted: the kernel's memory stays within the Lab's
configured bounds (RSS growth after the warm-up), no message is lost (sequence gaps
counted by a checker beside each group of publishers), every rate the Lab reports is
within 2 % of the publisher's own pacing, and the polls keep up.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from ..conftest import live_children, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.heavy]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DURATION_S = float(os.environ.get("EZMSG_LAB_LOAD_S", "30"))
# What the kernel may grow by beyond the Lab's configured stores (history and trace
# rings): interpreter and allocator slack, pandas frames being read.
RSS_SLACK_MB = 40.0


def test_fifty_publishers_polled_and_traced(tmp_path, figures):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.integration._load_session",
            str(DURATION_S),
            str(tmp_path / "counts"),
        ],
        capture_output=True,
        text=True,
        timeout=DURATION_S + 240,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    expected, rates, checker = out["expected"], out["rates"], out["checker"]
    errors = {topic: (rates.get(topic, math.nan) - rate) / rate for topic, rate in expected.items()}
    worst = max(errors.items(), key=lambda kv: abs(kv[1]) if kv[1] == kv[1] else math.inf)
    gaps = sum(c["gaps"] for c in checker.values())
    received = sum(c["received"] for c in checker.values())
    growth = out["rss_end_mb"] - out["rss_start_mb"]
    print(
        f"\nload {DURATION_S:g} s: {len(rates)} publishers, {received} messages checked, "
        f"{gaps} lost; worst rate error {worst[1] * 100:+.2f} % ({worst[0]}); "
        f"{out['polls']} polls ({out['slow_polls']} slower than the period); RSS "
        f"{out['rss_start_mb']:.0f} -> {out['rss_mid_mb']:.0f} -> {out['rss_end_mb']:.0f} MB "
        f"(peak {out['rss_peak_mb']:.0f}; stores bounded at {out['bounds_mb']:.1f} MB)"
    )
    figures(
        what=f"load: 50 publishers, 10 Hz polls, tracing, {DURATION_S:g} s",
        tried=len(expected),
        messages=received,
        lost=gaps,
        worst_rate_error_pct=round(worst[1] * 100, 2),
        polls=out["polls"],
        peak_rss_mb=round(out["rss_peak_mb"], 1),
        rss_growth_mb=round(growth, 1),
    )
    assert out["untrace_error"] is None, out["untrace_error"]
    assert len(checker) == len(expected) and received > 0
    assert gaps == 0, {k: c for k, c in checker.items() if c["gaps"]}
    assert set(out["statuses"]) == {"ok"}
    assert set(rates) == set(expected)
    assert all(abs(e) <= 0.02 for e in errors.values()), worst
    # Polls kept up: at least half the nominal count over the run.
    assert out["polls"] >= 0.5 * DURATION_S * 10, out["polls"]
    assert growth <= out["bounds_mb"] + RSS_SLACK_MB, growth
    assert wait_until(lambda: not live_children(), 10), live_children()
