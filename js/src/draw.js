// @ts-check
// SVG drawing of a laid-out graph, and in-place restyling for annotations (which change
// at 2 Hz and must not rebuild the DOM).
import { CARD, FONTS, textWidth } from "./layout.js";
import { shortType } from "./state.js";
import { hostColor, processColor } from "./style.js";

const NS = "http://www.w3.org/2000/svg";

/** Create an SVG element with attributes, appended to parent. */
export function svg(tag, attrs, parent) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  if (parent) parent.appendChild(e);
  return e;
}

function text(parent, x, y, str, cls, anchor) {
  const t = svg("text", { x, y, class: cls, "text-anchor": anchor || "start" }, parent);
  t.textContent = str;
  return t;
}

/** Orthogonal route with softly rounded corners. */
export function roundedPath(points, r = 6) {
  if (!points.length) return "";
  let d = `M${points[0].x},${points[0].y}`;
  for (let i = 1; i < points.length - 1; i++) {
    const p0 = points[i - 1];
    const p = points[i];
    const p1 = points[i + 1];
    const d0 = Math.hypot(p.x - p0.x, p.y - p0.y);
    const d1 = Math.hypot(p1.x - p.x, p1.y - p.y);
    const rr = Math.min(r, d0 / 2, d1 / 2);
    if (!rr) {
      d += ` L${p.x},${p.y}`;
      continue;
    }
    const a = { x: p.x - ((p.x - p0.x) / d0) * rr, y: p.y - ((p.y - p0.y) / d0) * rr };
    const b = { x: p.x + ((p1.x - p.x) / d1) * rr, y: p.y + ((p1.y - p.y) / d1) * rr };
    d += ` L${a.x},${a.y} Q${p.x},${p.y} ${b.x},${b.y}`;
  }
  const last = points[points.length - 1];
  return `${d} L${last.x},${last.y}`;
}

/** Where an edge's label goes: the middle of its longest horizontal run. */
function labelPoint(points) {
  let best = null;
  let bestLen = -1;
  for (let i = 1; i < points.length; i++) {
    const a = points[i - 1];
    const b = points[i];
    const len = Math.abs(b.x - a.x) + (a.y === b.y ? 1000 : 0);
    if (len > bestLen) {
      bestLen = len;
      best = { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 };
    }
  }
  return best || points[0];
}

/**
 * Draw the whole scene into `layer` (cleared first).
 * @returns {{units: Map<string, SVGGElement>, ports: Map<string, SVGCircleElement>, edges: Map<string, any>, groups: Map<string, SVGGElement>}}
 */
export function drawScene(layer, layout, state, prefix) {
  layer.replaceChildren();
  const groupsLayer = svg("g", { class: "ezg-groups" }, layer);
  const edgesLayer = svg("g", { class: "ezg-edges" }, layer);
  const nodesLayer = svg("g", { class: "ezg-nodes" }, layer);
  const labelsLayer = svg("g", { class: "ezg-labels" }, layer);
  const index = { units: new Map(), ports: new Map(), edges: new Map(), groups: new Map() };

  // Outer groups first so inner ones paint above them.
  const groupNodes = [...layout.nodes.values()].filter((n) => n.kind === "group");
  groupNodes.sort((a, b) => a.ref.path.length - b.ref.path.length);
  for (const n of groupNodes) {
    const g = svg("g", { class: "ezg-group", "data-group": n.ref.address }, groupsLayer);
    svg("rect", { x: n.x, y: n.y, width: n.w, height: n.h, rx: 10, class: "ezg-group-box" }, g);
    const toggle = svg("g", { class: "ezg-toggle", "data-toggle": n.ref.address }, g);
    svg("rect", { x: n.x + 10, y: n.y + 9, width: 20, height: 20, rx: 4 }, toggle);
    text(toggle, n.x + 20, n.y + 23.5, "\u2212", "", "middle");
    text(g, n.x + 38, n.y + 24, n.ref.name, "ezg-group-title");
    const sub = shortType(n.ref.component_type);
    text(g, n.x + 44 + textWidth(n.ref.name, FONTS.group), n.y + 24, sub, "ezg-group-sub");
    index.groups.set(n.ref.address, g);
  }

  for (const n of layout.nodes.values()) {
    if (n.kind === "unit") drawUnit(nodesLayer, n, index);
    else if (n.kind === "collapsed") drawCollapsed(nodesLayer, n, state);
    else if (n.kind === "topic") {
      const g = svg("g", { class: "ezg-topic", "data-topic": n.ref.address }, nodesLayer);
      svg("rect", { x: n.x, y: n.y, width: n.w, height: n.h, rx: n.h / 2 }, g);
      text(g, n.x + n.w / 2, n.y + n.h / 2 + 4, n.label, "", "middle");
    }
  }

  for (const e of layout.edges) {
    if (e.points.length < 2) continue;
    const d = roundedPath(e.points);
    const hit = svg("path", { d, class: "ezg-edge-hit", "data-edge": e.id }, edgesLayer);
    const path = svg(
      "path",
      { d, class: "ezg-edge", "marker-end": `url(#${prefix}-arrow)`, "data-edge": e.id },
      edgesLayer,
    );
    const lp = labelPoint(e.points);
    const label = svg("text", { x: lp.x, y: lp.y - 6, class: "ezg-edge-label", "text-anchor": "middle" }, labelsLayer);
    index.edges.set(e.id, { path, hit, label, members: e.members, source: e.source, target: e.target });
  }
  index.prefix = prefix;
  return index;
}

