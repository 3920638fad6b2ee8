// @ts-check
// Layout with ELK (layered, compound nodes for collections). This module only turns the
// graph state into an ELK graph, has ELK run it (engine.js: in a Web Worker), and reads the
// result back; it places nothing itself apart from the ports' fixed slots on a unit's card.
import { FONTS } from "./fonts.js";
import { groupPath, hiddenBy, shortType, visibleNode } from "./state.js";

export { FONTS };

export const CARD = { header: 48, row: 19, pad: 8, minWidth: 150, port: 8 };
export const TOPIC_H = 26;
// Spacing is read from each compound node's own options (not inherited), so every group
// gets these too.
const SPACING = {
  // Wide enough between layers for a rate label ("12.3 kHz · SHM"): rates change at
  // 2 Hz and must never move nodes, so the room is always there.
  "elk.layered.spacing.nodeNodeBetweenLayers": "88",
  "elk.spacing.nodeNode": "24",
  "elk.spacing.edgeNode": "16",
  "elk.spacing.edgeEdge": "10",
  "elk.layered.spacing.edgeNodeBetweenLayers": "16",
};

const BASE_OPTIONS = {
  "elk.algorithm": "layered",
  "elk.direction": "RIGHT",
  "elk.hierarchyHandling": "INCLUDE_CHILDREN",
  "elk.edgeRouting": "ORTHOGONAL",
  ...SPACING,
  "elk.padding": "[top=8,left=8,bottom=8,right=8]",
  // Same input order, same drawing: keeps a re-layout close to the last one.
  "elk.layered.considerModelOrder.strategy": "NODES_AND_EDGES",
  "elk.json.edgeCoords": "ROOT",
  "elk.json.shapeCoords": "ROOT",
};

// No "cheaper settings for big graphs": thoroughness 1, no greedy switch, longest-path
// layering and Brandes-Koepf placement were set on the root above 120 nodes, and were
// inert. ELK reads them from each compound node's own options, and the root's children are
// collections, so the drawings came out identical. Set on every collection, they moved
// nodes by about 9 % of the drawing and were no faster (300 units: 1445 vs 1396 ms cold,
// 376 vs 333 ms warm, node 20, median of 5 processes).

const measureCache = new Map();
let measureCtx = null;
/** Text width in px, measured with a canvas so cards fit the fonts this browser has. */
export function textWidth(text, font) {
  const key = `${font}\u0000${text}`;
  let w = measureCache.get(key);
  if (w === undefined) {
    if (!measureCtx && typeof document !== "undefined") measureCtx = document.createElement("canvas").getContext("2d");
    if (measureCtx) {
      measureCtx.font = font;
      w = measureCtx.measureText(text).width;
    } else {
      w = text.length * 7;
    }
    if (measureCache.size > 5000) measureCache.clear();
    measureCache.set(key, w);
  }
  return w;
}

/**
 * The ports a unit shows: its data streams, and its settings input only when wired.
 * @param {any} unit
 * @param {Set<string>} wired topics that take part in an edge
 */
export function visiblePorts(unit, wired) {
  const keep = (s) => !s.settings || wired.has(s.address);
  return { inputs: (unit.inputs || []).filter(keep), outputs: (unit.outputs || []).filter(keep) };
}

function cardSize(unit, ports, showHost) {
  const rows = Math.max(ports.inputs.length, ports.outputs.length);
  const maxIn = Math.max(0, ...ports.inputs.map((p) => textWidth(p.name, FONTS.port)));
  const maxOut = Math.max(0, ...ports.outputs.map((p) => textWidth(p.name, FONTS.port)));
  const pidText = unit.pid != null ? `pid ${unit.pid}` : "";
  const w = Math.max(
    CARD.minWidth,
    textWidth(unit.name, FONTS.name) + textWidth(pidText, FONTS.meta) + 44,
    textWidth(shortType(unit.component_type), FONTS.type) +
      (showHost && unit.host ? textWidth(unit.host, FONTS.meta) + 16 : 0) +
      32,
    maxIn + maxOut + 56,
  );
  const h = rows ? CARD.header + rows * CARD.row + CARD.pad : CARD.header;
  return { w: Math.ceil(w), h };
}

/**
 * Build the ELK graph of what is visible.
 * @param {import("./state.js").GraphState} state
 * @param {Set<string>} collapsed
 * @param {Map<string,{x:number,y:number}>} previous positions of the last layout (by node id)
 * @param {{aspect?: number, strategy?: string}} [opts] aspect: wrap the layers into rows
 *   aiming at this width / height ratio (a long chain in a narrow widget), with ELK's
 *   wrapping `strategy` (default MULTI_EDGE); else one row of layers
 */
