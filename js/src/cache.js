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
  const layout = copyGeometry(hit);
  for (const [id, n] of layout.nodes) Object.assign(n, built.info.get(id));
  const byId = new Map([...built.folded.values()].map((f) => [f.id, f]));
  for (const e of layout.edges) e.members = (byId.get(e.id) || { members: [] }).members;
  return layout;
}

/** Forget every layout (tests). */
export function clearLayouts() {
  entries.clear();
}
