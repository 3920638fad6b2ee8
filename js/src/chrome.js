// @ts-check
// The widget's chrome around the drawing: the legend and the hover tooltips.
import { formatRate } from "./draw.js";
import { hostColor, processColor } from "./style.js";

const MAX_LEGEND_PROCESSES = 12;

/** A div with a class, optional parent and text (shared by the widget's DOM code). */
export function div(cls, parent, textContent) {
  const d = document.createElement("div");
  if (cls) d.className = cls;
  if (textContent !== undefined) d.textContent = textContent;
  if (parent) parent.appendChild(d);
  return d;
}

export function escapeHtml(s) {
  return String(s).replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c],
  );
}

/** Processes (by host) with their colours, or one row per host when there are many. */
export function drawLegend(legend, state, ann) {
  const missing = new Set(ann.missing_processes || []);
  const procs = Object.values(state.processes).sort((a, b) => a.color - b.color);
  legend.replaceChildren();
  legend.style.display = procs.length ? "" : "none";
  if (!procs.length) return;
  const hosts = [...new Set(procs.map((p) => p.host || ""))].sort();
  const h = document.createElement("h4");
  h.textContent = "Processes";
  legend.appendChild(h);
  if (procs.length > MAX_LEGEND_PROCESSES) {
    // Too many to list: one row per host, missing ones counted.
    for (const host of hosts) {
      const mine = procs.filter((q) => (q.host || "") === host);
      const gone = mine.filter((q) => missing.has(q.id)).length;
      const hr = div("ezg-legend-row ezg-host", legend);
      const sw = div("ezg-swatch", hr);
      sw.style.background = hostColor(state.hosts[host]?.color);
      sw.style.borderRadius = "50%";
      div("", hr, host || "unknown host").style.fontWeight = "600";
      div("ezg-legend-units", hr, `${mine.length} processes${gone ? `, ${gone} missing` : ""}`);
    }
    appendLevels(legend, ann);
    return;
  }
  for (const host of hosts) {
    if (hosts.length > 1) {
      const hr = div("ezg-legend-row ezg-host", legend);
      const sw = div("ezg-swatch", hr);
      sw.style.background = hostColor(state.hosts[host]?.color);
      sw.style.borderRadius = "50%";
      div("", hr, host || "unknown host").style.fontWeight = "600";
    }
    for (const p of procs.filter((q) => (q.host || "") === host)) {
      const row = div("ezg-legend-row", legend);
      row.dataset.process = p.id;
      if (missing.has(p.id)) row.classList.add("ezg-missing");
      div("ezg-swatch", row).style.background = processColor(p.color);
      div("", row, p.pid != null ? `pid ${p.pid}` : p.id.slice(0, 8));
      const names = (p.units || []).map((u) => u.split("/").pop()).join(", ");
      div("ezg-legend-units", row, names + (missing.has(p.id) ? " (missing)" : ""));
    }
  }
  appendLevels(legend, ann);
}

function appendLevels(legend, ann) {
  const levels = div("ezg-levels", legend);
  const t = ann.thresholds || { warn: 0.5, critical: 0.9 };
  const pct = (v) => `${Math.round(v * 100)}%`;
  const rows = [
    ["buffers in flight", null],
    [`\u2265 ${pct(t.warn)}`, "#d4a72c"],
    [`\u2265 ${pct(t.critical)}`, "#cf222e"],
  ];
  for (const [label, c] of rows) {
    const s = document.createElement("span");
    s.textContent = label;
    if (c) s.style.setProperty("--c", c);
    else s.className = "ezg-levels-title";
    levels.appendChild(s);
  }
}

const row = (k, v) => `<div><span class="ezg-k">${escapeHtml(k)}</span>${v}</div>`;

export function unitTooltip(state, ann, address) {
  const u = state.units[address];
  if (!u) return "";
  const proc = u.process_id ? state.processes[u.process_id] : null;
  const missing = new Set(ann.missing_processes || []);
  const lines = [`<div><b>${escapeHtml(u.address)}</b></div>`];
  lines.push(row("type", escapeHtml(u.component_type)));
  const where = proc
    ? `<span style="color:${processColor(proc.color)}">\u25a0</span> ${escapeHtml(u.process_id.slice(0, 8))}`
    : "not registered";
  lines.push(row("process", where + (missing.has(u.process_id) ? " <b>(missing)</b>" : "")));
  lines.push(row("pid", u.pid != null ? escapeHtml(u.pid) : "\u2014"));
  lines.push(row("host", u.host ? escapeHtml(u.host) : "\u2014"));
  const pubs = ann.publishers || {};
  for (const s of u.outputs || []) {
    const p = pubs[s.address];
    if (!p) continue;
    const rate = p.rate_hz != null ? formatRate(p.rate_hz) : "rate \u2014";
    lines.push(row(s.name, `${rate} \u00b7 ${p.inflight}/${p.num_buffers} in flight (${escapeHtml(p.level)})`));
  }
  const edgesAnn = ann.edges || {};
  for (const s of u.inputs || []) {
    let rate = null;
    for (const e of Object.values(state.edges)) {
      if (e.target === s.address && edgesAnn[e.id] && edgesAnn[e.id].rate_hz != null)
        rate = (rate || 0) + edgesAnn[e.id].rate_hz;
    }
    if (rate != null) lines.push(row(s.name, `${formatRate(rate)} in`));
  }
  const ua = ann.units?.[address];
  if (ua && ua.errors > 0) {
    lines.push(row("errors", String(ua.errors)));
    if (ua.last_error) lines.push(`<div class="ezg-err">${escapeHtml(ua.last_error)}</div>`);
  }
  return lines.join("");
}

export function edgeTooltip(state, e) {
  const recs = e.members.map((id) => state.edges[id]).filter(Boolean);
  if (!recs.length) return "";
  const lines = recs
    .slice(0, 4)
    .map((r) => `<div><b>${escapeHtml(r.source)}</b> \u2192 <b>${escapeHtml(r.target)}</b></div>`);
  if (recs.length > 4) lines.push(`<div>\u2026 and ${recs.length - 4} more</div>`);
  lines.push(row("rate", e.rate != null ? formatRate(e.rate) : "\u2014"));
  lines.push(row("channel", e.kinds?.length ? escapeHtml(e.kinds.join(", ")) : "\u2014"));
  const owners = [...new Set(recs.flatMap((r) => r.owners || []))];
  if (owners.length) lines.push(row("session", escapeHtml(owners.map((o) => o.slice(0, 8)).join(", "))));
  return lines.join("");
}