export function buildElkGraph(state, collapsed, previous, opts = {}) {
  const wired = new Set();
  for (const e of Object.values(state.edges)) {
    wired.add(e.source);
    wired.add(e.target);
  }
  // New nodes get a position hint below everything drawn so far: with semi-interactive
  // crossing minimisation they go after the nodes already in their layer, which keep
  // their places.
  let hintY = 0;
  for (const p of previous.values()) hintY = Math.max(hintY, p.y + 100);
  const place = (node, id) => {
    const prev = previous.get(id);
    if (prev) Object.assign(node, { x: prev.x, y: prev.y });
    else if (previous.size) {
      hintY += 10;
      Object.assign(node, { x: 0, y: hintY });
    }
  };
  /** @type {Map<string, any>} */
  const containers = new Map();
  const root = { id: "root", children: [], edges: [] };
  containers.set(null, root);
  const info = new Map(); // ELK id -> {kind, ref, ...}

  const groups = Object.values(state.groups).sort((a, b) => a.path.length - b.path.length || cmp(a.address, b.address));
  for (const g of groups) {
    const hidden = hiddenBy(g.path || [], collapsed);
    if (hidden) continue;
    const id = `g:${g.address}`;
    const isCollapsed = collapsed.has(g.address);
    const label = `${g.name}`;
    const node = {
      id,
      children: [],
      layoutOptions: isCollapsed ? {} : { ...SPACING, "elk.padding": "[top=42,left=12,bottom=12,right=12]" },
    };
    if (isCollapsed) {
      node.width = Math.ceil(Math.max(180, textWidth(label, FONTS.group) + 70));
      node.height = 56;
    }
    info.set(id, { kind: isCollapsed ? "collapsed" : "group", ref: g });
    const parent =
      containers.get(g.parent && !hiddenBy(groupPath(state, g.parent), collapsed) ? `g:${g.parent}` : null) || root;
    parent.children.push(node);
    containers.set(id, node);
  }
  const containerOf = (groupId) => (groupId ? containers.get(`g:${groupId}`) : null) || root;

  const multiHost = Object.keys(state.hosts || {}).length > 1;
  const units = Object.values(state.units).sort((a, b) => cmp(a.address, b.address));
  for (const u of units) {
    if (hiddenBy(u.path || [], collapsed)) continue;
    const ports = visiblePorts(u, wired);
    const { w, h } = cardSize(u, ports, multiHost);
    const id = `u:${u.address}`;
    const elkPorts = [];
    ports.inputs.forEach((p, i) => {
      elkPorts.push({
        id: `p:${p.address}`,
        width: CARD.port,
        height: CARD.port,
        x: -CARD.port / 2,
        y: CARD.header + i * CARD.row + CARD.row / 2 - CARD.port / 2,
        layoutOptions: { "elk.port.side": "WEST" },
      });
    });
    ports.outputs.forEach((p, i) => {
      elkPorts.push({
        id: `p:${p.address}`,
        width: CARD.port,
        height: CARD.port,
        x: w - CARD.port / 2,
        y: CARD.header + i * CARD.row + CARD.row / 2 - CARD.port / 2,
        layoutOptions: { "elk.port.side": "EAST" },
      });
    });
    const node = { id, width: w, height: h, ports: elkPorts, layoutOptions: { "elk.portConstraints": "FIXED_POS" } };
    place(node, id);
    const proc = u.process_id ? state.processes[u.process_id] : null;
    info.set(id, {
      kind: "unit",
      ref: u,
      visiblePorts: ports,
      color: proc ? proc.color : -1,
      // Host colour only matters (and is drawn) when the graph spans several hosts.
      hostColor: proc && multiHost ? proc.host_color : null,
    });
    containerOf(u.collection).children.push(node);
  }

  const topics = Object.values(state.topics).sort((a, b) => cmp(a.address, b.address));
  for (const t of topics) {
    if (t.parent && hiddenBy(groupPath(state, t.parent), collapsed)) continue;
    const id = `t:${t.address}`;
    const label = t.kind === "free" ? t.address : t.name;
    const node = { id, width: Math.ceil(textWidth(label, FONTS.topic) + 28), height: TOPIC_H };
    place(node, id);
    info.set(id, { kind: "topic", ref: t, label });
    containerOf(t.parent).children.push(node);
  }

  // Edges: endpoints are ports when the unit is visible, else the node that hides them.
  // Several edges may fold into one when a group is collapsed.
  const folded = new Map();
  const edges = Object.values(state.edges).sort((a, b) => cmp(a.id, b.id));
  for (const e of edges) {
    const s = endpoint(state, collapsed, e.source_node, e.source, info);
    const t = endpoint(state, collapsed, e.target_node, e.target, info);
    if (!s || !t || s.node === t.node) continue;
    const key = `${s.ref}=>${t.ref}`;
    let f = folded.get(key);
    if (!f) {
      f = { id: `e:${key}`, sources: [s.ref], targets: [t.ref], members: [] };
      folded.set(key, f);
      root.edges.push({ id: f.id, sources: f.sources, targets: f.targets, _s: s.node, _t: t.node });
    }
    f.members.push(e.id);
  }
  // Model order = drawing order: nodes drawn before keep their top-to-bottom order and
  // new ones come after, so ELK (which respects model order) leaves the old ones be.
  const rank = (n) => {
    const p = previous.get(n.id);
    return p ? [0, p.y, p.x] : [1, 0, 0];
  };
  for (const c of containers.values()) {
    c.children.sort((a, b) => {
      const ra = rank(a);
      const rb = rank(b);
      return ra[0] - rb[0] || ra[1] - rb[1] || ra[2] - rb[2] || cmp(a.id, b.id);
    });
  }
  // Edges in the same spirit (ELK orders a port's edges, and so their targets, by them).
  const nodeRank = (id) => rank({ id });
  const cmpRank = (ra, rb) => ra[0] - rb[0] || ra[1] - rb[1] || ra[2] - rb[2];
  root.edges.sort(
    (a, b) => cmpRank(nodeRank(a._t), nodeRank(b._t)) || cmpRank(nodeRank(a._s), nodeRank(b._s)) || cmp(a.id, b.id),
  );
  for (const e of root.edges) {
    delete e._s;
    delete e._t;
  }
  const visibleCount = info.size;
  root.layoutOptions = { ...BASE_OPTIONS };
  if (opts.aspect) {
    // ELK cuts the layer sequence into chunks placed one under the other. Like spacing,
    // ELK reads this from each compound node's own options.
    const wrap = {
      "elk.layered.wrapping.strategy": opts.strategy || "MULTI_EDGE",
      "elk.aspectRatio": opts.aspect.toFixed(2),
    };
    for (const c of containers.values()) {
      if (c === root || c.layoutOptions["elk.padding"]) c.layoutOptions = { ...c.layoutOptions, ...wrap };
    }
    Object.assign(root.layoutOptions, wrap);
  }
  if (previous.size) {
    // Order nodes inside each layer as they were drawn last time (new ones fit in).
    root.layoutOptions["elk.layered.crossingMinimization.semiInteractive"] = "true";
  }
  const unitCount = [...info.values()].filter((i) => i.kind === "unit").length;
  return { graph: root, info, folded, units: unitCount, nodes: visibleCount };
}

