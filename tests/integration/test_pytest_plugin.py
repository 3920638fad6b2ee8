"""The pytest plugin: a user's own test file, using the plugin's ``lab`` fixture and the
expectations against a real demo pipeline, run by pytest in a subprocess."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import pytest
import tomllib

pytestmark = [pytest.mark.integration, pytest.mark.interpreter]
pytest_plugins = ["pytester"]

USER_TESTS = """
from ezmsg_lab import ExpectationError
from ezmsg_lab.demo import BusyPipeline

SOURCE = "BUSY/SOURCE/OUTPUT_SIGNAL"


def test_rate_holds(lab):
    lab.launch(BusyPipeline(), name="BUSY")
    lab.expect_rate(SOURCE, 50, tol=0.3, window=1.0)
    lab.expect_latency("BUSY/BUSY/INPUT", p95_ms=1000.0, window=0.5)
    try:
        lab.expect_rate(SOURCE, 500, tol=0.1, window=0.5)
    except ExpectationError as err:
        print("MISSED:", err)
    else:
        raise RuntimeError("500 Hz was not refused")


def test_nothing_runs(lab):
    lab.expect_rate(SOURCE, 50, window=0.5)


def test_lab_was_closed(lab):
    global LAB
    LAB = lab
    assert not lab.closed


def test_after(request):
    assert LAB.closed
"""


def _registered() -> bool:
    return any(ep.value == "ezmsg_lab.testing" for ep in entry_points(group="pytest11"))


def test_pyproject_registers_the_plugin():
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"]["pytest11"] == {"ezmsg_lab": "ezmsg_lab.testing"}


def test_users_test_their_pipelines_with_the_lab_fixture(pytester):
    pytester.makepyfile(test_user_pipeline=USER_TESTS)
    # An editable install made before the entry point existed does not list it: load the
    # plugin by name then (naming it as well when it is registered would load it twice).
    args = [] if _registered() else ["-p", "ezmsg_lab.testing"]
    result = pytester.runpytest_subprocess(*args, "-p", "no:cacheprovider", "-s", timeout=120)
    result.assert_outcomes(passed=3, failed=1)
    out = result.stdout.str()
    assert "MISSED:" in out and "expected 500 Hz" in out and "messages" in out
    assert "FAILED test_user_pipeline.py::test_nothing_runs" in out
    assert "ExpectationError" in out and "no rate measured" in out
