"""Settings forms in real JupyterLab (Debian's chromium via Playwright): they send only
what a user does (issue 9).

A notebook launches the demo, sets values off every slider grid from code (as a user's
``lab.set`` does), then shows the filter's, source's and detector's forms and a dashboard.
The test talks to the same kernel through its connection file, and a watcher on
``lab.settings_history()`` in that kernel fails the test on any settings change the test
did not make: after drawing the forms and clicking a unit in the dashboard (nothing may
change), after setting values from code while the forms are shown (the forms follow and
send nothing), and after a short drag of each slider (only that field changes, to a value
near the old one). Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import wait_until
from ._servers import ARTIFACTS, TIMEOUT_MS, NotebookKernel, jupyterlab

SETUP = """\
from ezmsg_lab import Lab
from ezmsg_lab.demo import DemoPipeline

lab = Lab()
demo = lab.launch(DemoPipeline(), name="DEMO")
# Values off every slider grid, as values set from code are.
lab.set("DEMO/FILTER", cutoff_hz=41.2345, watch=False)
lab.set("DEMO/SOURCE", {"tone.freq_hz": 5.1234, "noise_std": 0.2049}, watch=False)
lab.set("DEMO/DETECTOR", threshold=0.8123, watch=False)
_seq0 = int(lab.settings_history()["seq"].max())  # before any form exists
"""
CELLS = [
    SETUP,
    'lab.settings_form("DEMO/FILTER")',
    'lab.settings_form("DEMO/SOURCE")',
    'lab.settings_form("DEMO/DETECTOR")',
    "dashboard = lab.dashboard()\ndashboard",
]
# What the kernel-side watcher needs: changes after a seq, as plain JSON.
WATCHER = """\
import json as _json
def _changes_since(seq):
    h = lab.settings_history()
    h = h[h["seq"] > seq]
    return [[r.unit, r.field, repr(r.old), repr(r.new)] for r in h.itertuples()]
def _last_seq():
    h = lab.settings_history()
    return int(h["seq"].max()) if len(h) else 0