function endpoint(state, collapsed, nodeAddress, topic, info) {
  const node = visibleNode(state, collapsed, nodeAddress);
  if (!node || !info.has(node)) return null;
  if (node.startsWith("u:")) {
    const ports = info.get(node).visiblePorts;
    const all = [...ports.inputs, ...ports.outputs];
    if (all.some((p) => p.address === topic)) return { node, ref: `p:${topic}` };
  }
  return { node, ref: node };
}

function cmp(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Run ELK and read back absolute boxes and edge routes.
 * @param {any} built what buildElkGraph made
 * @param {(graph: any) => Promise<any>} layoutGraph ELK's `layout` (engine.js in the widget)
 * @returns {Promise<{nodes: Map<string, any>, edges: any[], width:number, height:number}>}
 */
export async function runLayout(built, layoutGraph) {
  const out = await layoutGraph(built.graph);
  const nodes = new Map();
  const walk = (n) => {
    for (const c of n.children || []) {
      nodes.set(c.id, {
        id: c.id,
        x: c.x,
        y: c.y,
        w: c.width,
        h: c.height,
        // shapeCoords ROOT: ports are absolute too.
        ports: new Map((c.ports || []).map((p) => [p.id, { x: p.x + p.width / 2, y: p.y + p.height / 2 }])),
        ...built.info.get(c.id),
      });
      walk(c);
    }
  };
  walk(out);
  const edges = [];
  const byId = new Map([...built.folded.values()].map((f) => [f.id, f]));
  const collect = (n) => {
    for (const e of n.edges || []) {
      const f = byId.get(e.id);
      const points = [];
      for (const s of e.sections || []) {
        points.push(s.startPoint, ...(s.bendPoints || []), s.endPoint);
      }
      edges.push({ id: e.id, points, members: f ? f.members : [], source: e.sources[0], target: e.targets[0] });
    }
    for (const c of n.children || []) collect(c);
  };
  collect(out);
  return { nodes, edges, width: out.width, height: out.height };
}

/**
 * Shift a new layout so the nodes that were already drawn stay where they were (median
 * offset): ELK recentres the drawing when something is added, which would make every
 * node jump. Mutates and returns the layout.
 */
export function alignToPrevious(layout, previous) {
  const dx = [];
  const dy = [];
  for (const [id, n] of layout.nodes) {
    const p = previous.get(id);
    if (p) {
      dx.push(p.x - n.x);
      dy.push(p.y - n.y);
    }
  }
  if (!dx.length) return layout;
  const med = (v) => v.sort((a, b) => a - b)[Math.floor(v.length / 2)];
  const ox = med(dx);
  const oy = med(dy);
  if (!ox && !oy) return layout;
  for (const n of layout.nodes.values()) {
    n.x += ox;
    n.y += oy;
    for (const p of n.ports.values()) {
      p.x += ox;
      p.y += oy;
    }
  }
  for (const e of layout.edges) e.points = e.points.map((p) => ({ x: p.x + ox, y: p.y + oy }));
  return layout;
}

/** The ELK input without positions: equal keys mean the same layout can be reused. */
export function layoutKey(built) {
  return JSON.stringify(built.graph, (k, v) => (k === "x" || k === "y" ? undefined : v));
}