function drawUnit(layer, n, index) {
  const u = n.ref;
  const g = svg("g", { class: "ezg-unit", "data-address": u.address }, layer);
  svg("rect", { x: n.x, y: n.y, width: n.w, height: n.h, rx: 7, class: "ezg-card" }, g);
  // Process colour as a bar on the left edge of the card.
  const { x, y, h } = n;
  const bar = svg(
    "path",
    {
      d: `M${x + 6},${y} H${x + 7} A7,7 0 0 0 ${x},${y + 7} V${y + h - 7} A7,7 0 0 0 ${x + 7},${y + h} H${x + 6} Z`,
      class: "ezg-bar",
    },
    g,
  );
  bar.style.fill = processColor(n.color);
  text(g, n.x + 14, n.y + 21, u.name, "ezg-name");
  text(g, n.x + 14, n.y + 38, shortType(u.component_type), "ezg-type");
  if (u.pid != null) text(g, n.x + n.w - 10, n.y + 21, `pid ${u.pid}`, "ezg-meta", "end");
  if (n.hostColor != null && u.host) {
    const hostText = text(g, n.x + n.w - 10, n.y + 38, u.host, "ezg-meta ezg-host", "end");
    hostText.style.fill = hostColor(n.hostColor);
  }
  text(g, n.x + n.w - 10, n.y + 38, "missing", "ezg-missing-tag", "end");
  const rows = Math.max(n.visiblePorts.inputs.length, n.visiblePorts.outputs.length);
  if (rows)
    svg(
      "line",
      { x1: n.x + 6, x2: n.x + n.w, y1: n.y + CARD.header - 4, y2: n.y + CARD.header - 4, class: "ezg-sep" },
      g,
    );
  const colour = processColor(n.color);
  const draw = (list, side) => {
    list.forEach((p) => {
      const pos = n.ports.get(`p:${p.address}`);
      if (!pos) return;
      const c = svg("circle", { cx: pos.x, cy: pos.y, r: 4, class: "ezg-port", "data-port": p.address }, g);
      c.style.fill = colour;
      index.ports.set(p.address, c);
      if (side === "in") text(g, pos.x + 12, pos.y + 4, p.name, "ezg-port-label");
      else text(g, pos.x - 9, pos.y + 4, p.name, "ezg-port-label", "end");
    });
  };
  draw(n.visiblePorts.inputs, "in");
  draw(n.visiblePorts.outputs, "out");
  const err = svg("g", { class: "ezg-error" }, g);
  svg("circle", { cx: n.x + n.w - 2, cy: n.y + 2, r: 9 }, err);
  const errText = text(err, n.x + n.w - 2, n.y + 6.2, "!", "", "middle");
  index.units.set(u.address, { g, errText });
}

