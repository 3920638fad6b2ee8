// @ts-check
// ezmsg-lab scope widget (MIT). Plain ESM, not bundled: no dependencies.
//
// The kernel sends, per frame, `frame` (float32 bytes) and `header` (view, channels, x0, x1,
// lo, hi, labels, seq, note and, by view, the shape). By `header.view`, `frame` holds:
// - sweep, spectrum: columns x 2 x channels, the min and max of each pixel column (NaN
//   where empty), drawn as one lane per channel, a min-max bar per column;
// - image: channels x rows x columns (rows top to bottom), one lane per channel coloured
//   with a viridis-like map between lo and hi (or the fixed range);
// - scatter: channels x points x 2 (x, y), dots in one colour per point set.
// This file only draws. Controls set `paused`, `autoscale`, `y_range` and `selected`,
// which the kernel reads; while paused the frame on screen is kept, whatever arrives.

const COLORS = ["#0969da", "#1a7f37", "#8250df", "#bf3989", "#9a6700", "#cf222e", "#17becf", "#5f7c8a"];

function floats(value) {
  // anywidget hands bytes over as a DataView (or ArrayBuffer / typed array).
  if (!value) return new Float32Array(0);
  if (value instanceof ArrayBuffer) return new Float32Array(value);
  const { buffer, byteOffset, byteLength } = value;
  if (byteOffset % 4 === 0) return new Float32Array(buffer, byteOffset, byteLength / 4);
  return new Float32Array(buffer.slice(byteOffset, byteOffset + byteLength));
}

function el(tag, props = {}, parent = null) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  if (parent) parent.appendChild(node);
  return node;
}

// viridis at 9 stops, interpolated to 256 entries (r, g, b).
const VIRIDIS = [
  [68, 1, 84],
  [71, 44, 122],
  [59, 81, 139],
  [44, 113, 142],
  [33, 144, 141],
  [39, 173, 129],
  [92, 200, 99],
  [170, 220, 50],
  [253, 231, 37],
];
const LUT = (() => {
  const lut = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const p = (i / 255) * (VIRIDIS.length - 1);
    const k = Math.min(Math.floor(p), VIRIDIS.length - 2);
    const f = p - k;
    for (let j = 0; j < 3; j++) lut[i * 3 + j] = VIRIDIS[k][j] + f * (VIRIDIS[k + 1][j] - VIRIDIS[k][j]);
  }
  return lut;
})();

function fmt(x) {
  if (x == null || !Number.isFinite(x)) return "–";
  const a = Math.abs(x);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? x.toExponential(2) : String(Number(x.toPrecision(4)));
}

