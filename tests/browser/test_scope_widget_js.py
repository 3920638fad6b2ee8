"""The scope widget's JavaScript in headless chromium with a fake anywidget model, fed
frames made by the kernel-side code (build_frame) from AxisArrays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ezmsg.util.messages.axisarray import AxisArray, CoordinateAxis, LinearAxis

from ezmsg_lab.model.scope_frame import build_frame
from ezmsg_lab.model.tap_buffer import TapItem

from ._harness import open_harness

SCOPE_JS = Path(__file__).parents[2] / "ezmsg_lab" / "widgets" / "static" / "scope.js"
TIMEOUT_MS = 15_000


@pytest.fixture
def scope_page(browser: Any) -> Any:
    context = browser.new_context(viewport={"width": 900, "height": 600})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    open_harness(pg, SCOPE_JS)
    yield pg
    context.close()
    assert not errors, errors


def frame_for(phase: float = 0.0, channels: int = 3, selected: list[int] | None = None) -> dict:
    fs, n = 1000.0, 100
    items = []
    for k in range(20):
        t = (k * n + np.arange(n)) / fs
        data = np.stack([np.sin(2 * np.pi * (c + 1) * t + phase) for c in range(channels)], 1)
        msg = AxisArray(
            data,
            ["time", "ch"],
            axes={
                "time": LinearAxis(unit="s", gain=1 / fs, offset=k * n / fs),
                "ch": CoordinateAxis(np.array([f"c{c}" for c in range(channels)]), ["ch"]),
            },
        )
        items.append(TapItem(float(k), msg, 0))
    frame = build_frame(items, 400, 2.0, selected)
    header = frame.header() | {"labels": frame.channels, "seq": 1}
    return {"floats": frame.minmax.ravel().tolist(), "header": header, "names": frame.all_channels}


def mount(page: Any, f: dict) -> None:
    page.evaluate(
        """f => window.mount({width: 400, height: 240, title: "T", paused: false,
             autoscale: true, y_range: [-1, 1], selected: [], channel_names: f.names,
             header: f.header, frame: new DataView(new Float32Array(f.floats).buffer)})""",
        f,
    )
    wait_draws(page, 1)


def send(page: Any, f: dict) -> None:
    page.evaluate(
        """f => { const m = window.view.model;
                  m.pySet("frame", new DataView(new Float32Array(f.floats).buffer));
                  m.pySet("header", f.header); }""",
        f,
    )


def wait_draws(page: Any, n: int) -> None:
    page.wait_for_function(
        "n => Number(document.querySelector('.ezs-root')?.dataset.draws) >= n",
        arg=n,
        timeout=TIMEOUT_MS,
    )


def inked(page: Any) -> int:
    return page.evaluate(
        """() => { const c = document.querySelector('canvas.ezs-canvas');
                   const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                   let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }"""
    )


def test_draws_each_channel_and_the_sweep_cursor(scope_page: Any) -> None:
    mount(scope_page, frame_for())
    assert inked(scope_page) > 3 * 400  # at least a pixel per column per lane
    root = scope_page.locator(".ezs-root")
    assert root.get_attribute("data-view") == "sweep"
    status = scope_page.inner_text(".ezs-status")
    assert "sweep" in status and "draw" in status
    assert scope_page.locator("input.ezs-ch").count() == 3


def test_a_new_frame_redraws(scope_page: Any) -> None:
    mount(scope_page, frame_for())
    before = scope_page.evaluate("() => document.querySelector('canvas').toDataURL()")
    send(scope_page, frame_for(phase=1.5))
    wait_draws(scope_page, 2)
    after = scope_page.evaluate("() => document.querySelector('canvas').toDataURL()")
    assert before != after


def test_pause_button_sets_paused_and_saves(scope_page: Any) -> None:
    mount(scope_page, frame_for())
    scope_page.click("button.ezs-pause")
    assert scope_page.evaluate("window.view.model.get('paused')") is True
    assert scope_page.evaluate("window.view.model.saved") >= 1
    assert "resume" in scope_page.inner_text("button.ezs-pause")
    scope_page.click("button.ezs-pause")
    assert scope_page.evaluate("window.view.model.get('paused')") is False


def test_channel_selection_is_sent_to_the_kernel(scope_page: Any) -> None:
    mount(scope_page, frame_for())
    scope_page.locator("input.ezs-ch").nth(1).uncheck()
    assert scope_page.evaluate("window.view.model.get('selected')") == [0, 2]
    scope_page.locator("input.ezs-ch").nth(1).check()
    assert scope_page.evaluate("window.view.model.get('selected')") == []
    # The kernel's answer: a frame of the two selected channels, drawn in two lanes.
    send(scope_page, frame_for(selected=[0, 2]))
    wait_draws(scope_page, 2)
    assert scope_page.get_attribute(".ezs-root", "data-lanes") == "2"


def test_fixed_range_and_autoscale(scope_page: Any) -> None:
    mount(scope_page, frame_for())
    assert scope_page.is_disabled("input.ezs-lo")
    scope_page.uncheck("input.ezs-auto")
    assert scope_page.evaluate("window.view.model.get('autoscale')") is False
    scope_page.fill("input.ezs-lo", "-0.5")
    scope_page.dispatch_event("input.ezs-lo", "change")
    scope_page.fill("input.ezs-hi", "0.5")
    scope_page.dispatch_event("input.ezs-hi", "change")
    assert scope_page.evaluate("window.view.model.get('y_range')") == [-0.5, 0.5]
    scope_page.fill("input.ezs-lo", "3")
    scope_page.dispatch_event("input.ezs-lo", "change")  # low > high: refused
    assert scope_page.evaluate("window.view.model.get('y_range')") == [-0.5, 0.5]


def test_cleanup_removes_every_listener(scope_page: Any) -> None:
    mount(scope_page, frame_for())
    assert scope_page.evaluate("window.view.model.listenerCount()") > 0
    scope_page.evaluate("window.view.cleanup()")
    assert scope_page.evaluate("window.view.model.listenerCount()") == 0
    assert scope_page.locator(".ezs-root").count() == 0
