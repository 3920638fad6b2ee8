"""Hostile and careless input to every public entry that takes it, against a live Lab
running the demo (hypothesis).

Each entry is one function registered with :func:`entry`: it gets the Lab and one drawn
value and makes the call. The shared check around it: the call returns or raises an
exception from the Lab's hierarchy (``LabError``; ``TypeError``/``ValueError`` where
Python's convention asks for them, see errors.py), within its timeout, and a rejected
call leaves every unit's settings as they were. To fuzz a new entry (sweeps,
recordings), add one function.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ezmsg_lab import Lab, LabError, load
from ezmsg_lab.demo import DemoPipeline

pytestmark = [
    pytest.mark.integration,
    pytest.mark.heavy,
    pytest.mark.filterwarnings("ignore:Attaching to the GraphServer:UserWarning"),
]

CALL_TIMEOUT_S = 2.0
BOUND_S = CALL_TIMEOUT_S + 4.0  # its timeout, and a margin for a loaded machine
ALLOWED = (LabError, TypeError, ValueError)

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.binary(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.tuples(st.text(max_size=10), st.integers()),
)
names = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["DEMO", "DEMO/", "/DEMO", "DEMO//FILTER", "DEMO/FILTER/", "démo", "\x00"]),
    st.builds(lambda a, b: f"{a}/{b}", st.text(max_size=10), st.text(max_size=10)),
)


@dataclass
class Entry:
    name: str
    strategy: st.SearchStrategy[Any]
    call: Callable[[Lab, Any], Any]
    examples: int = 60


ENTRIES: list[Entry] = []


def entry(strategy: st.SearchStrategy[Any], examples: int = 60):
    def register(fn: Callable[[Lab, Any], Any]) -> Callable[[Lab, Any], Any]:
        ENTRIES.append(Entry(fn.__name__, strategy, fn, examples))
        return fn

    return register


# ---------------------------------------------------------------- the entries
@entry(st.one_of(junk, st.builds(lambda h, p: f"{h}:{p}", st.text(max_size=20), junk)))
def attach_address(lab: Lab, value: Any) -> None:
    other = Lab.attach(value, timeout=0.5)
    other.close()


@entry(st.one_of(names, junk))
def settings_unit(lab: Lab, value: Any) -> None:
    lab.settings(value)


@entry(st.one_of(names, junk))
def set_unit(lab: Lab, value: Any) -> None:
    lab.set(value, cutoff_hz=30.0, timeout=CALL_TIMEOUT_S, watch=False)


@entry(st.one_of(names, junk))
def set_field_name(lab: Lab, value: Any) -> None:
    lab.set("DEMO/FILTER", {value: 1.0}, timeout=CALL_TIMEOUT_S, watch=False)


@entry(junk, examples=100)
def set_value(lab: Lab, value: Any) -> None:
    lab.set("DEMO/FILTER", cutoff_hz=value, timeout=CALL_TIMEOUT_S, watch=False)


@entry(st.one_of(names, junk))
def settings_history_unit(lab: Lab, value: Any) -> None:
    lab.settings_history(value)


@entry(st.one_of(names, junk))
def tap_topic(lab: Lab, value: Any) -> None:
    lab.tap(value, timeout=CALL_TIMEOUT_S).close()


@entry(st.one_of(junk, st.sampled_from(["10s", "0s", "-1s", "1e9s", "5 ms", "abc", "inf"])))
def tap_window(lab: Lab, value: Any) -> None:
    lab.tap("DEMO/SOURCE/OUTPUT_SIGNAL", window=value, timeout=CALL_TIMEOUT_S).close()


@entry(st.one_of(names, junk), examples=25)
def launch_name(lab: Lab, value: Any) -> None:
    pipeline = lab.launch(DemoPipeline(), name=value, start_timeout=20)
    pipeline.stop()


@entry(st.one_of(names, junk), examples=30)
def sweep_address(lab: Lab, value: Any) -> None:
    lab.sweep(value, {"cutoff_hz": [30.0]}, settle=0.05, measure=0.1)


@entry(
    st.one_of(
        junk,
        st.dictionaries(st.one_of(names, st.just("cutoff_hz")), st.lists(junk, max_size=3)),
        st.dictionaries(st.just("cutoff_hz"), st.one_of(junk, st.lists(junk, max_size=3))),
    ),
    examples=40,
)
def sweep_spec(lab: Lab, value: Any) -> None:
    lab.sweep("DEMO/FILTER", value, settle=0.05, measure=0.1)


FUZZ_DIR = Path(tempfile.mkdtemp(prefix="ezlab-fuzz-"))
odd_paths = st.sampled_from(
    ["", ".", "/", "/proc/1/mem", "/nonexistent/dir/x.ezrec", "\x00", "a" * 5000, "../..", "x/"]
)


@entry(st.one_of(junk, odd_paths, st.text(max_size=30)), examples=40)
def record_path(lab: Lab, value: Any) -> None:
    # Relative names land in a scratch folder, never in the working tree.
    if isinstance(value, str) and value and not value.startswith("/"):
        value = str(FUZZ_DIR / value)
    lab.record(value, interval=0.1).stop()


DEMO_RECORDING = Path(__file__).parents[2] / "notebooks" / "data" / "demo.ezrec"


@st.composite
def damaged_recordings(draw: Any) -> bytes:
    data = bytearray(DEMO_RECORDING.read_bytes())
    kind = draw(st.sampled_from(["flip", "cut", "splice", "junk"]))
    if kind == "junk":
        return draw(st.binary(max_size=2000))
    if kind == "cut":
        return bytes(data[: draw(st.integers(0, len(data)))])
    if kind == "splice":
        at = draw(st.integers(0, len(data)))
        return bytes(data[:at] + draw(st.binary(min_size=1, max_size=64)) + data[at:])
    for _ in range(draw(st.integers(1, 8))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.integers(0, 255))
    return bytes(data)


@entry(damaged_recordings(), examples=80)
def recording_file(lab: Lab, value: bytes) -> None:
    path = FUZZ_DIR / "damaged.ezrec"
    path.write_bytes(value)
    rec = load(path)
    # Whatever loads must read: every table and every tapped array.
    for read in (rec.topology_events, rec.settings, rec.settings_history, rec.metrics):
        read()
    rec.trace_samples()
    rec.latency()
    rec.logs()
    rec.results()
    for topic in rec.taps:
        rec.tap_data(topic)


# ---------------------------------------------------------------- the shared check
@pytest.fixture(scope="module")
def demo_lab():
    with Lab(timeout=CALL_TIMEOUT_S) as lab:
        lab.launch(DemoPipeline(), name="DEMO")
        lab.wait_for_profile(20)
        yield lab


def _current(lab: Lab) -> dict[tuple[str, str], Any]:
    frame = lab.settings()
    return {
        (u, f): v for u, f, v in zip(frame["unit"], frame["field"], frame["value"], strict=True)
    }


def _same(a: dict, b: dict) -> bool:
    def eq(x: Any, y: Any) -> bool:
        if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
            return True
        return bool(x == y)

    return a.keys() == b.keys() and all(eq(a[k], b[k]) for k in a)


@pytest.mark.parametrize("spec", ENTRIES, ids=lambda e: e.name)
def test_fuzz_entry(spec: Entry, demo_lab: Lab, figures) -> None:
    counts = {"tried": 0, "rejected": 0, "accepted": 0}
    baseline = _current(demo_lab)

    @settings(
        max_examples=spec.examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(value=spec.strategy)
    def run(value: Any) -> None:
        counts["tried"] += 1
        before = _current(demo_lab)
        t0 = time.monotonic()
        try:
            spec.call(demo_lab, value)
        except ALLOWED as exc:
            counts["rejected"] += 1
            assert str(exc), f"{spec.name}({value!r}): {type(exc).__name__} with no message"
            after = _current(demo_lab)
            assert _same(before, after), f"{spec.name}({value!r}) was rejected but changed settings"
        else:
            counts["accepted"] += 1
        elapsed = time.monotonic() - t0
        assert elapsed < BOUND_S + (20 if spec.name == "launch_name" else 0), (
            f"{spec.name}({value!r}) took {elapsed:.1f} s"
        )
        assert not demo_lab.closed
        demo_lab.ping()

    try:
        run()
    finally:
        # Accepted values (a valid cutoff) are put back, so entries do not leak into
        # each other.
        if not _same(baseline, _current(demo_lab)) and baseline.get(("DEMO/FILTER", "cutoff_hz")):
            demo_lab.set(
                "DEMO/FILTER", cutoff_hz=baseline[("DEMO/FILTER", "cutoff_hz")], watch=False
            )
    figures(what=f"fuzz {spec.name}", **counts)
