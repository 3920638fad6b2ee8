// The layout module outside a browser: the ELK input it builds (options, ports, folding,
// position hints), the key that decides when a layout is reused, the alignment with the
// previous drawing, and a real ELK run. Text is measured as 7 px a character here (no
// canvas), so sizes are only compared, never pinned.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { alignToPrevious, buildElkGraph, CARD, layoutKey, runLayout, visiblePorts } from "../src/layout.js";
import ELK from "elkjs/lib/elk.bundled.js";
import { smallState } from "./fixtures.mjs";

// In the widget ELK runs in a Web Worker (src/engine.js); here in this thread.
const elk = new ELK();
const layoutGraph = (graph) => elk.layout(graph);

const ids = (nodes) => nodes.map((n) => n.id);

describe("buildElkGraph", () => {
  it("nests units in their collection with fixed ports and links the streams' ports", () => {
    const built = buildElkGraph(smallState(), new Set(), new Map());
    const root = built.graph;
    assert.equal(root.layoutOptions["elk.algorithm"], "layered");
    assert.equal(root.layoutOptions["elk.direction"], "RIGHT");
    assert.deepEqual(ids(root.children).sort(), ["g:G", "t:T"]);
    const group = root.children.find((n) => n.id === "g:G");
    assert.deepEqual(ids(group.children), ["u:G/A", "u:G/B"]);
    const a = group.children[0];
    assert.equal(a.layoutOptions["elk.portConstraints"], "FIXED_POS");
    // The unwired settings input is not drawn: one port (the output) on the east side.
    assert.deepEqual(
      a.ports.map((p) => [p.id, p.layoutOptions["elk.port.side"]]),
      [["p:G/A/OUTPUT", "EAST"]],
    );
    assert.equal(a.height, CARD.header + CARD.row + CARD.pad);
    assert.ok(a.width >= CARD.minWidth);
    assert.deepEqual(
      root.edges.map((e) => [e.sources[0], e.targets[0]]),
      [
        ["p:G/A/OUTPUT", "p:G/B/INPUT"],
        ["p:G/B/OUTPUT", "t:T"],
      ],
    );
    assert.equal(built.units, 2);
    assert.equal(built.nodes, 4);
  });

  it("folds a collapsed collection into one node and drops the edges inside it", () => {
    const built = buildElkGraph(smallState(), new Set(["G"]), new Map());
    const group = built.graph.children.find((n) => n.id === "g:G");
    assert.deepEqual(group.children, []);
    assert.ok(group.width >= 180 && group.height === 56);
    assert.equal(built.info.get("g:G").kind, "collapsed");
    assert.deepEqual(
      built.graph.edges.map((e) => [e.sources[0], e.targets[0]]),
      [["g:G", "t:T"]],
    );
    assert.equal(built.units, 0);
  });

  it("asks ELK to wrap layers to an aspect ratio, on the root and every expanded group", () => {
    const built = buildElkGraph(smallState(), new Set(), new Map(), { aspect: 1.5, strategy: "SINGLE_EDGE" });
    const group = built.graph.children.find((n) => n.id === "g:G");
    for (const options of [built.graph.layoutOptions, group.layoutOptions]) {
      assert.equal(options["elk.aspectRatio"], "1.50");
      assert.equal(options["elk.layered.wrapping.strategy"], "SINGLE_EDGE");
    }
  });

  it("keeps drawn nodes where they were and hints new ones below them", () => {
    const previous = new Map([["u:G/B", { x: 300, y: 40 }]]);
    const built = buildElkGraph(smallState(), new Set(), previous);
    assert.equal(built.graph.layoutOptions["elk.layered.crossingMinimization.semiInteractive"], "true");
    const group = built.graph.children.find((n) => n.id === "g:G");
    const [first, second] = group.children;
    assert.deepEqual([first.id, first.x, first.y], ["u:G/B", 300, 40], "drawn nodes come first, in place");
    assert.equal(second.id, "u:G/A");
    assert.ok(second.y > 40 + 100, `a new node is hinted below the drawing (y=${second.y})`);
  });
});

describe("visiblePorts", () => {
  it("shows a settings input only when an edge uses it", () => {
    const unit = smallState().units["G/A"];
    assert.deepEqual(visiblePorts(unit, new Set()).inputs, []);
    assert.deepEqual(
      visiblePorts(unit, new Set(["G/A/INPUT_SETTINGS"])).inputs.map((p) => p.address),
      ["G/A/INPUT_SETTINGS"],
    );
  });
});

describe("layoutKey", () => {
  it("ignores position hints and changes with the graph", () => {
    const state = smallState();
    const at = (x, y) => layoutKey(buildElkGraph(state, new Set(), new Map([["u:G/A", { x, y }]])));
    const fresh = layoutKey(buildElkGraph(state, new Set(), new Map()));
    const folded = layoutKey(buildElkGraph(state, new Set(["G"]), new Map()));
    assert.equal(at(5, 6), at(500, 600), "the same graph hinted elsewhere is the same layout");
    assert.notEqual(fresh, folded);
    assert.notEqual(fresh, at(5, 6), "a re-layout keeps the order of the last drawing (semi-interactive)");
  });
});

describe("alignToPrevious", () => {
  const layout = () => ({
    nodes: new Map([
      ["a", { x: 0, y: 0, ports: new Map([["p", { x: 1, y: 1 }]]) }],
      ["b", { x: 10, y: 0, ports: new Map() }],
      ["c", { x: 20, y: 0, ports: new Map() }],
    ]),
    edges: [{ points: [{ x: 0, y: 0 }] }],
  });

  it("shifts everything by the median offset of the nodes drawn before", () => {
    const previous = new Map([
      ["a", { x: 5, y: 3 }],
      ["b", { x: 15, y: 3 }],
      ["c", { x: 100, y: 3 }],
    ]);
    const out = alignToPrevious(layout(), previous);
    assert.deepEqual(
      [...out.nodes.values()].map((n) => [n.x, n.y]),
      [
        [5, 3],
        [15, 3],
        [25, 3],
      ],
    );
    assert.deepEqual(out.nodes.get("a").ports.get("p"), { x: 6, y: 4 });
    assert.deepEqual(out.edges[0].points, [{ x: 5, y: 3 }]);
  });

  it("leaves a layout with nothing drawn before as it is", () => {
    const out = alignToPrevious(layout(), new Map());
    assert.deepEqual(
      [...out.nodes.values()].map((n) => n.x),
      [0, 10, 20],
    );
  });
});

describe("runLayout", () => {
  it("places every node and routes every edge with ELK", async () => {
    const built = buildElkGraph(smallState(), new Set(), new Map());
    const out = await runLayout(built, layoutGraph);
    assert.deepEqual([...out.nodes.keys()].sort(), ["g:G", "t:T", "u:G/A", "u:G/B"]);
    const a = out.nodes.get("u:G/A");
    const b = out.nodes.get("u:G/B");
    assert.ok(a.x + a.w <= b.x, "data flows left to right");
    assert.equal(a.kind, "unit");
    assert.ok(a.ports.has("p:G/A/OUTPUT"));
    assert.equal(out.edges.length, 2);
    for (const e of out.edges) assert.ok(e.points.length >= 2, `edge ${e.id} is routed`);
    assert.ok(out.width > 0 && out.height > 0);
  });
});
