// @ts-check
// ezmsg-lab graph widget (anywidget ESM): live topology of an ezmsg graph.
//
// The Python side (ezmsg_lab/widgets/graph.py) syncs `state` (graph_view.graph_state),
// `annotations`, `selected`, `collapsed` and `js_error`, and sends diffs of large states
// as custom messages: {type: "diff", diff} / {type: "full", state}. This view answers
// {type: "hello"|"resync", have: digest} when its state is not the one a diff expects.
import { div, drawLegend, edgeTooltip, unitTooltip } from "./chrome.js";
import { applyAnnotations, drawDefs, drawScene, svg } from "./draw.js";
import { fromPlain, keyHash, recall, remember, toPlain, topologyKey } from "./cache.js";
import { engineMode, engineStats, fallbackNote, layoutGraph, warmedUp, warmUp } from "./engine.js";
import { alignToPrevious, buildElkGraph, layoutKey, runLayout } from "./layout.js";
import { FONT_FAMILY, FONT_PX, MAX_READABLE_UNITS, READABLE_ZOOM } from "./fonts.js";
import { applyDiff, normalizeState } from "./state.js";
import { warmupState } from "./warmup.js";

let viewCounter = 0;

const PAD = 16; // around the fitted drawing
// On-screen size (px) below which the drawing's text is left out: unreadable anyway.
const FAR_TEXT_PX = 4;
const MAX_FONT_PX = Math.max(...Object.values(FONT_PX));
const MAX_ZOOM_AT_FIT = 1.2;
const MIN_AUTO_HEIGHT = 220;
const MAX_AUTO_HEIGHT = 760;
// A graph that must stay readable at fit may make the widget this tall (the notebook
// scrolls past it) rather than shrink its text.
const MAX_READABLE_HEIGHT = 1600;
// Above this many visible nodes no second (wrapped) layout is tried: it would double the
// cost of a layout that already takes long, for a graph that is read by zooming anyway.
const MAX_WRAP_NODES = 80;
// (ELK wrapping strategy, aspect ratio relative to the widget's), tried in this order.
// Each try is a whole ELK run. SINGLE_EDGE at 0.3 and at 1.5 were tried too, and dropped:
// over the demo and 9 synthetic graphs of 8-40 units at widths of 500, 760 and 1100 px,
// neither ever drew bigger than the unwrapped layout and these three.
/** @type {Array<[string, number]>} */
const WRAPS = [
  ["SINGLE_EDGE", 0.6],
  ["MULTI_EDGE", 0.6],
  ["MULTI_EDGE", 1.5],
];

// Made-up layouts that warm ELK up while the worker is idle (engine.js), alternately one
// row and wrapped as the WRAPS tries do.
const WARM_RUNS = 12;
warmUp(
  Array.from({ length: WARM_RUNS }, (_, i) => () => {
    const [strategy, f] = WRAPS[(i >> 1) % WRAPS.length];
    return buildElkGraph(warmupState(), new Set(), new Map(), i % 2 ? { aspect: 2 * f, strategy } : {}).graph;
  }),
);

// What each model's views sent the kernel to keep (state digest, collapsed, layout key).
/** @type {WeakMap<any, Set<string>>} */
const keptByModel = new WeakMap();

