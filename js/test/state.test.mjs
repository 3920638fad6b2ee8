import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  applyDiff,
  emptyState,
  groupPath,
  hiddenBy,
  normalizeState,
  SECTIONS,
  shortType,
  visibleNode,
} from "../src/state.js";
import { smallState } from "./fixtures.mjs";

describe("normalizeState", () => {
  it("turns anything that is not an object into the empty state", () => {
    for (const raw of [null, undefined, "x", 3]) assert.deepEqual(normalizeState(raw), emptyState());
  });

  it("keeps what the model holds and fills missing or malformed sections", () => {
    const s = normalizeState({ digest: "d", units: { a: { address: "a" } }, edges: "bad", extra: 1 });
    assert.equal(s.digest, "d");
    assert.deepEqual(s.units, { a: { address: "a" } });
    assert.deepEqual(s.edges, {});
    assert.deepEqual(s.groups, {});
    assert.equal(/** @type {any} */ (s).extra, 1);
    for (const section of SECTIONS) assert.equal(typeof s[section], "object");
  });
});

describe("applyDiff", () => {
  const base = () => normalizeState({ digest: "d0", units: { a: { v: 1 }, b: { v: 2 } }, topics: { t: { v: 3 } } });

  it("adds, changes and removes records and takes the new digest, leaving the input alone", () => {
    const state = base();
    const before = structuredClone(state);
    const out = applyDiff(state, {
      base: "d0",
      digest: "d1",
      sections: { units: { removed: ["b"], added: { c: { v: 4 } }, changed: { a: { v: 9 } } } },
    });
    assert.deepEqual(out.units, { a: { v: 9 }, c: { v: 4 } });
    assert.deepEqual(out.topics, { t: { v: 3 } });
    assert.equal(out.digest, "d1");
    assert.deepEqual(state, before);
  });

  it("refuses a diff made for another state", () => {
    assert.throws(() => applyDiff(base(), { base: "other", digest: "d1", sections: {} }), /does not match/);
    assert.throws(() => applyDiff(base(), null), /does not match/);
  });

  it("refuses a diff that does not fit the records", () => {
    const cases = [
      [{ nodes: {} }, /unknown diff section nodes/],
      [{ units: { removed: ["zz"] } }, /removes absent units\[zz\]/],
      [{ units: { added: { a: {} } } }, /adds existing units\[a\]/],
      [{ topics: { changed: { zz: {} } } }, /changes absent topics\[zz\]/],
    ];
    for (const [sections, message] of cases) {
      assert.throws(() => applyDiff(base(), { base: "d0", digest: "d1", sections }), message);
    }
  });
});

describe("visibility", () => {
  it("hiddenBy gives the outermost collapsed group on the path", () => {
    assert.equal(hiddenBy(["A", "A/B"], new Set(["A/B", "A"])), "A");
    assert.equal(hiddenBy(["A", "A/B"], new Set(["A/B"])), "A/B");
    assert.equal(hiddenBy(["A"], new Set()), null);
  });

  it("groupPath lists the ancestors then the group, and nothing for an unknown group", () => {
    const state = normalizeState({ groups: { "A/B": { address: "A/B", path: ["A"] } } });
    assert.deepEqual(groupPath(state, "A/B"), ["A", "A/B"]);
    assert.deepEqual(groupPath(state, "nope"), []);
  });

  it("visibleNode is the entity's own node unless a collapsed group hides it", () => {
    const state = smallState();
    state.topics["G/X"] = { address: "G/X", name: "X", parent: "G", direction: null, kind: "inner", msg_type: null };
    const open = new Set();
    const folded = new Set(["G"]);
    assert.equal(visibleNode(state, open, "G/A"), "u:G/A");
    assert.equal(visibleNode(state, folded, "G/A"), "g:G");
    assert.equal(visibleNode(state, open, "T"), "t:T");
    assert.equal(visibleNode(state, folded, "T"), "t:T");
    assert.equal(visibleNode(state, open, "G/X"), "t:G/X");
    assert.equal(visibleNode(state, folded, "G/X"), "g:G");
    assert.equal(visibleNode(state, folded, "G"), "g:G");
    assert.equal(visibleNode(state, open, "missing"), null);
  });
});

describe("shortType", () => {
  it("keeps the class name of a dotted path", () => {
    assert.equal(shortType("ezmsg_lab.demo.units.Filter"), "Filter");
    assert.equal(shortType("Plain"), "Plain");
    assert.equal(shortType(null), "");
  });
});
