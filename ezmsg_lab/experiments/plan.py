"""What a sweep runs and in which order (pure)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import LabError

ORDERS = ("random", "interleaved", "grid")


@dataclass(frozen=True)
class Conditions:
    """How each run of an experiment is measured: ``settle`` seconds after setting the
    point, then a ``measure``-second window over ``topics`` (None: the pipeline's);
    points set live or by ``relaunch``; ``trace`` None (latency when tracing is on),
    True (trace during the experiment) or False (rates only)."""

    settle: float
    measure: float
    topics: tuple[str, ...] | None = None
    relaunch: bool = False
    trace: bool | None = None

    @classmethod
    def make(
        cls,
        settle: float,
        measure: float,
        topics: str | Iterable[str] | None = None,
        relaunch: bool = False,
        trace: bool | None = None,
    ) -> Conditions:
        check_times(settle=settle, measure=measure)
        chosen = None if topics is None else (topics,) if isinstance(topics, str) else tuple(topics)
        return cls(float(settle), float(measure), chosen, bool(relaunch), trace)


def check_times(**seconds: float) -> None:
    """settle/measure/window must be positive (settle may be 0)."""
    for name, value in seconds.items():
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok or value < 0 or (name != "settle" and value == 0):
            raise LabError(f"{name}={value!r} must be a number of seconds (> 0).")


def grid(spec: Mapping[str, Iterable[Any]]) -> list[dict[str, Any]]:
    """Every combination of the values of each field, the first field varying slowest.

    >>> grid({"a": [1, 2], "b": ["x"]})
    [{'a': 1, 'b': 'x'}, {'a': 2, 'b': 'x'}]
    """
    if not isinstance(spec, Mapping) or not spec:
        raise LabError(
            f"a sweep needs {{field: values}}, e.g. {{'cutoff_hz': [10, 20, 40]}}; got {spec!r}"
        )
    fields = list(spec)
    values = []
    for f in fields:
        v = spec[f]
        if isinstance(v, (str, bytes)) or not isinstance(v, Iterable):
            raise LabError(
                f"the values of {f!r} must be a list (e.g. [10, 20, 40]), got {v!r}; "
                "wrap a single value in a list."
            )
        v = list(v)
        if not v:
            raise LabError(f"no values given for {f!r}")
        values.append(v)
    return [dict(zip(fields, combo, strict=True)) for combo in itertools.product(*values)]


def schedule(
    n_points: int, repeats: int, order: str, seed: int | None = None
) -> list[tuple[int, int]]:
    """The runs as (point index, repeat), in the order they are measured.

    ``"random"``: each repeat is a round over every point, shuffled anew (blocks against
    drift); ``"interleaved"``: rounds in grid order; ``"grid"``: each point's repeats back
    to back.
    """
    if order not in ORDERS:
        raise LabError(f"order={order!r} is not one of {ORDERS}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise LabError(f"repeats={repeats!r} must be a whole number >= 1")
    if order == "grid":
        return [(p, r) for p in range(n_points) for r in range(repeats)]
    rng = random.Random(seed)
    runs: list[tuple[int, int]] = []
    for r in range(repeats):
        points = list(range(n_points))
        if order == "random":
            rng.shuffle(points)
        runs.extend((p, r) for p in points)
    return runs
