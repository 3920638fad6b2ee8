"""Run the graph widget's ESM outside Jupyter: a page with a fake anywidget model, and
synthetic snapshots of any size. Used by the browser tests, the graph widget's unit tests
and the benchmarks (test tooling: it is not part of the package).

The fake model implements what the widget uses of anywidget's model (``get``, ``set``,
``on``, ``off``, ``save_changes``, ``send``) and records what the widget did; it can drift
from the real one, which is why an end-to-end test in JupyterLab exists as well.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "ezmsg_lab" / "widgets" / "static" / "graph.js"

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>graph widget harness</title></head>
<body style="margin:0;padding:16px;background:#fff">
<div id="host" style="width:1100px"></div>
<script>
class FakeModel {
  constructor(data) {
    this.data = Object.assign({state: {}, annotations: {}, selected: "", collapsed: [],
                               js_error: "", height: 520}, data || {});
    this.handlers = {}; this.saved = 0; this.sent = []; this.setLog = [];
  }
  get(k) { return this.data[k]; }
  set(k, v) { this.data[k] = v; this.setLog.push([k, v]); this._emit("change:" + k, v); }
  on(name, fn) { (this.handlers[name] = this.handlers[name] || []).push(fn); }
  off(name, fn) {
    if (!name) { this.handlers = {}; return; }
    this.handlers[name] = (this.handlers[name] || []).filter((g) => fn && g !== fn);
  }
  save_changes() { this.saved += 1; }
  send(msg) { this.sent.push(JSON.parse(JSON.stringify(msg))); }
  _emit(name, ...args) { for (const f of [...(this.handlers[name] || [])]) f(...args); }
  // What the Python side does: change a trait, send a custom message.
  pySet(k, v) { this.data[k] = v; this._emit("change:" + k, v); }
  pyMsg(msg) { this._emit("msg:custom", msg, []); }
  listenerCount() { return Object.values(this.handlers).reduce((a, l) => a + l.length, 0); }
}
window.FakeModel = FakeModel;
window.loadWidget = async (src) => {
  const url = URL.createObjectURL(new Blob([src], {type: "text/javascript"}));
  window.widgetModule = (await import(url)).default;
  URL.revokeObjectURL(url);
};
window.mount = (data) => {
  const model = new FakeModel(data);
  const el = document.createElement("div");
  document.getElementById("host").appendChild(el);
  const cleanup = window.widgetModule.render({model, el});
  window.view = {model, el, cleanup};
  return true;
};
</script></body></html>
"""


def open_harness(page: Any, bundle: Path = BUNDLE) -> None:
    """Load the harness page and the widget bundle into a playwright ``page``, with the
    widget's stylesheet (its anywidget ``_css``: the ``.css`` beside the bundle) when it has
    one, as anywidget would add it to the document."""
    page.set_content(PAGE)
    css = bundle.with_suffix(".css")
    if css.exists():
        page.add_style_tag(content=css.read_text(encoding="utf-8"))
    page.evaluate("src => window.loadWidget(src)", bundle.read_text(encoding="utf-8"))


def synthetic_snapshot(
    n_units: int = 300, n_edges: int = 600, per_collection: int = 10, seed: int = 0
) -> Any:
    """A GraphSnapshot (ezmsg's own dataclasses) shaped like a big real pipeline.

    Units sit in collections of ``per_collection`` under one top collection, chained inside
    each collection with skip connections; between collections the first block fans out to
    the middle ones, which feed the last (a per-channel system), until ``n_edges`` edges
    exist. One process per unit, spread over two hosts.
    """
    from ezmsg.core.graphmeta import (
        CollectionMetadata,
        DynamicSettingsMetadata,
        Edge,
        GraphMetadata,
        GraphSnapshot,
        InputStreamMetadata,
        OutputStreamMetadata,
        SnapshotProcess,
        SnapshotSession,
        UnitMetadata,
    )

    n_coll = max(1, -(-n_units // per_collection))
    components: dict[str, Any] = {}
    addresses = []
    for i in range(n_units):
        coll = f"SYS/C{i // per_collection:02d}"
        addr = f"{coll}/U{i:03d}"
        addresses.append(addr)
        streams = {
            "INPUT": InputStreamMetadata(name="INPUT", address=f"{addr}/INPUT", msg_type="m.A"),
            "OUTPUT": OutputStreamMetadata(
                name="OUTPUT", address=f"{addr}/OUTPUT", msg_type="m.A", num_buffers=32
            ),
        }
        components[addr] = UnitMetadata(
            address=addr,
            name=f"U{i:03d}",
            component_type="bench.units.Stage",
            settings_type="bench.units.StageSettings",
            initial_settings=(None, {}),
            dynamic_settings=DynamicSettingsMetadata(False, None, None),
            settings_schema=None,
            streams=streams,
            tasks=[],
            main=None,
            threads=[],
        )
    for c in range(n_coll):
        coll = f"SYS/C{c:02d}"
        components[coll] = CollectionMetadata(
            address=coll,
            name=f"C{c:02d}",
            component_type="bench.units.Block",
            settings_type="bench.units.BlockSettings",
            initial_settings=(None, {}),
            dynamic_settings=DynamicSettingsMetadata(False, None, None),
            settings_schema=None,
            topics={},
            relays={},
            children=sorted(a for a in addresses if a.startswith(coll + "/")),
        )
    components["SYS"] = CollectionMetadata(
        address="SYS",
        name="SYS",
        component_type="bench.units.System",
        settings_type="bench.units.SystemSettings",
        initial_settings=(None, {}),
        dynamic_settings=DynamicSettingsMetadata(False, None, None),
        settings_schema=None,
        topics={},
        relays={},
        children=[f"SYS/C{c:02d}" for c in range(n_coll)],
    )
    pairs: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()

    def add(a: int, b: int) -> None:
        if len(pairs) < n_edges and a != b and (a, b) not in seen and 0 <= b < n_units:
            seen.add((a, b))
            pairs.append((a, b))

    for i in range(n_units - 1):
        if (i + 1) % per_collection:
            add(i, i + 1)
    for i in range(n_units):
        if i % per_collection + 2 < per_collection:
            add(i, i + 2)
    # Between collections: the shape of a per-channel system. The first block fans out to
    # the middle blocks (one per channel group), which all feed the last block.
    k = seed
    while len(pairs) < n_edges and n_coll > 2:
        c = 1 + k % (n_coll - 2)
        stage = (k // (n_coll - 2)) % per_collection
        if k % 2 == 0:
            add(stage, c * per_collection)
        else:
            add(c * per_collection + per_collection - 1, (n_coll - 1) * per_collection + stage)
        k += 1
        if k > seed + 50 * n_edges:
            break
    edges = [Edge(f"{addresses[a]}/OUTPUT", f"{addresses[b]}/INPUT") for a, b in pairs]
    graph: dict[str, list[str]] = {}
    for e in edges:
        graph.setdefault(e.from_topic, []).append(e.to_topic)
    session = "00000000-0000-0000-0000-00000000beef"
    processes = {}
    for i, addr in enumerate(addresses):
        pid = uuid.UUID(int=i + 1)
        processes[pid] = SnapshotProcess(pid, 10_000 + i, "node-a" if i % 2 else "node-b", [addr])
    return GraphSnapshot(
        graph=graph,
        edge_owners={e: [session] for e in edges},
        sessions={
            session: SnapshotSession(edges=edges, metadata=GraphMetadata(1, None, components))
        },
        processes=processes,
    )
