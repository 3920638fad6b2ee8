"""GraphWidget (Python side): validation, full state vs diffs, resync, rate limiting.

Messages are read from the widget's comm (the DummyComm ipywidgets creates outside a
kernel), whose ``send`` is replaced by a recorder.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import traitlets

from ezmsg_lab.model import graph_annotations as ga
from ezmsg_lab.model import graph_view as gv
from ezmsg_lab.widgets import GraphWidget
from tests.conftest import wait_until
from tests.unit.test_graph_view import demo_snapshot

from ..browser._harness import synthetic_snapshot


def recorded(widget: GraphWidget) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    widget.comm.send = lambda data=None, buffers=None, **_: sent.append(data)  # type: ignore[method-assign]
    return sent


def state_updates(sent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in sent if m.get("method") == "update" and "state" in m["state"]]


def customs(sent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m["content"] for m in sent if m.get("method") == "custom"]


def test_construction_validates_its_input() -> None:
    w = GraphWidget(snapshot=demo_snapshot(), selected="DEMO/FILTER", collapsed=["DEMO", "DEMO"])
    assert sorted(w.state["units"]) == ["DEMO/DETECTOR", "DEMO/FILTER", "DEMO/SINK", "DEMO/SOURCE"]
    assert w.collapsed == ["DEMO"]
    assert w.annotations["missing_processes"] == []
    with pytest.raises(TypeError, match="unexpected keyword"):
        GraphWidget(snap=demo_snapshot())  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="not both"):
        GraphWidget(snapshot=demo_snapshot(), state=w.state)
    with pytest.raises(ValueError, match="max_rate_hz"):
        GraphWidget(max_rate_hz=0)
    with pytest.raises(traitlets.TraitError, match="selected='DEMO/NOPE'"):
        w.selected = "DEMO/NOPE"
    with pytest.raises(traitlets.TraitError, match="state"):
        w.state = {"schema": 99}
    with pytest.raises(traitlets.TraitError, match="annotations.*channel kind"):
        w.annotations = {"edges": {"a->b": {"rate_hz": 1.0, "channel": "UDP"}}}
    with pytest.raises(traitlets.TraitError, match="height"):
        w.height = 10


def test_small_states_go_whole() -> None:
    w = GraphWidget(snapshot=demo_snapshot())
    sent = recorded(w)
    new = gv.graph_state(demo_snapshot(with_extra_unit=True), previous=w.state)
    w.push_state(new)
    assert len(state_updates(sent)) == 1 and customs(sent) == []
    assert w.state == new and w.full_states_sent == 1
    w.push_state(new)  # same digest: nothing to send
    assert len(sent) == 1


def test_large_states_go_as_diffs_and_python_keeps_the_full_state() -> None:
    old = gv.graph_state(synthetic_snapshot(300, 600))
    w = GraphWidget(state=old)
    sent = recorded(w)
    snap = synthetic_snapshot(300, 600)
    # Rewire one edge and drop one unit's process: a small change in a big graph.
    edge = next(iter(snap.edge_owners))
    del snap.graph[edge.from_topic]
    del snap.edge_owners[edge]
    for session in snap.sessions.values():
        session.edges.remove(edge)
    snap.processes.pop(next(iter(snap.processes)))
    new = gv.graph_state(snap, previous=old)
    w.push_state(new)
    assert state_updates(sent) == []  # the big state itself did not travel
    [msg] = customs(sent)
    assert msg["type"] == "diff" and w.diffs_sent == 1
    assert gv.apply_diff(old, msg["diff"]) == new
    assert w.state == new  # Python sees the current state
    # A view that missed it says so and gets the whole state; an up-to-date one does not.
    w._on_custom_msg(w, {"type": "resync", "have": old["digest"]}, [])
    assert customs(sent)[-1] == {"type": "full", "state": new}
    before = len(sent)
    w._on_custom_msg(w, {"type": "hello", "have": new["digest"]}, [])
    assert len(sent) == before


def test_a_big_rewrite_goes_whole_even_when_large() -> None:
    w = GraphWidget(state=gv.graph_state(synthetic_snapshot(300, 600)))
    sent = recorded(w)
    w.push_state(gv.graph_state(synthetic_snapshot(120, 200, per_collection=12)))
    assert len(state_updates(sent)) == 1 and customs(sent) == []


def test_updates_are_rate_limited_and_the_latest_wins() -> None:
    w = GraphWidget(snapshot=demo_snapshot(), max_rate_hz=10.0)
    sent = recorded(w)
    snaps = [demo_snapshot(with_extra_unit=i % 2 == 0) for i in range(4)]  # first and last differ
    for s in snaps:
        w.update_from_snapshot(s)
    # The first went at once (a quiet period before it); the rest are held back.
    first = len(state_updates(sent))
    assert first == 1
    assert wait_until(lambda: len(state_updates(sent)) == 2, timeout=5.0)
    assert w.state == gv.graph_state(snaps[-1], previous=w.state)
    assert len(state_updates(sent)) == 2  # 4 calls, 2 messages
    ann = ga.make_annotations(unit_errors={"DEMO/FILTER": (1, "boom")})
    w.update_annotations(ann, now=True)
    assert w.annotations["units"]["DEMO/FILTER"]["last_error"] == "boom"
    with pytest.raises(ValueError, match="channel kind"):
        w.update_annotations({"edges": {"a->b": {"rate_hz": None, "channel": "UDP"}}})
    w.close()


def test_a_failing_update_is_shown_in_the_widget() -> None:
    w = GraphWidget(snapshot=demo_snapshot())
    broken = copy.deepcopy(demo_snapshot())
    broken.sessions = None  # not a snapshot any more
    w.update_from_snapshot(broken, now=True)
    assert w.py_error.startswith("TypeError")
    w.close()


# ------------------------------------------------------------------ layouts kept by the kernel
def _layout_msg(
    state: dict[str, Any], key: str = "k1", collapsed: list[str] | None = None, n: int = 3
) -> dict[str, Any]:
    return {
        "type": "layout",
        "digest": state["digest"],
        "collapsed": collapsed or [],
        "key": key,
        "geometry": {
            "nodes": [[f"u:{i}", i * 10.0, 0.0, 150.0, 67.0, []] for i in range(n)],
            "edges": [],
            "width": 100,
            "height": 80,
            "units": n,
            "wrapped": False,
            "madeForWidth": 760,
        },
    }


def test_a_views_layout_is_kept_for_pages_opened_later_and_never_sent_live() -> None:
    from ezmsg_lab.widgets.graph import LayoutStore

    w = GraphWidget(snapshot=demo_snapshot())
    w.layout_store = LayoutStore()
    sent = recorded(w)
    msg = _layout_msg(w.state)
    w._on_custom_msg(w, msg, [])
    assert w.layouts == [{"key": "k1", "digest": w.state["digest"], "geometry": msg["geometry"]}]
    # Open views made that layout themselves: nothing goes out to them ...
    assert not [m for m in sent if m.get("method") == "update" and "layouts" in m["state"]]
    # ... while a page opened later gets it with the rest of the state.
    assert w.get_state()["layouts"] == w.layouts
    # Another topology (a state change, a collapsed collection) has its own layouts.
    bigger = gv.graph_state(demo_snapshot(with_extra_unit=True), previous=w.state)
    w.push_state(bigger)
    assert w.layouts == []
    w.collapsed = ["DEMO"]
    w._on_custom_msg(w, _layout_msg(bigger, "k2", ["DEMO"]), [])
    assert [e["key"] for e in w.layouts] == ["k2"]
    w.collapsed = []
    assert w.layouts == []
    # A second widget on the same store and topology starts with what the first kept.
    other = GraphWidget(state=bigger)
    other.layout_store = w.layout_store
    other.collapsed = ["DEMO"]
    assert [e["key"] for e in other.layouts] == ["k2"]
    # What another widget's view keeps later reaches a page that opens this one (one per
    # key and width: views in boxes of different widths wrap differently).
    w.collapsed = ["DEMO"]
    wider = _layout_msg(bigger, "k2", ["DEMO"])
    wider["geometry"]["madeForWidth"] = 1100
    other._on_custom_msg(other, wider, [])
    widths = [e["geometry"]["madeForWidth"] for e in w.get_state()["layouts"]]
    assert widths == [1100, 760]


def test_bad_layout_messages_change_nothing() -> None:
    from ezmsg_lab.widgets.graph import MAX_LAYOUT_BYTES, LayoutStore

    w = GraphWidget(snapshot=demo_snapshot())
    w.layout_store = LayoutStore()
    good = _layout_msg(w.state)
    bad = [
        {**good, "digest": 5},
        {**good, "digest": ""},
        {**good, "key": "x" * 500},
        {**good, "collapsed": "DEMO"},
        {**good, "collapsed": [1]},
        {**good, "geometry": []},
        {**good, "geometry": {"nodes": {}, "edges": []}},
        {k: v for k, v in good.items() if k != "geometry"},
        _layout_msg(w.state, n=MAX_LAYOUT_BYTES // 20),  # over 4 MB
    ]
    for msg in bad:
        w._on_custom_msg(w, msg, [])
    assert w.layouts == [] and len(w.layout_store) == 0


def test_the_layout_store_is_bounded_by_count_and_size() -> None:
    from ezmsg_lab.widgets.graph import LayoutStore

    store = LayoutStore(max_entries=3, max_bytes=1000)
    for i in range(5):
        store.put(f"d{i}", [], "k", {"nodes": [], "edges": []}, 100)
    assert len(store) == 3 and store.get("d0", []) == [] and store.get("d4", [])
    # A topology keeps its newest few layouts (fonts and widths differ between pages).
    for j in range(LayoutStore.PER_TOPOLOGY + 2):
        store.put("d4", [], f"k{j}", {"nodes": [], "edges": []}, 10)
    keys = [e["key"] for e in store.get("d4", [])]
    assert keys == [f"k{j}" for j in reversed(range(2, LayoutStore.PER_TOPOLOGY + 2))]
    store.put("big", ["B", "A"], "k", {"nodes": [], "edges": []}, 900)
    assert store.nbytes <= 1000 and store.get("big", ["A", "B"])
    assert store.get("d3", []) == []  # the oldest went to make room