"""
FORMS = {"DEMO/FILTER": 1, "DEMO/SOURCE": 2, "DEMO/DETECTOR": 3}  # unit -> output index
QUIET_S = 3.0  # how long "nothing happens" is watched for after an action


def _notebook(path: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in CELLS]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("forms")
    _notebook(root / "forms.ipynb")
    with jupyterlab(root) as base:
        yield base, root


def _shot(locator: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    locator.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def _output(page: Any, index: int) -> Any:
    return page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-OutputArea")


def _quiet(kernel: NotebookKernel, seq: int, what: str) -> None:
    """Fail on any settings change after ``seq`` within QUIET_S seconds."""
    changed = wait_until(lambda: kernel.eval(f"_changes_since({seq})"), QUIET_S, interval=0.25)
    assert not changed, f"{what} changed settings: {kernel.eval(f'_changes_since({seq})')}"


def _box(form: Any, path: str) -> Any:
    return form.locator(f".ezlab-field-{path.replace('.', '__')} input").first


def test_forms_send_only_what_the_user_did(lab_server: tuple[str, Path], browser: Any) -> None:
    base, root = lab_server
    context = browser.new_context(viewport={"width": 1400, "height": 4000})
    page = context.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    kernel: NotebookKernel | None = None
    try:
        page.goto(f"{base}/lab/tree/forms.ipynb", timeout=TIMEOUT_MS)
        page.wait_for_selector("#jp-main-statusbar >> text=Idle", timeout=TIMEOUT_MS)
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        forms = {unit: _output(page, i) for unit, i in FORMS.items()}
        for form in forms.values():
            form.locator(".ezlab-field").first.wait_for(timeout=TIMEOUT_MS)
        kernel = NotebookKernel(base, root)  # queued after run-all: every cell has run
        kernel.run(WATCHER)
        seq = kernel.eval("_seq0")  # what drawing the forms sent is after it

        # 1. Drawing the forms, and a form drawn by clicking a unit in the dashboard.
        page.locator('.ezg-unit[data-address="DEMO/FILTER"] .ezg-card').last.click()
        dash_form = _output(page, 4).locator(".ezlab-field-cutoff_hz")
        dash_form.wait_for(timeout=TIMEOUT_MS)
        _quiet(kernel, seq, "Drawing the forms and clicking FILTER in the dashboard")
        for unit, form in forms.items():
            _shot(form, f"forms_1_drawn_{unit.split('/')[1].lower()}")
        assert _box(forms["DEMO/FILTER"], "cutoff_hz").input_value() == "41.2345"

        # 2. Values set from code while the forms are shown: they follow, send nothing.
        kernel.run(
            'lab.set("DEMO/FILTER", cutoff_hz=45.0, taps=63, watch=False)\n'
            'lab.set("DEMO/SOURCE", {"tone.freq_hz": 7.777}, watch=False)\n'
            'lab.set("DEMO/DETECTOR", threshold=1.2345, watch=False)\n'
        )
        made = kernel.eval(f"_changes_since({seq})")
        assert {(u, f) for u, f, _, _ in made} == {
            ("DEMO/FILTER", "cutoff_hz"),
            ("DEMO/FILTER", "taps"),
            ("DEMO/SOURCE", "tone.freq_hz"),
            ("DEMO/DETECTOR", "threshold"),
        }
        seq = kernel.eval("_last_seq()")
        shown = {
            ("DEMO/FILTER", "cutoff_hz"): "45",
            ("DEMO/FILTER", "taps"): "63",
            ("DEMO/SOURCE", "tone.freq_hz"): "7.777",
            ("DEMO/DETECTOR", "threshold"): "1.2345",
        }
        for (unit, path), text in shown.items():
            box = _box(forms[unit], path)
            shown = wait_until(lambda b=box, t=text: b.input_value() == t, 15)
            assert shown, (path, box.input_value())
        _quiet(kernel, seq, "Following values set from code")
        for unit, form in forms.items():
            _shot(form, f"forms_2_followed_{unit.split('/')[1].lower()}")

        # 3. A short drag of each slider: only that field changes, to a value near the old.
        dragged = []
        for unit, form in forms.items():
            fields = form.locator(".ezlab-field")
            for i in range(fields.count()):
                field = fields.nth(i)
                handle = field.locator(".noUi-handle")
                if handle.count() != 1 or field.locator(".noUi-target[disabled]").count():
                    continue  # no slider, or a disabled one (a None value)
                path = next(
                    c[len("ezlab-field-") :].replace("__", ".")
                    for c in (field.get_attribute("class") or "").split()
                    if c.startswith("ezlab-field-")
                )
                seq = kernel.eval("_last_seq()")
                old = kernel.eval(
                    f'lab.settings("{unit}").set_index("field").loc["{path}", "value"]'
                )
                field.scroll_into_view_if_needed()
                box = handle.bounding_box()
                x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
                page.mouse.move(x, y)
                page.mouse.down()
                page.mouse.move(x + 8, y, steps=4)
                page.mouse.move(x + 15, y, steps=4)
                page.mouse.up()
                assert wait_until(lambda s=seq: kernel.eval(f"_changes_since({s})"), 15), (
                    f"dragging {unit} {path} sent nothing"
                )
                _quiet(kernel, kernel.eval("_last_seq()"), f"After dragging {unit} {path}")
                changes = kernel.eval(f"_changes_since({seq})")
                assert [(u, f) for u, f, _, _ in changes] == [(unit, path)], changes
                new = kernel.eval(
                    f'lab.settings("{unit}").set_index("field").loc["{path}", "value"]'
                )
                assert new > old and new - old <= 0.5 * abs(old) + 1, (unit, path, old, new)
                dragged.append((unit, path, old, new))
        assert {(u, p) for u, p, _, _ in dragged} >= {
            ("DEMO/FILTER", "cutoff_hz"),
            ("DEMO/FILTER", "taps"),
            ("DEMO/SOURCE", "fs"),
            ("DEMO/SOURCE", "tone.freq_hz"),
            ("DEMO/DETECTOR", "threshold"),
        }, dragged
        (ARTIFACTS / "forms_drags.json").write_text(json.dumps(dragged, indent=1))
        for unit, form in forms.items():
            _shot(form, f"forms_3_dragged_{unit.split('/')[1].lower()}")
        assert not [e for e in page_errors if "widget" in e.lower()], page_errors
    finally:
        if kernel is not None:
            kernel.close()
        context.close()
