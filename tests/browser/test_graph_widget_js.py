"""The graph widget's JavaScript in headless chromium, with a fake anywidget model.

The fake model (tests/browser/_harness.py) records what the widget sets, saves and
sends; ``pySet``/``pyMsg`` play the Python side.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ezmsg_lab.model import graph_annotations as ga
from ezmsg_lab.model import graph_view as gv
from ezmsg_lab.widgets import GraphWidget
from ezmsg_lab.widgets.graph import LayoutStore
from tests.browser._harness import BUNDLE, open_harness, synthetic_snapshot
from tests.unit.test_graph_view import demo_snapshot

TIMEOUT_MS = 15_000


@pytest.fixture
def demo_state() -> dict[str, Any]:
    return gv.graph_state(demo_snapshot())


@pytest.fixture
def bigger_state(demo_state: dict[str, Any]) -> dict[str, Any]:
    return gv.graph_state(demo_snapshot(with_extra_unit=True), previous=demo_state)


def mount(page: Any, **data: Any) -> None:
    page.evaluate("d => window.mount(d)", data)
    wait_layouts(page, 1)


def wait_layouts(page: Any, n: int) -> None:
    page.wait_for_function(
        "n => Number(document.querySelector('.ezg-root')?.dataset.layouts) >= n",
        arg=n,
        timeout=TIMEOUT_MS,
    )


def model(page: Any, expr: str) -> Any:
    return page.evaluate(f"window.view.model.{expr}")


def card_positions(page: Any) -> dict[str, tuple[float, float]]:
    return page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('.ezg-unit')].map(g => {
             const r = g.querySelector('.ezg-card');
             return [g.dataset.address, [Number(r.getAttribute('x')), Number(r.getAttribute('y'))]];
           }))"""
    )


def test_renders_the_units_edges_ports_and_legend(page: Any, demo_state: dict) -> None:
    mount(page, state=demo_state)
    units = page.eval_on_selector_all(".ezg-unit", "els => els.map(e => e.dataset.address)")
    assert sorted(units) == sorted(demo_state["units"])
    assert page.locator("path.ezg-edge").count() == len(demo_state["edges"]) == 3
    # Data ports are drawn, unwired settings inputs are not.
    ports = page.eval_on_selector_all(".ezg-port", "els => els.map(e => e.dataset.port)")
    assert "DEMO/FILTER/INPUT_SIGNAL" in ports and "DEMO/FILTER/OUTPUT_SIGNAL" in ports
    assert not [p for p in ports if p.endswith("INPUT_SETTINGS")]
    # Each edge ends where its ports are: the route starts at the source port.
    start = page.evaluate(
        """() => {
          const d = document.querySelector('path.ezg-edge').getAttribute('d');
          return d.slice(1).split(' ')[0].split(',').map(Number);
        }"""
    )
    port_xy = page.evaluate(
        """() => [...document.querySelectorAll('.ezg-port')].map(
             c => [Number(c.getAttribute('cx')), Number(c.getAttribute('cy'))])"""
    )
    assert min(abs(start[0] - x) + abs(start[1] - y) for x, y in port_xy) < 8
    assert page.locator(".ezg-group[data-group='DEMO']").count() == 1
    assert page.locator(".ezg-legend [data-process]").count() == 4
    assert "4 units" in page.inner_text(".ezg-counts")
    # Process colours differ between units.
    fills = page.eval_on_selector_all(".ezg-bar", "els => els.map(e => e.style.fill)")
    assert len(set(fills)) == 4
    assert model(page, "sent[0]") == {"type": "hello", "have": demo_state["digest"]}
    # ELK ran in the widget's Web Worker: nothing to say about it.
    assert page.get_attribute(".ezg-root", "data-engine") == "worker"
    assert page.inner_text(".ezg-engine-note") == ""
    assert page.page_errors == []


def test_without_web_workers_the_layout_runs_here_and_says_so(page: Any, demo_state: dict) -> None:
    # A page whose policy forbids workers: a fresh copy of the module meets it at import.
    page.evaluate(
        "() => { window.Worker = function () { throw new Error('workers are blocked'); }; }"
    )
    page.evaluate("src => window.loadWidget(src)", BUNDLE.read_text(encoding="utf-8"))
    mount(page, state=demo_state)
    assert page.get_attribute(".ezg-root", "data-engine") == "main"
    assert "main thread" in page.inner_text(".ezg-engine-note")
    assert "workers are blocked" in (page.get_attribute(".ezg-engine-note", "title") or "")
    assert page.locator(".ezg-unit").count() == len(demo_state["units"])
    assert page.locator("path.ezg-edge").count() == len(demo_state["edges"])
    assert model(page, "data.js_error") == ""


