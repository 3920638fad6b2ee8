"""Every tour notebook in real JupyterLab, as a user runs it (issue 9).

For each notebook: open it, run all, then click every unit of its dashboard. A watcher in
the notebook's own kernel fails the test on any settings change the test did not make:
every send from a settings form is recorded (drawing a widget, rounding, following a value
or clicking a unit must send nothing), and the settings history must not move while the
test clicks. In the quickstart the Lab is closed by the notebook itself: clicking its
dashboard must do nothing harmful and print no traceback. Screenshots of every widget
output go to tests/artifacts/ (notebook_<name>_<cell>.png).
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any

import pytest

from ..conftest import wait_until
from ._servers import ROOT, TIMEOUT_MS, NotebookKernel, get, jupyterlab, shot

NOTEBOOKS = ["quickstart", "profiling", "tuning", "topology", "dashboard", "data"]
QUIET_S = 1.5  # how long "nothing happens" is watched for after each action

# Installed in the kernel before the notebook runs: every send a settings form makes that
# no cell's code asked for (a cell may act as a user, e.g. ``form.flush()`` in tuning).
WATCHER = """\
import json as _json
import traceback as _tb
import ezmsg_lab.model.settings_link as _link
_form_sends = []
def _from_a_cell():
    return any("ipykernel_" in f.filename or f.filename.startswith("<ipython-input")
               for f in _tb.extract_stack())
if not getattr(_link.FormLink.submit, "_watched", False):
    _submit = _link.FormLink.submit
    def _watched_submit(self, updates):
        if not _from_a_cell():
            _form_sends.append([self.address, {k: repr(v) for k, v in updates.items()}])
        return _submit(self, updates)
    _watched_submit._watched = True
    _link.FormLink.submit = _watched_submit
def _history_len():
    try:
        return len(lab._settings.history())
    except NameError:
        return 0
"""


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("notebooks")
    for name in NOTEBOOKS:
        shutil.copy(ROOT / "notebooks" / f"{name}.ipynb", root / f"{name}.ipynb")
    with jupyterlab(root) as base:
        yield base, root


def _quiet(kernel: NotebookKernel, history: int, what: str) -> None:
    """Fail on any form send or settings change within QUIET_S seconds."""

    def moved() -> bool:
        return bool(kernel.eval("_form_sends")) or kernel.eval("_history_len()") != history

    assert not wait_until(moved, QUIET_S, interval=0.25), (
        f"{what} changed settings: form sends {kernel.eval('_form_sends')}, "
        f"history {history} -> {kernel.eval('_history_len()')} rows"
    )


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_and_its_widgets_act_only_when_asked(
    name: str, lab_server: tuple[str, Path], browser: Any
) -> None:
    base, root = lab_server
    context = browser.new_context(viewport={"width": 1400, "height": 6000})
    page = context.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    kernel: NotebookKernel | None = None
    try:
        # ?reset: a clean workspace, not the notebooks earlier tests left open in hidden
        # tabs (their cells are in the page too).
        page.goto(f"{base}/lab/tree/{name}.ipynb?reset", timeout=TIMEOUT_MS)
        page.wait_for_selector("#jp-main-statusbar >> text=Idle", timeout=TIMEOUT_MS)
        page.evaluate("window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
        kernel = NotebookKernel(base, root, f"{name}.ipynb")
        kernel.run(WATCHER)
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        # Queued after run-all: returns once every cell has run.
        kernel.run("pass")
        errors = page.locator(
            '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]'
        )
        assert errors.count() == 0, errors.first.inner_text()
        graphs = page.locator(".ezg-root")
        forms = page.locator(".ezlab-field")
        assert wait_until(lambda: graphs.count() == 0 or page.locator(".ezg-unit").count() > 0, 30)
        history = kernel.eval("_history_len()")
        _quiet(kernel, history, f"Running all of {name}.ipynb (drawing its widgets)")
        assert kernel.eval("_form_sends") == [], "drawing the widgets sent settings"

        # Every widget output, as the user sees it.
        outputs = page.locator(".jp-Notebook .jp-Cell")
        for i in range(outputs.count()):
            area = outputs.nth(i).locator(".jp-OutputArea")
            # Visible ones only: a finished progress bar (tqdm, leave=False) stays in the
            # output as a hidden widget box (seen in CI, where a slower run shows one).
            if area.locator(":is(.ezg-root, .widget-box, .ezlab-field):visible").count():
                area.scroll_into_view_if_needed()
                shot(page, f"notebook_{name}_{i}", element=area)

        # Click every unit of the (last) dashboard.
        dashboards = page.locator(".jp-OutputArea:has(.ezg-root):has(.widget-vbox)")
        if dashboards.count():
            dash = dashboards.last
            closed = kernel.eval("bool(lab.closed)")
            addresses = [
                a
                for a in dash.locator(".ezg-unit[data-address]").evaluate_all(
                    "els => els.map(e => e.dataset.address)"
                )
                if a
            ]
            assert addresses, f"{name}: the dashboard shows no units"
            stderr = page.locator(
                '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
            )
            stderr_before = stderr.count()
            for address in dict.fromkeys(addresses):
                # The unit's group (its card and its text): a click anywhere on it.
                unit = dash.locator(f'.ezg-unit[data-address="{address}"]').last
                unit.scroll_into_view_if_needed()
                unit.click()
                if not closed:
                    assert wait_until(
                        lambda a=address: kernel.eval("dashboard.selected") == a, 15
                    ), f"{name}: clicking {address} did not select it"
                _quiet(kernel, history, f"{name}: clicking {address} in the dashboard")
            assert stderr.count() == stderr_before, stderr.last.inner_text()
            assert errors.count() == 0, errors.first.inner_text()
            if closed:
                assert dash.locator("text=Lab closed at").count() > 0
            dash.scroll_into_view_if_needed()
            shot(page, f"notebook_{name}_dashboard_clicked", element=dash)
        elif forms.count():
            _quiet(kernel, history, f"{name}: its forms")
        assert not [e for e in page_errors if "widget" in e.lower()], page_errors
    finally:
        if kernel is not None:
            # End this notebook's kernel (its Lab closes with it) before the next.
            with contextlib.suppress(OSError):
                get(f"{base}/api/sessions/{kernel.session_id}", method="DELETE")
            kernel.close()
        context.close()
