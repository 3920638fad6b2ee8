"""Beyond JupyterLab: the dashboard as a Voila app (what `make dashboard` serves) and in
Notebook 7, each in Debian's chromium. A click on a unit must round-trip through the
kernel: the unit's settings form appears."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from ._servers import ROOT, SERVER_ARGS, serve, shot

TIMEOUT_MS = 90_000
UNITS = ("DEMO/SOURCE", "DEMO/FILTER", "DEMO/DETECTOR", "DEMO/SINK")


@pytest.fixture
def notebook_dir(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "notebooks" / "dashboard.ipynb", tmp_path / "dashboard.ipynb")
    return tmp_path


def _click_round_trip(page: Any, errors: list[str], name: str) -> None:
    for unit in UNITS:
        page.locator(f'.ezg-unit[data-address="{unit}"]').last.wait_for(timeout=TIMEOUT_MS)
    page.locator('.ezg-unit[data-address="DEMO/FILTER"] .ezg-card').last.click()
    page.locator(".ezlab-field-cutoff_hz").last.wait_for(timeout=TIMEOUT_MS)
    # The metrics table of the selected unit fills in too (a poll later).
    page.locator("table.ezmsg-lab-metrics").last.wait_for(timeout=TIMEOUT_MS)
    shot(page, name)
    assert not [e for e in errors if "ezg" in e or "graph" in e.lower()], errors


def test_voila_serves_the_dashboard_with_the_demo_units(notebook_dir: Path, browser: Any) -> None:
    args = ["voila", "dashboard.ipynb", "--no-browser", "--Voila.ip=127.0.0.1"]
    with serve(args, notebook_dir, ready="/") as base:
        context = browser.new_context(viewport={"width": 1280, "height": 1400})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            page.goto(base, timeout=TIMEOUT_MS)
            _click_round_trip(page, errors, "voila_dashboard")
            # Voila shows outputs only: no code cell of the notebook is on the page.
            assert page.locator("text=DemoPipeline(), name=").count() == 0
        finally:
            context.close()


def test_notebook7_renders_the_dashboard_and_a_click_round_trips(
    notebook_dir: Path, browser: Any
) -> None:
    args = [
        "jupyter",
        "notebook",
        *SERVER_ARGS,
        "--JupyterNotebookApp.expose_app_in_browser=True",
        f"--ServerApp.root_dir={notebook_dir}",
    ]
    with serve(args, notebook_dir) as base:
        context = browser.new_context(viewport={"width": 1280, "height": 1600})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            page.goto(f"{base}/notebooks/dashboard.ipynb", timeout=TIMEOUT_MS)
            page.wait_for_function("() => !!window.jupyterapp", timeout=TIMEOUT_MS)
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=TIMEOUT_MS)
            page.wait_for_function(
                "() => window.jupyterapp.commands.isEnabled('notebook:run-all-cells')",
                timeout=TIMEOUT_MS,
            )
            page.wait_for_function(
                "() => window.jupyterapp.shell.currentWidget?.sessionContext?.session"
                "?.kernel?.status === 'idle'",
                timeout=TIMEOUT_MS,
            )
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            _click_round_trip(page, errors, "notebook7_dashboard")
        finally:
            context.close()
