// The page's layout cache: what its key ignores and keeps, and that a recalled layout is a
// copy carrying the fresh records of the graph being drawn.
import assert from "node:assert/strict";
import { beforeEach, describe, it } from "node:test";
import { clearLayouts, recall, remember, topologyKey } from "../src/cache.js";
import { buildElkGraph } from "../src/layout.js";
import { smallState } from "./fixtures.mjs";

const layoutOf = () => ({
  nodes: new Map([
    ["u:G/A", { id: "u:G/A", x: 1, y: 2, w: 150, h: 80, ports: new Map([["p:G/A/OUTPUT", { x: 151, y: 50 }]]) }],
  ]),
  edges: [{ id: "e:1", source: "p:G/A/OUTPUT", target: "t:T", points: [{ x: 0, y: 0 }], members: ["old"] }],
  width: 300,
  height: 200,
  units: 2,
  wrapped: false,
  madeForWidth: 1000,
});

describe("topologyKey", () => {
  it("ignores position hints and the order they impose, not the graph", () => {
    const state = smallState();
    const fresh = topologyKey(buildElkGraph(state, new Set(), new Map()));
    const hinted = topologyKey(
      buildElkGraph(
        state,
        new Set(),
        new Map([
          ["u:G/B", { x: 0, y: 0 }],
          ["u:G/A", { x: 0, y: 500 }],
        ]),
      ),
    );
    assert.equal(hinted, fresh, "the same graph drawn in another order is the same topology");
    assert.notEqual(topologyKey(buildElkGraph(state, new Set(["G"]), new Map())), fresh, "folding changes it");
    delete state.edges[Object.keys(state.edges)[0]];
    assert.notEqual(topologyKey(buildElkGraph(state, new Set(), new Map())), fresh, "an edge less changes it");
  });
});

describe("remember / recall", () => {
  beforeEach(() => clearLayouts());

  it("gives back a copy of the geometry with the fresh records on it", () => {
    const layout = layoutOf();
    remember("k", layout);
    layout.nodes.get("u:G/A").x = 999; // the caller moves its own layout afterwards
    const fresh = {
      info: new Map([["u:G/A", { kind: "unit", color: 3 }]]),
      folded: new Map([["x", { id: "e:1", members: ["new"] }]]),
    };
    const got = recall("k", fresh);
    const a = got.nodes.get("u:G/A");
    assert.deepEqual([a.x, a.y, a.w, a.h, a.kind, a.color], [1, 2, 150, 80, "unit", 3]);
    assert.deepEqual(a.ports.get("p:G/A/OUTPUT"), { x: 151, y: 50 });
    assert.deepEqual(got.edges[0].members, ["new"]);
    assert.equal(got.madeForWidth, 1000);
    got.nodes.get("u:G/A").x = -5;
    assert.equal(recall("k", fresh).nodes.get("u:G/A").x, 1, "each recall is a fresh copy");
    assert.equal(recall("other", fresh), null);
  });

  it("keeps the most recently used layouts only", () => {
    for (let i = 0; i < 12; i++) remember(`k${i}`, layoutOf());
    const built = { info: new Map(), folded: new Map() };
    assert.equal(recall("k0", built), null, "the oldest went");
    assert.ok(recall("k11", built));
  });
});