function drawCollapsed(layer, n, state) {
  const grp = n.ref;
  const g = svg("g", { class: "ezg-collapsed", "data-group": grp.address }, layer);
  svg("rect", { x: n.x, y: n.y, width: n.w, height: n.h, rx: 8, class: "ezg-card" }, g);
  const toggle = svg("g", { class: "ezg-toggle", "data-toggle": grp.address }, g);
  svg("rect", { x: n.x + 10, y: n.y + 9, width: 20, height: 20, rx: 4 }, toggle);
  text(toggle, n.x + 20, n.y + 23.5, "+", "", "middle");
  text(g, n.x + 38, n.y + 24, grp.name, "ezg-group-title");
  const inside = Object.values(state.units).filter((u) => (u.path || []).includes(grp.address)).length;
  text(
    g,
    n.x + 38,
    n.y + 43,
    `${inside} unit${inside === 1 ? "" : "s"} \u00b7 ${shortType(grp.component_type)}`,
    "ezg-group-sub",
  );
}

/**
 * Restyle in place: selection, errors, missing processes, backpressure, rates.
 */
export function applyAnnotations(index, state, ann, selected) {
  const missing = new Set(ann.missing_processes || []);
  const unitsAnn = ann.units || {};
  for (const [address, { g, errText }] of index.units) {
    const u = state.units[address];
    g.classList.toggle("ezg-selected", address === selected);
    g.classList.toggle("ezg-missing", !!(u?.process_id && missing.has(u.process_id)));
    const ua = unitsAnn[address];
    const hasErr = !!(ua && ua.errors > 0);
    g.classList.toggle("ezg-has-error", hasErr);
    errText.textContent = hasErr ? (ua.errors > 9 ? "9+" : String(ua.errors)) : "!";
  }
  const pubs = ann.publishers || {};
  for (const [topic, circle] of index.ports) {
    const level = pubs[topic] ? pubs[topic].level : "ok";
    circle.classList.toggle("ezg-warn", level === "warn");
    circle.classList.toggle("ezg-critical", level === "critical");
  }
  const edgesAnn = ann.edges || {};
  for (const e of index.edges.values()) {
    let rate = null;
    const kinds = new Set();
    let level = "ok";
    let anyMissing = false;
    for (const id of e.members) {
      const a = edgesAnn[id];
      if (a && a.rate_hz != null) rate = (rate || 0) + a.rate_hz;
      if (a?.channel) kinds.add(a.channel);
      const rec = state.edges[id];
      if (rec) {
        const p = pubs[rec.source];
        if (p && p.level === "critical") level = "critical";
        else if (p && p.level === "warn" && level !== "critical") level = "warn";
        const src = state.units[rec.source_node];
        const dst = state.units[rec.target_node];
        if ((src && missing.has(src.process_id)) || (dst && missing.has(dst.process_id))) anyMissing = true;
      }
    }
    e.path.classList.toggle("ezg-warn", level === "warn");
    e.path.classList.toggle("ezg-critical", level === "critical");
    e.path.classList.toggle("ezg-missing", anyMissing);
    const marker = level === "critical" ? "crit" : level === "warn" ? "warn" : anyMissing ? "muted" : "arrow";
    e.path.setAttribute("marker-end", `url(#${index.prefix}-${marker})`);
    const parts = [];
    if (rate != null) parts.push(formatRate(rate));
    if (kinds.size) parts.push([...kinds].sort().join("/"));
    e.label.textContent = parts.join(" \u00b7 ");
    e.rate = rate;
    e.kinds = [...kinds].sort();
  }
}

export function formatRate(hz) {
  if (hz == null) return "";
  if (hz >= 1000) return `${(hz / 1000).toFixed(hz >= 10000 ? 0 : 1)} kHz`;
  if (hz >= 100) return `${hz.toFixed(0)} Hz`;
  if (hz >= 10) return `${hz.toFixed(1)} Hz`;
  return `${hz.toFixed(2)} Hz`;
}

/** Arrow markers, one per edge style. */
export function drawDefs(svgRoot, prefix) {
  const defs = svg("defs", {}, svgRoot);
  const colors = { arrow: "#8c959f", warn: "#d4a72c", crit: "#cf222e", muted: "#c8cdd3" };
  for (const [name, color] of Object.entries(colors)) {
    const m = svg(
      "marker",
      {
        id: `${prefix}-${name}`,
        viewBox: "0 0 10 10",
        refX: 9,
        refY: 5,
        markerWidth: 7,
        markerHeight: 7,
        orient: "auto-start-reverse",
        markerUnits: "userSpaceOnUse",
      },
      defs,
    );
    svg("path", { d: "M0,1 L10,5 L0,9 z", fill: color }, m);
  }
  return defs;
}
