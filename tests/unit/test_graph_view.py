"""graph_view and graph_annotations: snapshot -> widget state, diffs, annotations.

Snapshots are built from ezmsg's own dataclasses in the shape a running demo produces
(captured with ``lab.snapshot()``: one session holds the metadata and the edges, the
Lab's own session has neither, every unit runs in its own process).
"""

from __future__ import annotations

import copy
import json
import uuid

import pytest
from ezmsg.core.graphmeta import (
    CollectionMetadata,
    DynamicSettingsMetadata,
    Edge,
    GraphMetadata,
    GraphSnapshot,
    InputStreamMetadata,
    InputTopicMetadata,
    OutputStreamMetadata,
    OutputTopicMetadata,
    ProfileChannelType,
    SnapshotProcess,
    SnapshotSession,
    UnitMetadata,
)

from ezmsg_lab.model import graph_annotations as ga
from ezmsg_lab.model import graph_view as gv

LAB_SESSION = "6f625788-eba1-11f1-81a9-02fc00000001"
RUN_SESSION = "6f647ae0-eba1-11f1-81a9-02fc00000001"


def _unit(address: str, inputs: list[str], outputs: list[str]) -> UnitMetadata:
    name = address.rpartition("/")[2]
    settings_topic = f"{address}/INPUT_SETTINGS"
    streams = {
        "INPUT_SETTINGS": InputStreamMetadata(
            name="INPUT_SETTINGS", address=settings_topic, msg_type=f"demo.{name}Settings"
        )
    }
    for s in inputs:
        streams[s] = InputStreamMetadata(name=s, address=f"{address}/{s}", msg_type="demo.Chunk")
    for s in outputs:
        streams[s] = OutputStreamMetadata(
            name=s, address=f"{address}/{s}", msg_type="demo.Chunk", num_buffers=32
        )
    return UnitMetadata(
        address=address,
        name=name,
        component_type=f"demo.{name.title()}",
        settings_type=f"demo.{name}Settings",
        initial_settings=(None, {}),
        dynamic_settings=DynamicSettingsMetadata(True, settings_topic, f"demo.{name}Settings"),
        settings_schema=None,
        streams=streams,
        tasks=[],
        main=None,
        threads=[],
    )


def _collection(address: str, children: list[str], topics: dict | None = None):
    return CollectionMetadata(
        address=address,
        name=address.rpartition("/")[2],
        component_type="demo.DemoPipeline",
        settings_type="demo.DemoSettings",
        initial_settings=(None, {}),
        dynamic_settings=DynamicSettingsMetadata(False, None, None),
        settings_schema=None,
        topics=topics or {},
        relays={},
        children=sorted(children),
    )


def demo_snapshot(*, with_extra_unit: bool = False) -> GraphSnapshot:
    """The demo chain SOURCE -> FILTER -> DETECTOR -> SINK in collection DEMO."""
    units = [
        _unit("DEMO/SOURCE", [], ["OUTPUT_SIGNAL"]),
        _unit("DEMO/FILTER", ["INPUT_SIGNAL"], ["OUTPUT_SIGNAL"]),
        _unit("DEMO/DETECTOR", ["INPUT_SIGNAL"], ["OUTPUT_EVENTS"]),
        _unit("DEMO/SINK", ["INPUT"], []),
    ]
    edges = [
        Edge("DEMO/SOURCE/OUTPUT_SIGNAL", "DEMO/FILTER/INPUT_SIGNAL"),
        Edge("DEMO/FILTER/OUTPUT_SIGNAL", "DEMO/DETECTOR/INPUT_SIGNAL"),
        Edge("DEMO/DETECTOR/OUTPUT_EVENTS", "DEMO/SINK/INPUT"),
    ]
    pids = {"DEMO/SOURCE": 6614, "DEMO/FILTER": 6615, "DEMO/DETECTOR": 6616, "DEMO/SINK": 6620}
    if with_extra_unit:
        units.append(_unit("DEMO/LOGGER", ["INPUT"], []))
        edges.append(Edge("DEMO/DETECTOR/OUTPUT_EVENTS", "DEMO/LOGGER/INPUT"))
        pids["DEMO/LOGGER"] = 6630
    components = {u.address: u for u in units}
    components["DEMO"] = _collection("DEMO", list(components))
    graph: dict[str, list[str]] = {}
    for e in edges:
        graph.setdefault(e.from_topic, []).append(e.to_topic)
        graph.setdefault(e.to_topic, [])
    processes = {}
    for address, pid in pids.items():
        pid_uuid = uuid.uuid5(uuid.NAMESPACE_URL, address)
        processes[pid_uuid] = SnapshotProcess(pid_uuid, pid, "vm", [address])
    return GraphSnapshot(
        graph=graph,
        edge_owners={e: [RUN_SESSION] for e in edges},
        sessions={
            LAB_SESSION: SnapshotSession(edges=[], metadata=None),
            RUN_SESSION: SnapshotSession(
                edges=list(edges),
                metadata=GraphMetadata(schema_version=1, root_name=None, components=components),
            ),
        },
        processes=processes,
    )


