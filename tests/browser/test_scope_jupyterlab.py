"""The scope end to end in real JupyterLab: a notebook taps the demo filter and shows
``tap.scope()``; the canvas's pixels change while the demo runs, and pausing from the
widget stops the frames. Screenshots go to tests/artifacts/ for a person to look at."""

from __future__ import annotations

from typing import Any

import nbformat
import pytest

from ..conftest import wait_until
from ._servers import TIMEOUT_MS, jupyterlab
from .test_jupyterlab_e2e import _shot

CELLS = [
    "from ezmsg_lab import Lab\nfrom ezmsg_lab.demo import DemoPipeline\n"
    "lab = Lab()\ndemo = lab.launch(DemoPipeline(), name='DEMO')",
    # A pipeline the Lab launched: the tap samples in the unit process (no subscriber).
    "tap = lab.tap('DEMO/FILTER/OUTPUT_SIGNAL', window='5s')\n"
    "assert tap.inspect()['via'].startswith('sampled'), tap.inspect()\n"
    "scope = tap.scope(span=2.0)\nscope",
]


@pytest.fixture(scope="module")
def jupyterlab_scope(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("lab_scope")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(src) for src in CELLS]
    nbformat.write(nb, root / "scope.ipynb")
    with jupyterlab(root) as base:
        yield base


def _canvas(page: Any) -> str:
    return page.evaluate("() => document.querySelector('canvas.ezs-canvas').toDataURL()")


def _draws(page: Any) -> int:
    return int(page.get_attribute(".ezs-root", "data-draws") or 0)


def test_scope_pixels_change_while_the_demo_runs_and_pause_stops_them(
    jupyterlab_scope: str, browser: Any
) -> None:
    context = browser.new_context(viewport={"width": 1300, "height": 1100})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{jupyterlab_scope}/lab/tree/scope.ipynb", timeout=TIMEOUT_MS)
        page.wait_for_selector("#jp-main-statusbar >> text=Idle", timeout=TIMEOUT_MS)
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        page.wait_for_function(
            "() => Number(document.querySelector('.ezs-root')?.dataset.draws) >= 3",
            timeout=TIMEOUT_MS,
        )
        assert page.get_attribute(".ezs-root", "data-view") == "sweep"
        first = _canvas(page)
        page.wait_for_function(
            "d => document.querySelector('canvas.ezs-canvas').toDataURL() !== d",
            arg=first,
            timeout=TIMEOUT_MS,
        )
        page.locator(".ezs-root").screenshot(path=_artifact("scope_1_live"))
        _shot(page, "scope_1_page")

        page.click("button.ezs-pause")
        page.wait_for_function(
            "() => document.querySelector('.ezs-root').dataset.paused === 'true'",
            timeout=TIMEOUT_MS,
        )
        # A frame already sent may still land; after that, nothing new is drawn while
        # frames would otherwise come 20 times a second.
        settled = _draws(page)
        assert not wait_until(lambda: _draws(page) > settled + 2, 1.5)
        page.locator(".ezs-root").screenshot(path=_artifact("scope_2_paused"))
        page.click("button.ezs-pause")
        assert wait_until(lambda: _draws(page) > settled + 5, 30)
        assert not errors, errors
    finally:
        context.close()


def _artifact(name: str) -> str:
    from ._servers import ARTIFACTS

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return str(ARTIFACTS / f"{name}.png")
