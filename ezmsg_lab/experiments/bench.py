"""What an experiment needs from a Lab: the bench it runs on.

The experiments service implements it with the Lab's settings, pipelines, profiling and
traces; the drivers in this package only call these methods, so they are tested with a
fake bench and no ezmsg.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import pandas as pd

Objective = Callable[[pd.DataFrame], float]


class Bench(Protocol):
    def experiment(
        self, address: str, points: list[dict[str, Any]], relaunch: bool, trace: bool | None
    ) -> contextlib.AbstractContextManager[None]:
        """Check every point (address, fields, values, live or by relaunch) before
        anything changes, raising a LabError naming the problem; then save what the
        points change and hold the measuring conditions (profiling polls fast enough,
        tracing when asked) until the block exits, which puts everything back, also on
        an exception or an interrupt."""
        ...

    def apply(self, address: str, point: Mapping[str, Any], relaunch: bool) -> None:
        """Put the unit at ``point`` (live, or by relaunching its pipeline)."""
        ...

    def measure(
        self, address: str, settle: float, measure: float, topics: Iterable[str] | None
    ) -> pd.DataFrame:
        """Wait ``settle``, measure ``measure`` seconds: the tidy window rows."""
        ...

    def progress(self, total: int, desc: str) -> Any:
        """A progress bar (tqdm) over ``total`` runs."""
        ...