def test_units_streams_and_processes_come_from_the_snapshot() -> None:
    state = gv.graph_state(demo_snapshot())
    assert sorted(state["units"]) == ["DEMO/DETECTOR", "DEMO/FILTER", "DEMO/SINK", "DEMO/SOURCE"]
    flt = state["units"]["DEMO/FILTER"]
    assert flt["name"] == "FILTER"
    assert flt["collection"] == "DEMO" and flt["path"] == ["DEMO"]
    assert flt["component_type"] == "demo.Filter"
    assert flt["session"] == RUN_SESSION
    assert flt["pid"] == 6615 and flt["host"] == "vm"
    assert flt["process_id"] == str(uuid.uuid5(uuid.NAMESPACE_URL, "DEMO/FILTER"))
    assert [s["address"] for s in flt["inputs"]] == [
        "DEMO/FILTER/INPUT_SIGNAL",
        "DEMO/FILTER/INPUT_SETTINGS",
    ]
    assert [s["settings"] for s in flt["inputs"]] == [False, True]
    assert flt["outputs"][0]["address"] == "DEMO/FILTER/OUTPUT_SIGNAL"
    assert flt["outputs"][0]["num_buffers"] == 32
    assert state["groups"]["DEMO"]["children"] == sorted(state["units"])
    assert state["groups"]["DEMO"]["parent"] is None
    # Unit streams are ports, not topic nodes.
    assert state["topics"] == {}
    # JSON-able, and the digest is stable for the same snapshot.
    assert json.loads(json.dumps(state)) == state
    assert gv.graph_state(demo_snapshot())["digest"] == state["digest"]


def test_edges_connect_units_and_name_their_session() -> None:
    state = gv.graph_state(demo_snapshot())
    eid = gv.edge_id("DEMO/SOURCE/OUTPUT_SIGNAL", "DEMO/FILTER/INPUT_SIGNAL")
    edge = state["edges"][eid]
    assert edge["source_node"] == "DEMO/SOURCE" and edge["target_node"] == "DEMO/FILTER"
    assert edge["owners"] == [RUN_SESSION] and edge["session"] == RUN_SESSION
    assert len(state["edges"]) == 3


