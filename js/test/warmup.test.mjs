// The made-up pipeline the layout worker warms ELK up with (src/warmup.js): it must be a
// valid graph state that takes ELK through what real topologies do (collections, fixed
// ports, routes between collections), or the warm-up would warm the wrong code, or fail.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import ELK from "elkjs/lib/elk.bundled.js";
import { buildElkGraph, runLayout } from "../src/layout.js";
import { warmupState } from "../src/warmup.js";

describe("warmupState", () => {
  it("nests units in collections, wired within and across them", () => {
    const state = warmupState(4, 5);
    assert.equal(Object.keys(state.units).length, 20);
    assert.deepEqual(state.groups.W.children, ["W/G0", "W/G1", "W/G2", "W/G3"]);
    const across = Object.values(state.edges).filter(
      (e) => state.units[e.source_node].collection !== state.units[e.target_node].collection,
    );
    assert.equal(across.length, 4, "the first collection feeds the middle ones, which feed the last");
    for (const e of Object.values(state.edges)) {
      assert.ok(
        state.units[e.source_node].outputs.some((s) => s.address === e.source),
        e.id,
      );
      assert.ok(
        state.units[e.target_node].inputs.some((s) => s.address === e.target),
        e.id,
      );
    }
  });

  it("lays out with ELK, one row and wrapped, every edge routed between ports", async () => {
    const elk = new ELK();
    for (const opts of [{}, { aspect: 1.2, strategy: "MULTI_EDGE" }]) {
      const built = buildElkGraph(warmupState(), new Set(), new Map(), opts);
      assert.equal(built.units, 20);
      const layout = await runLayout(built, (g) => elk.layout(g));
      assert.equal(layout.edges.length, Object.keys(warmupState().edges).length);
      for (const e of layout.edges) {
        assert.ok(e.source.startsWith("p:") && e.target.startsWith("p:"), e.id);
        assert.ok(e.points.length >= 2, e.id);
      }
    }
  });
});
