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


def pack(frame: Any) -> dict:
    header = frame.header() | {"labels": frame.channels, "seq": 1}
    return {"floats": frame.values.ravel().tolist(), "header": header, "names": frame.all_channels}


def gradient_frame(rows: int = 20, cols: int = 40, flip: bool = False) -> dict:
    """An image whose value is its column index (reversed with ``flip``)."""
    img = np.tile(np.arange(cols, dtype=float), (rows, 1))
    msg = AxisArray(img[:, ::-1] if flip else img, ["y", "x"], axes={})
    return pack(build_frame([TapItem(0.0, msg, 0)], 400, 1.0, rows=240))


def pixel(page: Any, x: int, y: int) -> list[int]:
    return page.evaluate(
        """([x, y]) => [...document.querySelector('canvas.ezs-canvas').getContext('2d')
                        .getImageData(x, y, 1, 1).data]""",
        [x, y],
    )


def fixed_range(page: Any, lo: float, hi: float) -> None:
    """Untick autoscale and type a range; return once a draw has used it."""
    page.uncheck("input.ezs-auto")
    page.fill("input.ezs-lo", str(lo))
    page.dispatch_event("input.ezs-lo", "change")
    page.fill("input.ezs-hi", str(hi))
    page.dispatch_event("input.ezs-hi", "change")
    assert page.evaluate("window.view.model.get('y_range')") == [lo, hi]
    page.wait_for_function(
        "r => document.querySelector('.ezs-root').dataset.range.endsWith(r)",
        arg=f"{lo},{hi}",
        timeout=TIMEOUT_MS,
    )


def brightness(rgba: list[int]) -> float:
    return 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2]


def test_an_image_is_coloured_by_value_dark_to_bright(scope_page: Any) -> None:
    mount(scope_page, gradient_frame())
    assert scope_page.get_attribute(".ezs-root", "data-view") == "image"
    row = [pixel(scope_page, x, 150) for x in range(5, 400, 10)]  # below the caption
    assert all(p[3] == 255 for p in row)
    levels = [brightness(p) for p in row]
    assert (np.diff(levels) >= 0).all(), levels  # left dark, right bright
    assert row[0][:3] == [68, 1, 84] and row[-1][:3] == [253, 231, 37]  # the map's ends
    assert "image 20×40" in scope_page.inner_text(".ezs-status")
    assert scope_page.locator("input.ezs-ch").count() == 0  # one image: nothing to choose
    # A fixed colour range [0, 78]: the brightest column (39) is now mid-scale.
    fixed_range(scope_page, 0, 78)
    right = pixel(scope_page, 395, 150)
    assert brightness(right) < brightness(row[-1]) - 50
    assert abs(brightness(right) - brightness(pixel(scope_page, 200, 150))) < 60


def test_scatter_dots_land_where_their_coordinates_say(scope_page: Any) -> None:
    points = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.25, 0.5]])
    mount(scope_page, pack(build_frame([TapItem(0.0, points, 0)], 400, 1.0)))
    assert scope_page.get_attribute(".ezs-root", "data-view") == "scatter"
    assert "scatter 5 points" in scope_page.inner_text(".ezs-status")
    # The plot area is x 4..396 and y 4..222 (240 - 18 for the ranges' text); autoscale
    # pads the points' extent by 5 % each side.
    w, h = 400, 240
    left, right, top, bottom = 4, w - 4, 4, h - 18

    def at(x: float, y: float) -> tuple[int, int]:
        px = left + (x + 0.05) / 1.1 * (right - left)
        py = bottom - (y + 0.05) / 1.1 * (bottom - top)
        return int(px), int(py)

    blue = [9, 105, 218, 255]  # the first set's colour
    for x, y in points:
        assert pixel(scope_page, *at(x, y)) == blue, (x, y)
    for x, y in [(0.5, 0.5), (0.25, 0.0), (0.75, 0.75)]:  # no point there
        assert pixel(scope_page, *at(x, y))[3] == 0, (x, y)
    # Fixed range [-1, 2] on both axes: (1, 1) moves to two thirds across and up.
    fixed_range(scope_page, -1, 2)
    px = int(left + 2 / 3 * (right - left))
    py = int(bottom - 2 / 3 * (bottom - top))
    assert pixel(scope_page, px, py) == blue


def test_paused_the_frame_on_screen_stays_and_resuming_draws_the_newest(scope_page: Any) -> None:
    mount(scope_page, gradient_frame())
    scope_page.click("button.ezs-pause")
    wait_draws(scope_page, 2)  # the controls changed: the same frame drawn again
    before = scope_page.evaluate("() => document.querySelector('canvas').toDataURL()")
    draws = int(scope_page.get_attribute(".ezs-root", "data-draws"))
    send(scope_page, gradient_frame(flip=True))  # a frame in flight when pause was pressed
    scope_page.evaluate(
        "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
    )
    assert int(scope_page.get_attribute(".ezs-root", "data-draws")) == draws
    assert scope_page.evaluate("() => document.querySelector('canvas').toDataURL()") == before
    scope_page.click("button.ezs-pause")  # resume
    wait_draws(scope_page, draws + 1)
    assert brightness(pixel(scope_page, 5, 150)) > brightness(pixel(scope_page, 395, 150))