def test_process_colours_are_distinct_and_stable_across_updates() -> None:
    first = gv.graph_state(demo_snapshot())
    colours = {p["units"][0]: p["color"] for p in first["processes"].values()}
    # Ordered by first unit on the host, so the first drawing is predictable.
    assert colours == {"DEMO/DETECTOR": 0, "DEMO/FILTER": 1, "DEMO/SINK": 2, "DEMO/SOURCE": 3}
    assert {p["host_color"] for p in first["processes"].values()} == {0}
    assert first["hosts"]["vm"]["processes"] == sorted(first["processes"])

    # LOGGER sorts before SINK and SOURCE; with the previous state nobody changes colour.
    second = gv.graph_state(demo_snapshot(with_extra_unit=True), previous=first)
    colours2 = {p["units"][0]: p["color"] for p in second["processes"].values()}
    assert {k: colours2[k] for k in colours} == colours
    assert colours2["DEMO/LOGGER"] == 4
    # Without it, LOGGER would have pushed SINK and SOURCE along: the previous state matters.
    fresh = gv.graph_state(demo_snapshot(with_extra_unit=True))
    assert {p["units"][0]: p["color"] for p in fresh["processes"].values()}["DEMO/SINK"] == 3

    # A freed colour is reused by the next new process.
    snap = demo_snapshot()
    del snap.processes[uuid.uuid5(uuid.NAMESPACE_URL, "DEMO/FILTER")]
    third = gv.graph_state(snap, previous=second)
    assert third["units"]["DEMO/FILTER"]["process_id"] is None
    assert sorted(p["color"] for p in third["processes"].values()) == [0, 2, 3]


def test_collection_topics_nested_groups_and_free_topics() -> None:
    inner = _unit("TOP/INNER/U", ["INPUT"], ["OUTPUT"])
    outer = _unit("TOP/V", ["INPUT"], [])
    topics = {
        "INPUT": InputTopicMetadata(name="INPUT", address="TOP/INNER/INPUT", msg_type="m.X"),
        "OUTPUT": OutputTopicMetadata(name="OUTPUT", address="TOP/INNER/OUTPUT", msg_type="m.X"),
    }
    components = {
        "TOP": _collection("TOP", ["TOP/INNER", "TOP/V"]),
        "TOP/INNER": _collection("TOP/INNER", ["TOP/INNER/U"], topics),
        "TOP/INNER/U": inner,
        "TOP/V": outer,
    }
    edges = [
        Edge("TOP/INNER/INPUT", "TOP/INNER/U/INPUT"),
        Edge("TOP/INNER/U/OUTPUT", "TOP/INNER/OUTPUT"),
        Edge("TOP/INNER/OUTPUT", "TOP/V/INPUT"),
        # A low-level publisher's topic that no component declares.
        Edge("scratch/probe", "TOP/INNER/INPUT"),
    ]
    snap = GraphSnapshot(
        graph={},
        edge_owners={},
        sessions={
            "s1": SnapshotSession(edges=edges[:3], metadata=GraphMetadata(1, None, components)),
            "s2": SnapshotSession(edges=edges[3:], metadata=None),
        },
        processes={},
    )
    state = gv.graph_state(snap)
    assert state["groups"]["TOP/INNER"]["parent"] == "TOP"
    assert state["groups"]["TOP/INNER"]["path"] == ["TOP"]
    assert state["units"]["TOP/INNER/U"]["path"] == ["TOP", "TOP/INNER"]
    assert state["topics"]["TOP/INNER/INPUT"]["direction"] == "in"
    assert state["topics"]["TOP/INNER/OUTPUT"]["kind"] == "topic"
    assert state["topics"]["scratch/probe"]["kind"] == "free"
    assert state["topics"]["scratch/probe"]["parent"] is None
    probe = state["edges"][gv.edge_id("scratch/probe", "TOP/INNER/INPUT")]
    assert probe["owners"] == ["s2"]
    assert probe["source_node"] == "scratch/probe"
    assert probe["target_node"] == "TOP/INNER/INPUT"
    assert state["units"]["TOP/V"]["process_id"] is None


def test_diff_round_trips_and_is_small() -> None:
    old = gv.graph_state(demo_snapshot())
    new = gv.graph_state(demo_snapshot(with_extra_unit=True), previous=old)
    diff = gv.diff_state(old, new)
    assert diff["base"] == old["digest"] and diff["digest"] == new["digest"]
    units = diff["sections"]["units"]
    assert list(units["added"]) == ["DEMO/LOGGER"] and units["removed"] == []
    assert list(diff["sections"]["groups"]["changed"]) == ["DEMO"]  # children changed
    assert gv.diff_size(diff) < gv.state_size(new)
    before = copy.deepcopy(old)
    assert gv.apply_diff(old, diff) == new
    assert old == before  # not mutated
    back = gv.diff_state(new, old)
    assert back["sections"]["units"]["removed"] == ["DEMO/LOGGER"]
    assert gv.apply_diff(new, back) == old
    assert gv.diff_state(new, new)["sections"] == {}
    assert json.loads(json.dumps(diff)) == diff