def test_a_graph_drawn_before_is_drawn_again_without_elk(page: Any, demo_state: dict) -> None:
    mount(page, state=demo_state)
    assert page.get_attribute(".ezg-root", "data-cached") == "0"
    first = card_positions(page)
    page.evaluate("() => { window.view.cleanup(); }")
    mount(page, state=demo_state)  # another view of the same graph on this page
    assert page.get_attribute(".ezg-root", "data-cached") == "1"
    assert card_positions(page) == first


def test_click_sets_selected_and_saves(page: Any, demo_state: dict) -> None:
    mount(page, state=demo_state)
    page.click(".ezg-unit[data-address='DEMO/FILTER'] .ezg-name")
    assert model(page, "data.selected") == "DEMO/FILTER"
    assert model(page, "saved") >= 1
    assert ["selected", "DEMO/FILTER"] in model(page, "setLog")
    assert "ezg-selected" in page.get_attribute(".ezg-unit[data-address='DEMO/FILTER']", "class")
    # Python changing the selection restyles without a click.
    page.evaluate("window.view.model.pySet('selected', 'DEMO/SINK')")
    assert "ezg-selected" in page.get_attribute(".ezg-unit[data-address='DEMO/SINK']", "class")
    assert "ezg-selected" not in page.get_attribute(
        ".ezg-unit[data-address='DEMO/FILTER']", "class"
    )


def test_state_change_redraws_and_kept_nodes_stay(
    page: Any, demo_state: dict, bigger_state: dict
) -> None:
    mount(page, state=demo_state)
    before = card_positions(page)
    page.evaluate("s => window.view.model.pySet('state', s)", bigger_state)
    wait_layouts(page, 2)
    after = card_positions(page)
    assert sorted(after) == sorted(bigger_state["units"])
    assert page.locator("path.ezg-edge").count() == 4
    # Nodes that stayed do not jump.
    moved = {a: abs(after[a][0] - x) + abs(after[a][1] - y) for a, (x, y) in before.items()}
    assert max(moved.values()) < 40, moved


def test_diff_message_applies_and_a_wrong_base_asks_for_a_resync(
    page: Any, demo_state: dict, bigger_state: dict
) -> None:
    mount(page, state=demo_state)
    diff = gv.diff_state(demo_state, bigger_state)
    page.evaluate("d => window.view.model.pyMsg({type: 'diff', diff: d})", diff)
    wait_layouts(page, 2)
    assert page.locator(".ezg-unit[data-address='DEMO/LOGGER']").count() == 1
    assert not [m for m in model(page, "sent") if m["type"] == "resync"]
    # The same diff again no longer fits: the view asks for the whole state.
    page.evaluate("d => window.view.model.pyMsg({type: 'diff', diff: d})", diff)
    resync = [m for m in model(page, "sent") if m["type"] == "resync"]
    assert resync and resync[0]["have"] == bigger_state["digest"]
    # ... and a full state message replaces what it has.
    page.evaluate("s => window.view.model.pyMsg({type: 'full', state: s})", demo_state)
    wait_layouts(page, 3)
    assert page.locator(".ezg-unit").count() == 4


def test_collapse_and_expand_a_collection(page: Any, demo_state: dict) -> None:
    mount(page, state=demo_state)
    page.click("[data-toggle='DEMO']")
    wait_layouts(page, 2)
    assert page.get_attribute(".ezg-root", "data-layouts") == "2"  # one layout per change
    assert model(page, "data.collapsed") == ["DEMO"]
    assert model(page, "saved") >= 1
    assert page.locator(".ezg-unit").count() == 0
    assert "4 units" in page.text_content(".ezg-collapsed[data-group='DEMO']")
    page.click(".ezg-collapsed[data-group='DEMO']")
    wait_layouts(page, 3)
    assert model(page, "data.collapsed") == []
    assert page.locator(".ezg-unit").count() == 4
    # Python collapsing works too.
    page.evaluate("window.view.model.pySet('collapsed', ['DEMO'])")
    wait_layouts(page, 4)
    assert page.locator(".ezg-collapsed").count() == 1