/** @param {{model: any, el: HTMLElement}} ctx */
function render({ model, el }) {
  const ac = new AbortController();
  const listen = (target, type, fn, opts) =>
    target.addEventListener(type, guard(type, fn), { signal: ac.signal, ...(opts || {}) });
  const prefix = `ezg${++viewCounter}-${Math.random().toString(36).slice(2, 7)}`;
  let disposed = false;

  // The stylesheet is ezmsg_lab/widgets/static/graph.css (anywidget `_css`); its fonts are
  // the ones the layout measures text with.
  const root = div("ezg-root");
  root.style.setProperty("--ezg-font", FONT_FAMILY);
  for (const [kind, px] of Object.entries(FONT_PX)) root.style.setProperty(`--ezg-px-${kind}`, `${px}px`);
  root.dataset.layouts = "0";
  const toolbar = div("ezg-toolbar", root);
  div("ezg-title", toolbar, "ezmsg graph");
  const counts = div("ezg-counts", toolbar);
  const closedNote = div("ezg-closed-note", toolbar);
  const engineNote = div("ezg-engine-note", toolbar);
  const hint = div("ezg-hint", toolbar, "drag to see the rest \u00b7 wheel to zoom");
  div("ezg-spacer", toolbar);
  const expandBtn = document.createElement("button");
  expandBtn.className = "ezg-btn ezg-expand";
  expandBtn.textContent = "Expand all";
  expandBtn.style.display = "none";
  const fitBtn = document.createElement("button");
  fitBtn.className = "ezg-btn ezg-fit";
  fitBtn.textContent = "Fit";
  fitBtn.title = "Fit the graph to the view";
  toolbar.append(expandBtn, fitBtn);
  const svgRoot = svg("svg", { class: "ezg-svg" }, root);
  drawDefs(svgRoot, prefix);
  const viewport = svg("g", { class: "ezg-viewport" }, svgRoot);
  const scene = svg("g", { class: "ezg-scene" }, viewport);
  const empty = div("ezg-empty", root, "No units yet: launch a pipeline to see it here.");
  const legend = div("ezg-legend", root);
  const tooltip = div("ezg-tooltip", root);
  const banner = div("ezg-banner", root);
  el.append(root);

  let state = normalizeState(model.get("state"));
  let ann = model.get("annotations") || {};
  let collapsed = new Set(model.get("collapsed") || []);
  let selected = model.get("selected") || "";
  let closedAt = model.get("closed_at") || "";
  let positions = new Map();
  let lastKey = null;
  let lastLayout = null;
  /** @type {string | null} topologyKey of the last layout */
  let lastTopology = null;
  let index = null;
  let bounds = null;
  const view = { x: 0, y: 0, k: 1 };
  let userMoved = false;
  let layoutCount = 0;
  let running = false;
  let pending = false;

  function reportError(where, err) {
    const msg = `${where}: ${err?.message ? err.message : String(err)}`;
    banner.textContent = `Graph widget error \u2014 ${msg}`;
    banner.style.display = "block";
    console.error("[ezmsg-lab graph]", err);
    try {
      model.set("js_error", msg);
      model.save_changes();
    } catch (e2) {
      // The model is gone (view closing): the banner is all we can do.
      console.error("[ezmsg-lab graph] could not report the error", e2);
    }
  }

  function guard(where, fn) {
    return (...args) => {
      if (disposed) return undefined;
      try {
        const r = fn(...args);
        if (r && typeof r.then === "function") r.catch((e) => reportError(where, e));
        return r;
      } catch (e) {
        reportError(where, e);
        return undefined;
      }
    };
  }

  const modelHandlers = [];
  const onModel = (name, fn) => {
    const h = guard(name, fn);
    model.on(name, h);
    modelHandlers.push([name, h]);
  };

  // ------------------------------------------------------------------ layout + draw
  function requestLayout() {
    if (running) {
      pending = true;
      return;
    }
    running = true;
    pending = false;
    relayout()
      .catch((e) => reportError("layout", e))
      .finally(() => {
        running = false;
        if (pending && !disposed) requestLayout();
      });
  }

  async function relayout() {
    const t0 = performance.now();
    const width = svgRoot.clientWidth;
    const built = buildElkGraph(state, collapsed, positions);
    const key = layoutKey(built);
    let layout;
    if (key === lastKey && lastLayout && !needsNewWrap(lastLayout, width)) {
      // Same shapes: keep the geometry, take the fresh records (colours, pids, names).
      layout = lastLayout;
      for (const [id, n] of layout.nodes) Object.assign(n, built.info.get(id));
      const byId = new Map([...built.folded.values()].map((f) => [f.id, f]));
      for (const e of layout.edges) e.members = (byId.get(e.id) || { members: [] }).members;
      // A new state (other records) on the same shapes: the kernel keeps it for it too.
      if (lastTopology) keepInKernel(lastTopology, layout);
    } else {
      const t1 = performance.now();
      const topology = topologyKey(built);
      lastTopology = topology;
      const onPage = recall(topology, built);
      const known = onPage || keptByKernel(topology, built, width);
      if (known && !needsNewWrap(known, width)) {
        // Drawn before (by this view or another, on this page or one before): its
        // positions, no ELK.
        layout = known;
        root.dataset.cached = onPage ? "1" : "kernel";
        if (onPage) keepInKernel(topology, layout);
        else remember(topology, layout);
      } else {
        const before = engineStats();
        layout = await elkLayout(built, width);
        if (!layout) return; // disposed meanwhile
        remember(topology, layout);
        keepInKernel(topology, layout);
        root.dataset.cached = "0";
        // For benchmarks: how many ELK runs (wrapped tries), how long ELK itself worked,
        // and when the engine was ready (worker started, elkjs evaluated and initialised).
        const after = engineStats();
        root.dataset.elkRuns = String(after.runs - before.runs);
        root.dataset.elkComputeMs = (after.computeMs - before.computeMs).toFixed(1);
        root.dataset.engineReadyMs = after.readyMs.toFixed(1);
        root.dataset.engineScriptMs = after.scriptMs.toFixed(1);
        root.dataset.engineStartAt = after.startAt.toFixed(1);
      }
      root.dataset.buildMs = (t1 - t0).toFixed(1);
      root.dataset.elkAt = t1.toFixed(1);
      root.dataset.elkMs = (performance.now() - t1).toFixed(1);
      root.dataset.wrapped = layout.wrapped ? "1" : "0";
      showEngine();
      alignToPrevious(layout, positions);
    }
    lastKey = key;
    lastLayout = layout;
    positions = new Map([...layout.nodes].map(([id, n]) => [id, { x: n.x, y: n.y }]));
    bounds = boundsOf(layout);
    updateChrome();
    // Sizes read while the old scene is still there: read after drawScene, they would make
    // the browser lay out thousands of fresh SVG nodes on the spot (twice, with autoHeight).
    const sizes = { w: svgRoot.clientWidth, h: svgRoot.clientHeight, chrome: chromeHeight() };
    const tDraw = performance.now();
    index = drawScene(scene, layout, state, prefix);
    applyAnnotations(index, state, ann, selected);
    if (!userMoved) fit(sizes);
    root.dataset.drawMs = (performance.now() - tDraw).toFixed(1);
    layoutCount += 1;
    root.dataset.layouts = String(layoutCount);
    root.dataset.renderMs = (performance.now() - t0).toFixed(1);
  }

  /** A layout of this topology that the kernel kept (sent by a page before this one, or
   *  another view: GraphWidget.layouts), with the fresh records on it; or null. */
  function keptByKernel(topology, built, width) {
    const kept = model.get("layouts");
    // For tests and benchmarks: what the kernel offered, and what this page looks for.
    root.dataset.keptKeys = Array.isArray(kept) ? kept.map((e) => e?.key).join(" ") : "";
    if (!Array.isArray(kept) || !kept.length) return null;
    const hash = keyHash(topology);
    root.dataset.layoutKey = hash;
    // One per width it was made for (views of one widget may differ in width).
    for (const entry of kept) {
      if (!entry || entry.key !== hash) continue;
      const layout = fromPlain(entry.geometry, built);
      if (layout && !needsNewWrap(layout, width)) return layout;
    }
    return null;
  }

  /** Give the kernel a layout to keep, for pages opened later (a reload, another tab,
   *  the dashboard): they draw it without running ELK (graph.py's LayoutStore). Once per
   *  model, state and topology: a layout this page reuses for a new state (the same
   *  shapes, other records) is sent for that state too. */
  function keepInKernel(topology, layout) {
    const hash = keyHash(topology);
    const madeFor = layout.madeForWidth || 0;
    const what = `${state.digest}|${[...collapsed].sort().join(",")}|${hash}|${madeFor}`;
    const sent = keptByModel.get(model) || new Set();
    keptByModel.set(model, sent);
    const kept = model.get("layouts");
    // What the kernel had for this state when the page opened (it is not told later).
    const known = (e) =>
      e && e.digest === state.digest && e.key === hash && (e.geometry?.madeForWidth || 0) === madeFor;
    if (sent.has(what) || (Array.isArray(kept) && kept.some(known))) return;
    sent.add(what);
    try {
      model.send({
        type: "layout",
        digest: state.digest,
        collapsed: [...collapsed].sort(),
        key: hash,
        geometry: toPlain(layout),
      });
    } catch (e) {
      console.warn("[ezmsg-lab graph] could not send the layout to the kernel", e);
    }
  }

  /** ELK's layout of `built` (tried wrapped too when one row is too wide to read), or
   *  null when the view went away meanwhile. */
  async function elkLayout(built, width) {
    /** @type {any} */
    let layout = await runLayout(built, layoutGraph);
    if (disposed) return null;
    layout.units = built.units;
    if (
      width &&
      built.nodes <= MAX_WRAP_NODES &&
      !fitsReadably(layout, width, MAX_AUTO_HEIGHT) &&
      widthBound(layout, width, MAX_READABLE_HEIGHT)
    ) {
      // One row of layers is too wide to read here: let ELK wrap the layers into rows
      // shaped like the space there is. ELK takes the aspect ratio as a hint only, so a
      // few are tried; the best drawing within the usual height wins, else the best
      // within the taller height a readable graph may take.
      const target = (width - 2 * PAD) / (MAX_AUTO_HEIGHT - chromeHeight() - 2 * PAD);
      const candidates = [layout];
      for (const [strategy, f] of WRAPS) {
        const aspect = Math.max(0.2, target * f);
        let wrapped;
        try {
          wrapped = await runLayout(buildElkGraph(state, collapsed, positions, { aspect, strategy }), layoutGraph);
        } catch {
          // ELK's wrapping fails on some nested graphs: that option is just not taken.
          if (disposed) return null;
          continue;
        }
        if (disposed) return null;
        wrapped.units = built.units;
        wrapped.wrapped = true;
        candidates.push(wrapped);
        if (fitsReadably(wrapped, width, MAX_AUTO_HEIGHT)) break; // good enough
      }
      layout = pickLayout(candidates, width);
    }
    layout.madeForWidth = width;
    return layout;
  }

  /** Say so when layouts run on the page's thread (no Web Worker): big ones block it. */
  function showEngine() {
    const mode = engineMode();
    root.dataset.engine = mode || "";
    engineNote.textContent = mode === "main" ? "layout on the main thread (no Web Worker)" : "";
    engineNote.title = mode === "main" ? fallbackNote() : "";
  }

  function chromeHeight() {
    return toolbar.offsetHeight + (legend.style.display !== "none" ? legend.offsetHeight : 0) + 2;
  }

  function maxAutoHeight(layout) {
    return layout && readableZoom(layout) ? MAX_READABLE_HEIGHT : MAX_AUTO_HEIGHT;
  }

  /** The zoom below which text would be too small to read, for this layout. */
  function readableZoom(layout) {
    return (layout.units || 0) <= MAX_READABLE_UNITS ? READABLE_ZOOM : 0;
  }

  /** The zoom that fits `layout` into `width` and a widget `maxHeight` tall. */
  function bestZoom(layout, width, maxHeight) {
    const b = boundsOf(layout);
    if (!b) return MAX_ZOOM_AT_FIT;
    const h = (model.get("height") || maxHeight) - chromeHeight();
    return Math.min(MAX_ZOOM_AT_FIT, (width - 2 * PAD) / (b.x1 - b.x0), (h - 2 * PAD) / (b.y1 - b.y0));
  }

  /** Is it the width that limits the zoom at fit (not the height)? Only then can a wrapped
   *  layout be drawn bigger: wrapping trades width for height, and a wrapped drawing is
   *  at least as tall as the one row (its rows stack the layers' heights), so a drawing
   *  the height already limits only gets smaller. Each try is a whole ELK run: a 20-unit
   *  graph took 6 runs for nothing. */
  function widthBound(layout, width, maxHeight) {
    const b = boundsOf(layout);
    if (!b) return false;
    const h = (model.get("height") || maxHeight) - chromeHeight();
    return (width - 2 * PAD) / (b.x1 - b.x0) < (h - 2 * PAD) / (b.y1 - b.y0);
  }

  function fitsReadably(layout, width, maxHeight) {
    return bestZoom(layout, width, maxHeight) >= readableZoom(layout);
  }

  /** The candidate layout drawn biggest: within the usual height if one is readable
   *  there, else within the height a readable graph may take. Ties keep the earlier one
   *  (the unwrapped layout first). */
  function pickLayout(candidates, width) {
    const best = (maxHeight) => {
      let pick = candidates[0];
      let zoom = bestZoom(pick, width, maxHeight);
      for (const c of candidates.slice(1)) {
        const z = bestZoom(c, width, maxHeight);
        if (z > zoom * 1.05) [pick, zoom] = [c, z];
      }
      return { pick, zoom };
    };
    const usual = best(MAX_AUTO_HEIGHT);
    const floor = readableZoom(usual.pick);
    if (usual.zoom >= floor || !floor) return usual.pick;
    // Taller then, but no taller than needed: the shortest drawing readable in the width.
    const readable = candidates.filter((c) => bestZoom(c, width, MAX_READABLE_HEIGHT) >= floor);
    if (!readable.length) return best(MAX_READABLE_HEIGHT).pick;
    const tall = (c) => {
      const b = boundsOf(c);
      return b ? b.y1 - b.y0 : 0;
    };
    return readable.reduce((a, c) => (tall(c) < tall(a) ? c : a));
  }

  /** After a resize: would this width call for another (wrapped or unwrapped) layout? */
  function needsNewWrap(layout, width) {
    if (!width || (layout.units || 0) > MAX_READABLE_UNITS) return false;
    // Chosen (wrapped or not) for about this width: still the choice.
    const madeFor = layout.madeForWidth || 0;
    if (madeFor && Math.abs(width - madeFor) <= 0.12 * madeFor) return false;
    if (layout.wrapped) return true;
    return !fitsReadably(layout, width, maxAutoHeight(layout)) && widthBound(layout, width, MAX_READABLE_HEIGHT);
  }

  function boundsOf(layout) {
    let x0 = Infinity;
    let y0 = Infinity;
    let x1 = -Infinity;
    let y1 = -Infinity;
    for (const n of layout.nodes.values()) {
      x0 = Math.min(x0, n.x);
      y0 = Math.min(y0, n.y);
      x1 = Math.max(x1, n.x + n.w);
      y1 = Math.max(y1, n.y + n.h);
    }
    return Number.isFinite(x0) ? { x0, y0, x1, y1 } : null;
  }

  function applyView() {
    viewport.setAttribute("transform", `translate(${view.x},${view.y}) scale(${view.k})`);
    root.dataset.zoom = view.k.toFixed(3);
    // Text too small to read is not drawn (graph.css): a big graph fitted whole shows its
    // boxes and edges, and its text from FAR_TEXT_PX on as one zooms in. Laying out and
    // painting thousands of unreadable SVG texts was most of the time such a graph took
    // to appear (300 units: ~3000 texts, a 300 ms task of style, layout and paint).
    root.classList.toggle("ezg-far", view.k * MAX_FONT_PX < FAR_TEXT_PX);
  }

  /** Returns the height given to the widget, 0 when its height is set from Python. */
  function autoHeight(w, bw, bh, chrome = chromeHeight()) {
    // height 0 = fit the widget to the drawing: as tall as the graph drawn at the zoom the
    // width allows (never below the readable one), plus the toolbar and legend.
    if (model.get("height")) return 0;
    const floor = lastLayout ? readableZoom(lastLayout) : 0;
    let k = Math.min(MAX_ZOOM_AT_FIT, (w - 2 * PAD) / bw);
    // Rather a smaller (still readable) drawing than a widget taller than usual.
    const usual = (MAX_AUTO_HEIGHT - chrome - 2 * PAD) / bh;
    if (k > usual) k = Math.max(usual, floor);
    k = Math.max(k, floor);
    const want = Math.round(Math.min(maxAutoHeight(lastLayout), Math.max(MIN_AUTO_HEIGHT, chrome + bh * k + 2 * PAD)));
    root.style.setProperty("--ezg-height", `${want}px`);
    return want;
  }

  /** Fit the drawing to the view. `sizes` (svg width and height, chrome height) when the
   *  caller read them before changing the DOM; else they are read here. */
  function fit(sizes = null) {
    const w = sizes ? sizes.w : svgRoot.clientWidth;
    if (!bounds || !w) return;
    const bw = Math.max(1, bounds.x1 - bounds.x0);
    const bh = Math.max(1, bounds.y1 - bounds.y0);
    const chrome = sizes ? sizes.chrome : chromeHeight();
    const want = autoHeight(w, bw, bh, chrome);
    // The svg takes what the toolbar and legend leave of the widget's height.
    const h = sizes ? (want ? want - chrome : sizes.h) : svgRoot.clientHeight;
    if (!h) return;
    let k = Math.max(0.05, Math.min(MAX_ZOOM_AT_FIT, (w - 2 * PAD) / bw, (h - 2 * PAD) / bh));
    const floor = lastLayout ? readableZoom(lastLayout) : 0;
    // Never fit a graph of up to MAX_READABLE_UNITS units so small that it cannot be read:
    // show it from its start (top left, where data enters) and let the user pan.
    const clipped = k < floor;
    if (clipped) k = floor;
    view.k = k;
    view.x = bw * k <= w - 2 * PAD ? (w - bw * k) / 2 - bounds.x0 * k : PAD - bounds.x0 * k;
    view.y = bh * k <= h - 2 * PAD ? (h - bh * k) / 2 - bounds.y0 * k : PAD - bounds.y0 * k;
    root.dataset.fit = clipped ? "readable" : "whole";
    hint.style.display = clipped ? "inline" : "none";
    applyView();
  }

  function updateChrome() {
    const nUnits = Object.keys(state.units).length;
    const nEdges = Object.keys(state.edges).length;
    const nProcs = Object.keys(state.processes).length;
    counts.textContent = `${nUnits} unit${nUnits === 1 ? "" : "s"} \u00b7 ${nEdges} edge${nEdges === 1 ? "" : "s"} \u00b7 ${nProcs} process${nProcs === 1 ? "" : "es"}`;
    empty.style.display = nUnits || Object.keys(state.topics).length ? "none" : "flex";
    expandBtn.style.display = collapsed.size ? "" : "none";
    updateLegend();
  }

  function updateLegend() {
    drawLegend(legend, state, ann);
  }

  function restyle() {
    if (!index) return;
    applyAnnotations(index, state, ann, selected);
    updateLegend();
  }

  // ------------------------------------------------------------------ interaction
  function select(address) {
    // A closed Lab's widget is frozen: a click must not reach Python (nothing there can
    // answer it any more).
    if (closedAt) return;
    selected = address;
    model.set("selected", address);
    model.save_changes();
    restyle();
  }

  function setCollapsed(next) {
    collapsed = next;
    model.set("collapsed", [...next].sort());
    model.save_changes();
    requestLayout();
  }

  let drag = null;
  listen(svgRoot, "pointerdown", (ev) => {
    if (ev.button !== 0) return;
    drag = { x: ev.clientX, y: ev.clientY, vx: view.x, vy: view.y, moved: false, id: ev.pointerId };
  });
  listen(svgRoot, "pointermove", (ev) => {
    if (drag && ev.pointerId === drag.id) {
      const dx = ev.clientX - drag.x;
      const dy = ev.clientY - drag.y;
      if (!drag.moved && Math.hypot(dx, dy) > 3) {
        drag.moved = true;
        svgRoot.classList.add("ezg-panning");
        if (svgRoot.setPointerCapture) svgRoot.setPointerCapture(ev.pointerId);
      }
      if (drag.moved) {
        view.x = drag.vx + dx;
        view.y = drag.vy + dy;
        userMoved = true;
        applyView();
        hideTooltip();
        return;
      }
    }
    hover(ev);
  });
  const endDrag = (ev) => {
    if (!drag) return;
    const wasDrag = drag.moved;
    svgRoot.classList.remove("ezg-panning");
    drag = null;
    if (wasDrag) return;
    const target = /** @type {Element} */ (ev.target);
    const toggle = target.closest?.("[data-toggle]");
    if (toggle) {
      const id = toggle.getAttribute("data-toggle");
      const next = new Set(collapsed);
      if (next.has(id)) next.delete(id);
      else next.add(id);
      setCollapsed(next);
      return;
    }
    const folded = target.closest?.(".ezg-collapsed");
    if (folded) {
      const next = new Set(collapsed);
      next.delete(folded.getAttribute("data-group"));
      setCollapsed(next);
      return;
    }
    const unit = target.closest?.(".ezg-unit");
    if (unit) select(unit.getAttribute("data-address"));
    else if (selected) select("");
  };
  listen(svgRoot, "pointerup", endDrag);
  listen(svgRoot, "pointercancel", () => {
    drag = null;
    svgRoot.classList.remove("ezg-panning");
  });
  listen(svgRoot, "pointerleave", hideTooltip);
  listen(
    svgRoot,
    "wheel",
    (ev) => {
      ev.preventDefault();
      const r = svgRoot.getBoundingClientRect();
      const mx = ev.clientX - r.left;
      const my = ev.clientY - r.top;
      const scale = ev.deltaMode === 1 ? 40 : 1;
      const k = Math.max(0.05, Math.min(4, view.k * Math.exp(-ev.deltaY * scale * 0.0015)));
      view.x = mx - ((mx - view.x) * k) / view.k;
      view.y = my - ((my - view.y) * k) / view.k;
      view.k = k;
      userMoved = true;
      applyView();
    },
    { passive: false },
  );
  listen(fitBtn, "click", () => {
    userMoved = false;
    fit();
  });
  listen(expandBtn, "click", () => setCollapsed(new Set()));

  function hideTooltip() {
    tooltip.style.display = "none";
    for (const p of scene.querySelectorAll(".ezg-edge.ezg-hover")) p.classList.remove("ezg-hover");
  }

  function hover(ev) {
    const target = /** @type {Element} */ (ev.target);
    const unitEl = target.closest?.(".ezg-unit");
    const edgeEl = !unitEl && target.closest && target.closest("[data-edge]");
    let html = "";
    hideTooltip();
    if (unitEl) html = unitTooltip(state, ann, unitEl.getAttribute("data-address"));
    else if (edgeEl && index) {
      const e = index.edges.get(edgeEl.getAttribute("data-edge"));
      if (e) {
        e.path.classList.add("ezg-hover");
        html = edgeTooltip(state, e);
      }
    }
    if (!html) return;
    tooltip.innerHTML = html;
    tooltip.style.display = "block";
    const r = root.getBoundingClientRect();
    let x = ev.clientX - r.left + 14;
    let y = ev.clientY - r.top + 14;
    const tw = tooltip.offsetWidth;
    const th = tooltip.offsetHeight;
    if (x + tw > r.width - 6) x = Math.max(6, ev.clientX - r.left - tw - 14);
    if (y + th > r.height - 6) y = Math.max(6, ev.clientY - r.top - th - 14);
    tooltip.style.left = `${x}px`;
    tooltip.style.top = `${y}px`;
  }

  // ------------------------------------------------------------------ model events
  onModel("change:state", () => {
    state = normalizeState(model.get("state"));
    requestLayout();
  });
  onModel("change:annotations", () => {
    ann = model.get("annotations") || {};
    restyle();
  });
  onModel("change:selected", () => {
    selected = model.get("selected") || "";
    restyle();
  });
  onModel("change:collapsed", () => {
    const next = new Set(model.get("collapsed") || []);
    // Our own model.set() echoes here too: lay out once per change, not twice.
    if (next.size === collapsed.size && [...next].every((g) => collapsed.has(g))) return;
    collapsed = next;
    requestLayout();
  });
  onModel("msg:custom", (msg) => {
    if (!msg || typeof msg !== "object") return;
    if (msg.type === "diff") {
      let next = null;
      try {
        next = applyDiff(state, msg.diff);
      } catch (e) {
        // Not the state this diff was made from (a view that missed one): start over.
        model.send({ type: "resync", have: state.digest, reason: String(e.message || e) });
        return;
      }
      state = next;
      requestLayout();
    } else if (msg.type === "full") {
      state = normalizeState(msg.state);
      requestLayout();
    } else if (msg.type === "fit") {
      userMoved = false;
      fit();
    }
  });

  let resizeObserver = null;
  if (typeof ResizeObserver !== "undefined") {
    resizeObserver = new ResizeObserver(
      guard("resize", () => {
        if (lastLayout && needsNewWrap(lastLayout, svgRoot.clientWidth)) requestLayout();
        else if (!userMoved) fit();
      }),
    );
    resizeObserver.observe(svgRoot);
  }

  const showClosed = () => {
    closedAt = model.get("closed_at") || "";
    root.classList.toggle("ezg-closed", !!closedAt);
    // The kernel's local time of closing, as the Lab wrote it (ISO, seconds).
    closedNote.textContent = closedAt ? `Lab closed at ${closedAt.slice(11, 19)} \u2014 frozen` : "";
    root.dataset.closed = closedAt ? "1" : "0";
    if (closedAt) hideTooltip();
  };
  onModel("change:closed_at", showClosed);
  showClosed();

  const showPyError = () => {
    const text = model.get("py_error");
    if (text) {
      banner.textContent = `Update failed in Python \u2014 ${text}`;
      banner.style.display = "block";
    } else if (!model.get("js_error")) banner.style.display = "none";
  };
  onModel("change:py_error", showPyError);
  showPyError();

  const height = model.get("height");
  if (height) root.style.setProperty("--ezg-height", `${height}px`);
  onModel("change:height", () => {
    const hh = model.get("height");
    if (hh) root.style.setProperty("--ezg-height", `${hh}px`);
    fit();
  });

  applyView();
  updateChrome();
  requestLayout();
  // Tell Python which state this view starts from; it sends the current one if they differ.
  guard("hello", () => model.send({ type: "hello", have: state.digest }))();

  return () => {
    disposed = true;
    ac.abort();
    if (resizeObserver) resizeObserver.disconnect();
    for (const [name, h] of modelHandlers) model.off(name, h);
    modelHandlers.length = 0;
    root.remove();
  };
}

// `engine`: where the layout engine's time went and whether its warm-up is done, for
// benchmarks (anywidget only calls `render`).
export default { render, engine: { stats: engineStats, warmedUp } };
