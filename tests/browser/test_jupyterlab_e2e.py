"""End to end in real JupyterLab: the topology notebook, a click, a form, a live unit.

Opens notebooks/topology.ipynb in JupyterLab (Debian's chromium via Playwright), runs all
cells, waits for the demo's units in the graph, clicks DEMO/FILTER in the dashboard, changes
its kind in the settings form that appears, and checks from Python (a second Lab attached
to the notebook's GraphServer) that the unit process took the new value. Then reloads the
page: the graphs come back from the layouts the kernel kept. Screenshots go to
tests/artifacts/ for a person to look at.
"""

from __future__ import annotations

import os
import re
import shutil
from typing import Any

import pytest

from ezmsg_lab import Lab

from ..conftest import wait_until
from ._servers import ROOT, TIMEOUT_MS, shot
from ._servers import jupyterlab as lab_server


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("lab")
    shutil.copy(ROOT / "notebooks" / "topology.ipynb", root / "topology.ipynb")
    with lab_server(root) as base:
        yield base


def _shot(page: Any, name: str) -> None:
    shot(page, name)


def test_topology_notebook_click_a_unit_and_tune_it(jupyterlab: str, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 1500, "height": 2200})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{jupyterlab}/lab/tree/topology.ipynb", timeout=TIMEOUT_MS)
        page.wait_for_selector("#jp-main-statusbar >> text=Idle", timeout=TIMEOUT_MS)
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")

        # The demo's units appear in the dashboard's graph (the last graph on the page).
        filter_node = page.locator('.ezg-unit[data-address="DEMO/FILTER"]').last
        filter_node.wait_for(timeout=TIMEOUT_MS)
        for unit in ("DEMO/SOURCE", "DEMO/DETECTOR", "DEMO/SINK"):
            page.locator(f'.ezg-unit[data-address="{unit}"]').last.wait_for(timeout=TIMEOUT_MS)
        page.wait_for_selector("#jp-main-statusbar >> text=Idle", timeout=TIMEOUT_MS)
        # In JupyterLab (ESM from a blob URL) ELK runs in the widget's Web Worker.
        page.wait_for_function(
            "() => [...document.querySelectorAll('.ezg-root')].every(e => e.dataset.engine)",
            timeout=TIMEOUT_MS,
        )
        engines = page.eval_on_selector_all(".ezg-root", "els => els.map(e => e.dataset.engine)")
        assert engines and set(engines) == {"worker"}, engines
        _shot(page, "e2e_1_notebook_ran")

        # The Lab's address, from the `lab` cell's HTML output.
        text = page.locator(".jp-OutputArea-output:has-text('GraphServer at')").first.inner_text()
        address = re.search(r"127\.0\.0\.1:\d+", text).group(0)

        # Click the filter: its settings form appears in the dashboard.
        filter_node.locator(".ezg-card").click()
        field = page.locator(".ezlab-field-cutoff_hz").last
        field.wait_for(timeout=TIMEOUT_MS)
        field.scroll_into_view_if_needed()
        _shot(page, "e2e_2_unit_selected")

        # Change a value in the form as a user would: the filter's kind, lowpass -> highpass.
        kind = page.locator(".ezlab-field-kind").last
        kind.scroll_into_view_if_needed()
        kind.get_by_role("button", name="highpass").click()

        with Lab.attach(address) as observer:

            def applied() -> bool:
                frame = observer.settings("DEMO/FILTER").set_index("field")
                return frame.loc["kind", "value"] == "highpass"

            assert wait_until(applied, 30), observer.settings("DEMO/FILTER")
            history = observer.settings_history(unit="DEMO/FILTER")
            change = history[history["field"] == "kind"].iloc[-1]
            # Reported by the unit's own process when its INPUT_SETTINGS received it.
            assert change["event"] == "SETTINGS_UPDATED" and change["source_process"]
            assert (change["old"], change["new"]) == ("lowpass", "highpass")
            pids = set(observer.topology().units.set_index("address").loc[["DEMO/FILTER"], "pid"])
        kind.scroll_into_view_if_needed()
        _shot(page, "e2e_3_value_changed")
        assert pids and os.getpid() not in pids

        # A reload, with the kernel still running (the notebook saved first, as JupyterLab's
        # autosave does): the graphs come back drawn from the layouts the kernel kept
        # (GraphWidget.layouts), without running ELK again.
        page.evaluate("window.jupyterapp.commands.execute('docmanager:save')")
        page.wait_for_function(
            "() => !document.querySelector('.jp-mod-current.jp-mod-dirty')", timeout=TIMEOUT_MS
        )
        page.reload(timeout=TIMEOUT_MS)
        page.locator('.ezg-unit[data-address="DEMO/FILTER"]').last.wait_for(timeout=TIMEOUT_MS)
        page.wait_for_function(
            "() => [...document.querySelectorAll('.ezg-root')].every(e => e.dataset.cached)",
            timeout=TIMEOUT_MS,
        )
        cached = page.eval_on_selector_all(".ezg-root", "els => els.map(e => e.dataset.cached)")
        offered = page.eval_on_selector_all(
            ".ezg-root", "els => els.map(e => [e.dataset.keptKeys, e.dataset.layoutKey])"
        )
        assert cached and set(cached) == {"kernel"}, (cached, offered)
        _shot(page, "e2e_4_reloaded")
        assert not [e for e in errors if "ezg" in e or "graph" in e.lower()], errors
    finally:
        context.close()