def test_annotations_restyle_without_relayout(page: Any, demo_state: dict) -> None:
    mount(page, state=demo_state)
    filt = next(p for p in demo_state["processes"].values() if p["units"] == ["DEMO/SINK"])
    ann = ga.make_annotations(
        edge_rates={("DEMO/SOURCE/OUTPUT_SIGNAL", "DEMO/FILTER/INPUT_SIGNAL"): 100.0},
        edge_channels={("DEMO/SOURCE/OUTPUT_SIGNAL", "DEMO/FILTER/INPUT_SIGNAL"): "SHM"},
        publishers={"DEMO/FILTER/OUTPUT_SIGNAL": (30, 32)},
        unit_errors={"DEMO/DETECTOR": (3, "ValueError: cutoff above Nyquist")},
        missing_processes=[filt["id"]],
    )
    page.evaluate("a => window.view.model.pySet('annotations', a)", ann)
    assert page.get_attribute(".ezg-root", "data-layouts") == "1"
    labels = page.eval_on_selector_all(".ezg-edge-label", "els => els.map(e => e.textContent)")
    assert "100 Hz \u00b7 SHM" in labels
    crit = page.eval_on_selector_all(
        "path.ezg-edge.ezg-critical", "els => els.map(e => e.dataset.edge)"
    )
    assert len(crit) == 1 and "DEMO/FILTER/OUTPUT_SIGNAL" in crit[0]
    assert "ezg-critical" in page.get_attribute(
        ".ezg-port[data-port='DEMO/FILTER/OUTPUT_SIGNAL']", "class"
    )
    assert "ezg-has-error" in page.get_attribute(".ezg-unit[data-address='DEMO/DETECTOR']", "class")
    assert "ezg-missing" in page.get_attribute(".ezg-unit[data-address='DEMO/SINK']", "class")
    assert page.locator(".ezg-legend-row.ezg-missing").count() == 1
    # The tooltip tells the address, pid, the error.
    page.hover(".ezg-unit[data-address='DEMO/DETECTOR'] .ezg-name")
    tip = page.inner_text(".ezg-tooltip")
    assert "DEMO/DETECTOR" in tip and "6616" in tip and "cutoff above Nyquist" in tip


def test_js_errors_reach_js_error(page: Any, demo_state: dict) -> None:
    mount(page, state=demo_state)
    broken = copy.deepcopy(demo_state)
    broken["units"]["DEMO/FILTER"]["inputs"] = 5  # not a list: the layout code throws
    page.evaluate("s => window.view.model.pySet('state', s)", broken)
    page.wait_for_function("() => window.view.model.data.js_error !== ''", timeout=TIMEOUT_MS)
    assert model(page, "data.js_error").startswith("layout:")
    assert page.is_visible(".ezg-banner")
    # The view recovers with a good state.
    page.evaluate("s => window.view.model.pySet('state', s)", demo_state)
    wait_layouts(page, 2)


def test_pan_zoom_fit_and_cleanup(page: Any, demo_state: dict) -> None:
    mount(page, state=demo_state)
    zoom0 = float(page.get_attribute(".ezg-root", "data-zoom"))
    box = page.locator(".ezg-svg").bounding_box()
    page.mouse.move(box["x"] + 50, box["y"] + 300)
    page.mouse.wheel(0, -400)
    page.wait_for_function(
        "z => Number(document.querySelector('.ezg-root').dataset.zoom) > z", arg=zoom0
    )
    # Dragging the background pans and does not select.
    page.mouse.move(box["x"] + 20, box["y"] + 100)
    page.mouse.down()
    page.mouse.move(box["x"] + 220, box["y"] + 160, steps=5)
    page.mouse.up()
    assert model(page, "data.selected") == ""
    page.click(".ezg-fit")
    assert float(page.get_attribute(".ezg-root", "data-zoom")) == pytest.approx(zoom0, abs=1e-3)
    assert model(page, "listenerCount()") > 0
    page.evaluate("window.view.cleanup()")
    assert model(page, "listenerCount()") == 0
    assert page.evaluate("window.view.el.childElementCount") == 0
    # Model events after cleanup do nothing (and raise nothing).
    page.evaluate("s => window.view.model.pySet('state', s)", demo_state)
    assert page.page_errors == []


def test_many_processes_are_summarised_per_host(page: Any) -> None:
    from ._harness import synthetic_snapshot

    state = gv.graph_state(synthetic_snapshot(30, 40, per_collection=5))
    mount(page, state=state, annotations=ga.make_annotations(missing_processes=[]))
    rows = page.eval_on_selector_all(".ezg-legend .ezg-host", "els => els.map(e => e.textContent)")
    assert rows == ["node-a15 processes", "node-b15 processes"]
    assert "\u2265 90%" in page.inner_text(".ezg-legend")
    # Units on two hosts carry their host on the card.
    assert page.locator(".ezg-unit .ezg-host").count() == 30
    assert page.page_errors == []


