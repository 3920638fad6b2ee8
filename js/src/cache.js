// @ts-check
// Layouts by topology, shared by every view on the page: a graph drawn before (another
// view of it, the same view re-rendered, a topology that comes back after a change) reuses
// its positions and routes instead of running ELK again. Only geometry is kept; the
// records drawn on it (names, colours, pids, folded edge members) are always the fresh ones.

const MAX_ENTRIES = 8;
/** @type {Map<string, any>} key -> geometry, most recently used last */
const entries = new Map();

/**
 * What decides a layout, and nothing else: the ELK input without position hints, without
 * the order those hints impose (children, ports and edges sorted by id) and without the
 * option that asks ELK to keep them.
 * @param {{graph: any}} built what layout.js's buildElkGraph made
 */
export function topologyKey(built) {
  const byId = (a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  return JSON.stringify(built.graph, (k, v) => {
    if (k === "x" || k === "y" || k === "elk.layered.crossingMinimization.semiInteractive") return undefined;
    if ((k === "children" || k === "edges" || k === "ports") && Array.isArray(v)) return [...v].sort(byId);
    return v;
  });
}

function copyGeometry(layout) {
  const nodes = new Map();
  for (const [id, n] of layout.nodes) {
    const ports = new Map();
    for (const [pid, p] of n.ports) ports.set(pid, { x: p.x, y: p.y });
    nodes.set(id, { id, x: n.x, y: n.y, w: n.w, h: n.h, ports });
  }
  const edges = layout.edges.map((e) => ({
    id: e.id,
    source: e.source,
    target: e.target,
    points: e.points.map((p) => ({ x: p.x, y: p.y })),
  }));
  const { width, height, units, wrapped, madeForWidth } = layout;
  return { nodes, edges, width, height, units, wrapped, madeForWidth };
}

/**
 * Keep a layout's geometry under its topology key.
 * @param {string} key
 * @param {any} layout runLayout's result (with `madeForWidth`, the drawing width it was made for)
 */
export function remember(key, layout) {
  entries.delete(key);
  entries.set(key, copyGeometry(layout));
  while (entries.size > MAX_ENTRIES) entries.delete(entries.keys().next().value);
}

/**
 * A layout made before for this topology, with the fresh records of `built` on it (a copy:
 * the caller may move it), or null.
 * @param {string} key
 * @param {{info: Map<string, any>, folded: Map<string, any>}} built
 */
export function recall(key, built) {
  const hit = entries.get(key);
  if (!hit) return null;
  entries.delete(key);
  entries.set(key, hit);
  return dressed(hit, built);
}

/** A copy of `geometry` with the fresh records of `built` on it. */
function dressed(geometry, built) {
  const layout = copyGeometry(geometry);
  for (const [id, n] of layout.nodes) Object.assign(n, built.info.get(id));
  const byId = new Map([...built.folded.values()].map((f) => [f.id, f]));
  for (const e of layout.edges) e.members = (byId.get(e.id) || { members: [] }).members;
  return layout;
}

/**
 * A short fingerprint of a topology key (two 32-bit hashes, FNV-1a and a multiply-xorshift
 * mix, and the key's length), to name a layout kept by the kernel (graph.py's LayoutStore) without
 * sending the key itself.
 * @param {string} key
 */
export function keyHash(key) {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ key.length;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995) ^ (b >>> 15);
  }
  const hex = (v) => (v >>> 0).toString(16).padStart(8, "0");
  return `${hex(a)}${hex(b)}-${key.length}`;
}

const r1 = (v) => Math.round(v * 10) / 10;

/**
 * A layout's geometry as plain JSON (for the kernel to keep): arrays, 0.1 px.
 * @param {any} layout runLayout's result (with `madeForWidth`)
 */
export function toPlain(layout) {
  const g = copyGeometry(layout);
  return {
    nodes: [...g.nodes.values()].map((n) => [
      n.id,
      r1(n.x),
      r1(n.y),
      r1(n.w),
      r1(n.h),
      [...n.ports].map(([pid, p]) => [pid, r1(p.x), r1(p.y)]),
    ]),
    edges: g.edges.map((e) => [e.id, e.source, e.target, e.points.flatMap((p) => [r1(p.x), r1(p.y)])]),
    width: g.width,
    height: g.height,
    units: g.units,
    wrapped: Boolean(g.wrapped),
    madeForWidth: g.madeForWidth || 0,
  };
}

/**
 * Geometry kept by the kernel (`toPlain`), with the fresh records of `built` on it, or
 * null when it does not fit `built` exactly (the same nodes, ports and edges).
 * @param {any} plain
 * @param {{graph: any, info: Map<string, any>, folded: Map<string, any>}} built
 */
export function fromPlain(plain, built) {
  try {
    const nodes = new Map();
    for (const [id, x, y, w, h, ports] of plain.nodes) {
      if (!built.info.has(id)) return null;
      nodes.set(id, { id, x, y, w, h, ports: new Map(ports.map(([pid, px, py]) => [pid, { x: px, y: py }])) });
    }
    if (nodes.size !== built.info.size) return null;
    const edges = plain.edges.map(([id, source, target, flat]) => {
      const points = [];
      for (let i = 0; i + 1 < flat.length; i += 2) points.push({ x: flat[i], y: flat[i + 1] });
      return { id, source, target, points };
    });
    const wanted = new Set((built.graph.edges || []).map((e) => e.id));
    if (edges.length !== wanted.size || !edges.every((e) => wanted.has(e.id))) return null;
    const { width, height, units, wrapped, madeForWidth } = plain;
    return dressed({ nodes, edges, width, height, units, wrapped, madeForWidth }, built);
  } catch {
    return null; // not what toPlain makes: ignored, ELK lays the graph out
  }
}

/** Forget every layout (tests). */
export function clearLayouts() {
  entries.clear();
}