def test_apply_diff_refuses_the_wrong_base() -> None:
    old = gv.graph_state(demo_snapshot())
    new = gv.graph_state(demo_snapshot(with_extra_unit=True), previous=old)
    diff = gv.diff_state(old, new)
    with pytest.raises(gv.DiffMismatchError, match="does not match"):
        gv.apply_diff(new, diff)
    tampered = copy.deepcopy(diff)
    tampered["sections"]["units"]["added"]["DEMO/LOGGER"]["name"] = "OTHER"
    with pytest.raises(gv.DiffMismatchError, match="expected"):
        gv.apply_diff(old, tampered)


def test_empty_state_diffs_to_a_full_graph() -> None:
    empty = gv.empty_state()
    full = gv.graph_state(demo_snapshot())
    assert gv.apply_diff(empty, gv.diff_state(empty, full)) == full


@pytest.mark.parametrize(
    ("inflight", "num_buffers", "level"),
    [(0, 32, "ok"), (15, 32, "ok"), (16, 32, "warn"), (28, 32, "warn"), (29, 32, "critical")],
)
def test_backpressure_levels_use_the_module_thresholds(inflight, num_buffers, level) -> None:
    assert ga.BACKPRESSURE_WARN == 0.5 and ga.BACKPRESSURE_CRITICAL == 0.9
    assert ga.backpressure_level(inflight, num_buffers) == level


def test_make_annotations_normalises_and_checks() -> None:
    src = ("DEMO/SOURCE/OUTPUT_SIGNAL", "DEMO/FILTER/INPUT_SIGNAL")
    ann = ga.make_annotations(
        edge_rates={src: 100.0},
        edge_channels={gv.edge_id(*src): ProfileChannelType.SHM},
        publishers={"DEMO/SOURCE/OUTPUT_SIGNAL": (30, 32)},
        publisher_rates={"DEMO/SOURCE/OUTPUT_SIGNAL": 99.5},
        unit_errors={"DEMO/FILTER": (3, "ValueError: cutoff_hz=600 must be below 500")},
        missing_processes=[uuid.UUID(int=1)],
    )
    assert ann["edges"][gv.edge_id(*src)] == {"rate_hz": 100.0, "channel": "SHM"}
    pub = ann["publishers"]["DEMO/SOURCE/OUTPUT_SIGNAL"]
    assert pub["level"] == "critical" and pub["fill"] == pytest.approx(30 / 32)
    assert pub["rate_hz"] == 99.5
    assert ann["units"]["DEMO/FILTER"]["errors"] == 3
    assert ann["missing_processes"] == [str(uuid.UUID(int=1))]
    assert ga.normalize_annotations(json.loads(json.dumps(ann))) == ann
    assert (
        ga.make_annotations(edge_rates={src: float("nan")})["edges"][gv.edge_id(*src)]["rate_hz"]
        is None
    )
    with pytest.raises(ValueError, match="channel kind"):
        ga.make_annotations(edge_channels={src: "UDP"})
    with pytest.raises(ValueError, match="rate"):
        ga.make_annotations(edge_rates={src: -1.0})
    with pytest.raises(ValueError, match="edge key"):
        ga.make_annotations(edge_rates={"no-arrow": 1.0})
    with pytest.raises(ValueError, match="unknown annotation keys"):
        ga.normalize_annotations({"edge": {}})


def test_graph_view_re_exports_the_annotations_api() -> None:
    # services/widgets.py (and users) import everything from graph_view.
    for name in ("make_annotations", "normalize_annotations", "backpressure_level", "edge_id"):
        assert getattr(gv, name) is getattr(ga, name)
    assert gv.BACKPRESSURE_WARN == ga.BACKPRESSURE_WARN