# ---------------------------------------------------------------------- readability
TEXT_AT_FIT = """() => {
  const root = document.querySelector('.ezg-root');
  const svg = root.querySelector('.ezg-svg').getBoundingClientRect();
  const scene = root.querySelector('.ezg-scene').getBoundingClientRect();
  const k = Number(root.dataset.zoom);
  let smallest = Infinity;
  for (const t of root.querySelectorAll('.ezg-scene text')) {
    const cs = getComputedStyle(t);
    if (!t.textContent || cs.display === 'none') continue;
    smallest = Math.min(smallest, parseFloat(cs.fontSize) * k);
  }
  return {
    smallest, fit: root.dataset.fit, width: svg.width,
    fill: Math.max(scene.width / svg.width, scene.height / svg.height),
    inside: scene.left >= svg.left - 1 && scene.right <= svg.right + 1 &&
            scene.top >= svg.top - 1 && scene.bottom <= svg.bottom + 1,
    hint: getComputedStyle(root.querySelector('.ezg-hint')).display !== 'none',
  };
}"""


def mount_at(page: Any, width: int, **data: Any) -> dict[str, Any]:
    page.evaluate(f"document.getElementById('host').style.width = '{width}px'")
    mount(page, height=0, **data)
    return page.evaluate(TEXT_AT_FIT)


@pytest.mark.parametrize("width", [1100, 760])
@pytest.mark.parametrize("extra", [False, True])
def test_the_demo_fits_whole_and_readable(page: Any, width: int, extra: bool) -> None:
    # The demo (4 units) and the demo with one more unit, in a JupyterLab-wide and a
    # narrow output area: the whole graph shows, fills the widget, with text >= 11 px.
    state = gv.graph_state(demo_snapshot(with_extra_unit=extra))
    got = mount_at(page, width, state=state)
    assert got["smallest"] >= 11 - 1e-6, got
    assert got["inside"] and got["fill"] > 0.85, got
    # The legend is under the drawing, not over it.
    legend = page.locator(".ezg-legend").bounding_box()
    drawing = page.locator(".ezg-svg").bounding_box()
    assert legend["y"] >= drawing["y"] + drawing["height"] - 1
    assert page.page_errors == []


def test_a_resize_fits_again(page: Any, demo_state: dict) -> None:
    got = mount_at(page, 1100, state=demo_state)
    assert got["inside"] and got["smallest"] >= 11 - 1e-6
    page.evaluate("document.getElementById('host').style.width = '700px'")
    # Narrower than one row of the demo at a readable size: it is laid out again
    # (wrapped) and fitted, whole and readable.
    page.wait_for_function(
        "() => { const r = document.querySelector('.ezg-svg').getBoundingClientRect();"
        " const s = document.querySelector('.ezg-scene').getBoundingClientRect();"
        " return r.width < 700 && s.right <= r.right + 1 && s.left >= r.left - 1; }",
        timeout=TIMEOUT_MS,
    )
    got = page.evaluate(TEXT_AT_FIT)
    assert got["inside"] and got["smallest"] >= 11 - 1e-6, got
    assert page.get_attribute(".ezg-root", "data-wrapped") == "1"


def test_thirty_units_stay_readable_and_bigger_graphs_fit_whole(page: Any) -> None:
    from ._harness import synthetic_snapshot

    thirty = gv.graph_state(synthetic_snapshot(30, 40, per_collection=5))
    got = mount_at(page, 1100, state=thirty)
    assert got["smallest"] >= 11 - 1e-6, got
    # Whole, or (when even the tallest widget cannot hold it readably) shown from its
    # start with a hint to drag.
    assert got["inside"] or (got["fit"] == "readable" and got["hint"]), got
    page.evaluate("window.view.cleanup()")
    sixty = gv.graph_state(synthetic_snapshot(60, 90, per_collection=10))
    got = mount_at(page, 1100, state=sixty)
    assert got["inside"] and got["fit"] == "whole" and not got["hint"], got