function render({ model, el: host }) {
  const root = el("div", { className: "ezs-root" }, host);
  const bar = el("div", { className: "ezs-bar" }, root);
  const title = el("span", { className: "ezs-title" }, bar);
  const pause = el("button", { className: "ezs-pause", type: "button" }, bar);
  const autoLabel = el("label", {}, bar);
  const auto = el("input", { type: "checkbox", className: "ezs-auto" }, autoLabel);
  autoLabel.append(" autoscale");
  const lo = el("input", { type: "number", step: "any", className: "ezs-lo", title: "low" }, bar);
  const hi = el("input", { type: "number", step: "any", className: "ezs-hi", title: "high" }, bar);
  const status = el("span", { className: "ezs-status" }, bar);
  const canvas = el("canvas", { className: "ezs-canvas" }, root);
  const channels = el("div", { className: "ezs-channels" }, root);
  const error = el("div", { className: "ezs-error" }, root);
  const ctx = canvas.getContext("2d");
  let draws = 0;

  function report(err) {
    const msg = `scope: ${err?.stack ? err.stack : err}`;
    error.textContent = msg;
    error.style.display = "block";
    try {
      model.set("js_error", msg);
      model.save_changes();
    } catch (_) {
      /* the model itself failed: the banner is all we can do */
    }
  }

  function controls() {
    title.textContent = model.get("title") || "scope";
    pause.textContent = model.get("paused") ? "▶ resume" : "❚❚ pause";
    root.dataset.paused = String(!!model.get("paused"));
    auto.checked = !!model.get("autoscale");
    const [a, b] = model.get("y_range") || [-1, 1];
    if (document.activeElement !== lo) lo.value = a;
    if (document.activeElement !== hi) hi.value = b;
    lo.disabled = hi.disabled = auto.checked;
  }

  function channelBoxes() {
    const names = model.get("channel_names") || [];
    const selected = new Set(model.get("selected") || []);
    channels.replaceChildren();
    if (names.length < 2) return;
    names.forEach((name, i) => {
      const label = el("label", {}, channels);
      const box = el("input", { type: "checkbox", className: "ezs-ch" }, label);
      box.dataset.index = String(i);
      box.checked = selected.size === 0 || selected.has(i);
      label.append(name);
      box.addEventListener("change", () => {
        const on = [...channels.querySelectorAll("input.ezs-ch")]
          .filter((b) => b.checked)
          .map((b) => Number(b.dataset.index));
        // All (or none) ticked means "show all": an empty selection.
        model.set("selected", on.length === names.length || on.length === 0 ? [] : on);
        model.save_changes();
      });
    });
  }

  // While paused the frame on screen stays: `held` is what was drawn last.
  let held = null;
  const offscreen = document.createElement("canvas");

  function ranged(lo, hi) {
    if (lo == null || hi == null || !Number.isFinite(lo) || !Number.isFinite(hi)) return [-1, 1];
    return lo === hi ? [lo - 1, hi + 1] : [lo, hi];
  }

  function caption(text, x, y) {
    const width = ctx.measureText(text).width;
    ctx.fillStyle = "rgba(255,255,255,0.8)";
    ctx.fillRect(x - 2, y - 10, width + 4, 13);
    ctx.fillStyle = "#57606a";
    ctx.fillText(text, x, y);
  }

  function drawLanes(head, data, w, h) {
    const cols = head.columns || 0;
    const nch = head.channels || 0;
    if (!cols || !nch || data.length < cols * 2 * nch) return false;
    const labels = head.labels || [];
    const lane = h / nch;
    const autoscale = !!model.get("autoscale");
    const fixed = model.get("y_range") || [-1, 1];
    const xs = w / cols;
    for (let c = 0; c < nch; c++) {
      // Per-lane range: each channel's own extremes when autoscaling.
      let ymin = fixed[0];
      let ymax = fixed[1];
      if (autoscale) {
        ymin = Infinity;
        ymax = -Infinity;
        for (let i = 0; i < cols; i++) {
          const a = data[i * 2 * nch + c];
          const b = data[(i * 2 + 1) * nch + c];
          if (a < ymin) ymin = a;
          if (b > ymax) ymax = b;
        }
        if (!Number.isFinite(ymin)) {
          ymin = -1;
          ymax = 1;
        }
        if (ymin === ymax) {
          ymin -= 1;
          ymax += 1;
        }
      }
      const top = c * lane + 2;
      const span = lane - 4;
      const yOf = (v) => top + span - ((Math.min(Math.max(v, ymin), ymax) - ymin) / (ymax - ymin)) * span;
      ctx.fillStyle = ctx.strokeStyle = COLORS[c % COLORS.length];
      ctx.beginPath();
      let prev = null;
      for (let i = 0; i < cols; i++) {
        const a = data[i * 2 * nch + c];
        const b = data[(i * 2 + 1) * nch + c];
        if (Number.isNaN(a) || Number.isNaN(b)) {
          prev = null;
          continue;
        }
        const x = i * xs;
        const y1 = yOf(b);
        const y0 = yOf(a);
        ctx.fillRect(x, y1, Math.max(1, xs), Math.max(1, y0 - y1));
        if (prev !== null) {
          ctx.moveTo(x - xs, prev);
          ctx.lineTo(x, (y0 + y1) / 2);
        }
        prev = (y0 + y1) / 2;
      }
      ctx.stroke();
      ctx.fillStyle = "#57606a";
      ctx.fillText(`${labels[c] ?? c}  [${fmt(ymin)}, ${fmt(ymax)}]`, 4, top + 11);
    }
    if (head.view === "sweep" && head.cursor >= 0) {
      ctx.fillStyle = "rgba(31,35,40,0.35)";
      ctx.fillRect((head.cursor + 1) * xs, 0, 2, h);
    }
    const unit = head.view === "spectrum" ? "Hz" : "s";
    const range = autoscale ? "auto" : `${fixed[0]},${fixed[1]}`;
    return { lanes: nch, range, text: `${head.view} ${fmt(head.x0)}–${fmt(head.x1)} ${unit}` };
  }

  function drawImage(head, data, w, h) {
    const nch = head.channels || 0;
    const rows = head.rows || 0;
    const cols = head.columns || 0;
    if (!nch || !rows || !cols || data.length < nch * rows * cols) return false;
    // One colour scale for all lanes: the frame's extremes, or the fixed range.
    const [lo, hi] = model.get("autoscale") ? ranged(head.lo, head.hi) : model.get("y_range") || [-1, 1];
    const scale = 255 / (hi - lo);
    offscreen.width = cols;
    offscreen.height = rows;
    const octx = offscreen.getContext("2d");
    const img = octx.createImageData(cols, rows);
    const px = img.data;
    const lane = h / nch;
    const labels = head.labels || [];
    ctx.imageSmoothingEnabled = false;
    for (let c = 0; c < nch; c++) {
      const base = c * rows * cols;
      for (let i = 0; i < rows * cols; i++) {
        const v = data[base + i];
        const o = i * 4;
        if (Number.isNaN(v)) {
          px[o + 3] = 0;
          continue;
        } // NaN: the background shows
        const k = Math.min(255, Math.max(0, Math.round((v - lo) * scale))) * 3;
        px[o] = LUT[k];
        px[o + 1] = LUT[k + 1];
        px[o + 2] = LUT[k + 2];
        px[o + 3] = 255;
      }
      octx.putImageData(img, 0, 0);
      ctx.drawImage(offscreen, 0, 0, cols, rows, 0, c * lane, w, lane);
      const name = nch > 1 ? `${labels[c] ?? c}  ` : "";
      caption(`${name}${head.ydim || "rows"} ${fmt(head.y0)} (top) – ${fmt(head.y1)}`, 4, c * lane + 12);
    }
    const unit = head.xdim === "time" ? " s" : "";
    return {
      lanes: nch,
      range: `${lo},${hi}`,
      text: `image ${rows}×${cols} · ${head.xdim || "columns"} ${fmt(head.x0)}–${fmt(head.x1)}${unit} · colour [${fmt(lo)}, ${fmt(hi)}]`,
    };
  }

  function drawScatter(head, data, w, h) {
    const nset = head.channels || 0;
    const n = head.points || 0;
    if (!nset || data.length < nset * n * 2) return false;
    let xr, yr;
    if (model.get("autoscale")) {
      xr = ranged(head.x0, head.x1);
      yr = ranged(head.lo, head.hi);
      const px = (xr[1] - xr[0]) * 0.05;
      const py = (yr[1] - yr[0]) * 0.05;
      xr = [xr[0] - px, xr[1] + px];
      yr = [yr[0] - py, yr[1] + py];
    } else {
      xr = yr = model.get("y_range") || [-1, 1]; // a fixed range holds both axes
    }
    // The plot area leaves a strip at the bottom for the axes' ranges.
    const left = 4,
      top = 4,
      right = w - 4,
      bottom = h - 18;
    ctx.strokeStyle = "#d0d7de";
    ctx.strokeRect(left - 0.5, top - 0.5, right - left + 1, bottom - top + 1);
    const sx = (right - left) / (xr[1] - xr[0]);
    const sy = (bottom - top) / (yr[1] - yr[0]);
    const labels = head.labels || [];
    for (let s = 0; s < nset; s++) {
      ctx.fillStyle = COLORS[s % COLORS.length];
      for (let i = 0; i < n; i++) {
        const o = (s * n + i) * 2;
        const x = data[o];
        const y = data[o + 1];
        if (!(x >= xr[0] && x <= xr[1] && y >= yr[0] && y <= yr[1])) continue; // NaN, outside
        ctx.fillRect(left + (x - xr[0]) * sx - 1.5, bottom - (y - yr[0]) * sy - 1.5, 3, 3);
      }
    }
    ctx.fillStyle = "#57606a";
    const sets = nset > 1 ? `  ${labels.join(", ")}` : "";
    ctx.fillText(`x [${fmt(xr[0])}, ${fmt(xr[1])}]  y [${fmt(yr[0])}, ${fmt(yr[1])}]${sets}`, 4, h - 4);
    const dropped = head.dropped ? ` (${head.dropped} older not drawn)` : "";
    return { lanes: nset, range: `${xr},${yr}`, text: `scatter ${n} points${dropped}` };
  }

  function draw() {
    try {
      const t0 = performance.now();
      const w = model.get("width") || 800;
      const h = model.get("height") || 260;
      if (canvas.width !== w) canvas.width = w;
      if (canvas.height !== h) canvas.height = h;
      let head, data;
      if (model.get("paused") && held) {
        ({ head, data } = held);
      } else {
        head = model.get("header") || {};
        data = floats(model.get("frame"));
        held = { head, data };
      }
      ctx.clearRect(0, 0, w, h);
      const views = { image: drawImage, scatter: drawScatter };
      const drawn = (views[head.view] || drawLanes)(head, data, w, h);
      if (!drawn) {
        ctx.fillStyle = "#57606a";
        ctx.fillText(head.note || "waiting for data…", 10, 20);
        status.textContent = head.note ? "" : "no frame yet";
        return;
      }
      draws += 1;
      const ms = performance.now() - t0;
      root.dataset.draws = String(draws);
      root.dataset.drawMs = ms.toFixed(3);
      root.dataset.view = head.view;
      root.dataset.lanes = String(drawn.lanes);
      root.dataset.range = drawn.range; // the range drawn (x then y for a scatter)
      root.dataset.seq = String(head.seq ?? "");
      status.textContent = `${drawn.text} · frame ${head.seq ?? draws} · draw ${ms.toFixed(1)} ms`;
    } catch (err) {
      report(err);
    }
  }

  const onPause = () => {
    model.set("paused", !model.get("paused"));
    model.save_changes();
  };
  const onAuto = () => {
    model.set("autoscale", auto.checked);
    model.save_changes();
  };
  const onRange = () => {
    const a = Number(lo.value);
    const b = Number(hi.value);
    if (Number.isFinite(a) && Number.isFinite(b) && a < b) {
      model.set("y_range", [a, b]);
      model.save_changes();
      lo.style.outline = hi.style.outline = "";
    } else {
      lo.style.outline = hi.style.outline = "2px solid #cf222e"; // refused: low must be < high
    }
  };
  pause.addEventListener("click", onPause);
  auto.addEventListener("change", onAuto);
  lo.addEventListener("change", onRange);
  hi.addEventListener("change", onRange);

  // Frames arrive faster than a screen refreshes only rarely: draw once per animation frame.
  let pending = false;
  const schedule = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      draw();
    });
  };
  const onControls = () => {
    controls();
    schedule();
  };
  // Paused: what arrives is not drawn (a frame in flight when pause was pressed).
  const onFrame = () => {
    if (!(model.get("paused") && held)) schedule();
  };
  const handlers = [
    ["change:frame", onFrame],
    ["change:header", onFrame],
    ["change:paused", onControls],
    ["change:autoscale", onControls],
    ["change:y_range", onControls],
    ["change:title", onControls],
    ["change:channel_names", channelBoxes],
    ["change:selected", channelBoxes],
  ];
  for (const [name, fn] of handlers) model.on(name, fn);
  controls();
  channelBoxes();
  draw();

  return () => {
    for (const [name, fn] of handlers) model.off(name, fn);
    pause.removeEventListener("click", onPause);
    auto.removeEventListener("change", onAuto);
    lo.removeEventListener("change", onRange);
    hi.removeEventListener("change", onRange);
    root.remove();
  };
}

export default { render };
