"""Expectations: assert a rate or a latency over a measured window (pure judging)."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from ..errors import LabError
from .stats import LATENCY_STATS, RATE


class ExpectationError(LabError, AssertionError):
    """A measured figure missed its expectation (:meth:`Lab.expect_rate`,
    :meth:`Lab.expect_latency`). An ``AssertionError``, so pytest reports it as a failed
    test; the message has the figures and the window and counts they rest on.

    Attributes
    ----------
    topic : str
    measured : dict
        The figures measured (``{"rate_hz": 98.2}``, ``{"p95_ms": 3.1, ...}``).
    n : int
        Messages (rate) or trace samples (latency) they rest on.
    window : float
        Seconds measured.
    """

    def __init__(
        self, message: str, *, topic: str, measured: Mapping[str, float], n: int, window: float
    ) -> None:
        super().__init__(message)
        self.topic, self.measured, self.n, self.window = topic, dict(measured), n, window


def _known(rows: pd.DataFrame, topic: str, what: str, window: float) -> None:
    if rows.empty:
        known = sorted(set(rows.attrs.get("topics", [])))
        raise ExpectationError(
            f"{topic}: no {what} measured in the {window:g} s window. Is the topic right "
            f"(measured topics: {known}) and the pipeline running"
            + (", with tracing on (lab.trace(), or trace=True)?" if what != "rate" else "?"),
            topic=topic,
            measured={},
            n=0,
            window=window,
        )


def judge_rate(rows: pd.DataFrame, topic: str, hz: float, tol: float, window: float) -> float:
    """The measured rate if it is within ``hz * (1 +- tol)``; else raise."""
    sel = rows[(rows["topic"] == topic) & (rows["metric"] == RATE)]
    _known(sel, topic, "rate", window)
    rate, n = float(sel["value"].iloc[0]), int(sel["n"].iloc[0])
    lo, hi = hz * (1 - tol), hz * (1 + tol)
    if not lo <= rate <= hi:
        raise ExpectationError(
            f"{topic}: rate {rate:.4g} Hz, expected {hz:g} Hz +- {tol:.0%} "
            f"({lo:.4g}..{hi:.4g}); measured over {window:g} s from {n} messages.",
            topic=topic,
            measured={RATE: rate},
            n=n,
            window=window,
        )
    return rate


def judge_latency(
    rows: pd.DataFrame,
    topic: str,
    limits: Mapping[str, float],
    source: str,
    window: float,
) -> dict[str, float]:
    """The measured figures if each is at most its limit (``{"p95_ms": 5.0}``); else
    raise naming every figure over its limit."""
    bad_keys = sorted(set(limits) - set(LATENCY_STATS))
    if not limits or bad_keys:
        raise LabError(
            f"expect_latency() takes limits among {LATENCY_STATS}, e.g. p95_ms=5.0; got "
            f"{sorted(limits)}"
        )
    sel = rows[(rows["topic"] == topic) & (rows["source"] == source)]
    _known(sel, topic, f"{source} latency", window)
    measured = {m: float(v) for m, v in zip(sel["metric"], sel["value"], strict=True)}
    n = int(sel["n"].iloc[0])
    over = [
        f"{k} {measured[k]:.4g} ms > {lim:g} ms" for k, lim in limits.items() if measured[k] > lim
    ]
    if over:
        figures = ", ".join(f"{k} {v:.4g}" for k, v in measured.items())
        raise ExpectationError(
            f"{topic} ({source}): {'; '.join(over)}. Measured over {window:g} s from {n} "
            f"trace samples ({figures} ms).",
            topic=topic,
            measured=measured,
            n=n,
            window=window,
        )
    return measured