# ---------------------------------------------------------------------- a closed Lab
def test_a_closed_labs_graph_is_greyed_says_when_and_ignores_clicks(
    page: Any, demo_state: dict
) -> None:
    mount(page, state=demo_state)
    page.evaluate("window.view.model.pySet('closed_at', '2025-03-04T12:34:56+01:00')")
    assert "ezg-closed" in page.get_attribute(".ezg-root", "class")
    assert page.inner_text(".ezg-closed-note") == "Lab closed at 12:34:56 \u2014 frozen"
    assert page.is_visible(".ezg-closed-note")
    assert page.evaluate("getComputedStyle(document.querySelector('.ezg-svg')).filter") != "none"
    page.click(".ezg-unit[data-address='DEMO/FILTER'] .ezg-name")
    assert model(page, "data.selected") == ""
    assert ["selected", "DEMO/FILTER"] not in model(page, "setLog")
    assert page.page_errors == []


# ---------------------------------------------------------------------- layouts kept by the kernel
def _fresh_page(browser: Any) -> Any:
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    pg = context.new_page()
    pg.page_errors = []  # type: ignore[attr-defined]
    pg.on("pageerror", lambda exc: pg.page_errors.append(str(exc)))
    open_harness(pg)
    return pg


def _python_state(widget: Any) -> dict[str, Any]:
    # What a page opened later gets from the kernel: every synced trait's value.
    return {k: copy.deepcopy(v) for k, v in widget.get_state().items() if k in widget.keys}


def test_a_page_opened_later_draws_the_kernels_layout_without_elk(browser: Any) -> None:
    """A reload (or another tab) of a graph the kernel has seen laid out: no ELK run."""
    state = gv.graph_state(synthetic_snapshot(40, 60, per_collection=5))
    widget = GraphWidget(state=state)
    widget.layout_store = LayoutStore()  # not the kernel-wide one: tests stay independent
    first = _fresh_page(browser)
    try:
        mount(first, state=state)
        assert first.get_attribute(".ezg-root", "data-cached") == "0"
        assert int(first.get_attribute(".ezg-root", "data-elk-runs")) >= 1
        sent = [m for m in model(first, "sent") if m.get("type") == "layout"]
        assert len(sent) == 1, sent
        drawn = card_positions(first)
        # The kernel side, as ipywidgets delivers a view's message.
        widget._on_custom_msg(widget, sent[0], [])
        assert [e["key"] for e in widget.layouts] == [sent[0]["key"]]
        assert not widget._should_send_property("layouts", widget.layouts)
    finally:
        first.context.close()
    later = _fresh_page(browser)
    try:
        data = _python_state(widget)
        later.evaluate("d => window.mount(d)", data)
        wait_layouts(later, 1)
        assert later.get_attribute(".ezg-root", "data-cached") == "kernel"
        assert later.get_attribute(".ezg-root", "data-elk-runs") is None
        assert later.evaluate("window.widgetModule.engine.stats().runs") == 0
        assert card_positions(later) == drawn
        assert not [m for m in model(later, "sent") if m.get("type") == "layout"]
        # A layout that does not fit the topology (another state's) is not used.
        other = gv.graph_state(synthetic_snapshot(40, 61, per_collection=5))
        later.evaluate("window.view.cleanup()")
        later.evaluate("d => window.mount(d)", {**data, "state": other})
        wait_layouts(later, 1)
        assert later.get_attribute(".ezg-root", "data-cached") == "0"
        assert later.page_errors == []
    finally:
        later.context.close()
        widget.close()


def test_a_new_state_on_the_same_shapes_is_kept_for_it_too(page: Any, demo_state: dict) -> None:
    # Other records (a process's colour), the same ELK input: no ELK run, but the kernel
    # is given the layout for the new state as well, so a reload of it finds one.
    mount(page, state=demo_state)
    recolored = copy.deepcopy(demo_state)
    for proc in recolored["processes"].values():
        proc["color"] += 1
    recolored["digest"] = gv.state_digest(recolored)
    page.evaluate("s => window.view.model.pySet('state', s)", recolored)
    wait_layouts(page, 2)
    kept = [m for m in model(page, "sent") if m.get("type") == "layout"]
    assert [m["digest"] for m in kept] == [demo_state["digest"], recolored["digest"]]
    assert kept[0]["key"] == kept[1]["key"] and kept[0]["geometry"] == kept[1]["geometry"]
    assert page.evaluate("window.widgetModule.engine.stats().runs") == 1
    # Told once: the same state again sends nothing more.
    page.evaluate("s => window.view.model.pySet('state', s)", demo_state)
    wait_layouts(page, 3)
    page.evaluate("s => window.view.model.pySet('state', s)", recolored)
    wait_layouts(page, 4)
    assert len([m for m in model(page, "sent") if m.get("type") == "layout"]) == 2
