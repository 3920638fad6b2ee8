// @ts-check
// ezmsg-lab scope widget (MIT). Plain ESM, not bundled: no dependencies.
//
// The kernel sends, per frame, `frame` (bytes: float32 columns x 2 x channels, the min and
// max of each pixel column, NaN where empty) and `header` (view, columns, channels, x0, x1,
// cursor, lo, hi, labels, seq, note). This file only draws: one lane per channel, a
// vertical min-max bar per column joined to its neighbours. Controls set `paused`,
// `autoscale`, `y_range` and `selected`, which the kernel reads.

const CSS = `
.ezs-root { font: 12px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328;
  border: 1px solid #d0d7de; border-radius: 8px; padding: 6px; background: #fff; display: inline-block; }
.ezs-bar { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; margin-bottom: 4px; }
.ezs-title { font-weight: 600; margin-right: 8px; }
.ezs-bar input[type=number] { width: 70px; }
.ezs-status { color: #57606a; margin-left: auto; font-variant-numeric: tabular-nums; }
.ezs-channels { display: flex; gap: 6px; flex-wrap: wrap; margin-top: 4px; }
.ezs-channels label { display: inline-flex; gap: 2px; align-items: center; }
.ezs-error { color: #cf222e; white-space: pre-wrap; display: none; }
canvas.ezs-canvas { display: block; background: #fbfbfc; }
`;

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

function fmt(x) {
  if (x == null || !Number.isFinite(x)) return "–";
  const a = Math.abs(x);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? x.toExponential(2) : String(Number(x.toPrecision(4)));
}

function render({ model, el: host }) {
  const root = el("div", { className: "ezs-root" }, host);
  el("style", { textContent: CSS }, root);
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

  function draw() {
    try {
      const t0 = performance.now();
      const w = model.get("width") || 800;
      const h = model.get("height") || 260;
      if (canvas.width !== w) canvas.width = w;
      if (canvas.height !== h) canvas.height = h;
      const head = model.get("header") || {};
      const data = floats(model.get("frame"));
      ctx.clearRect(0, 0, w, h);
      const cols = head.columns || 0;
      const nch = head.channels || 0;
      if (!cols || !nch || data.length < cols * 2 * nch) {
        ctx.fillStyle = "#57606a";
        ctx.fillText(head.note || "waiting for data…", 10, 20);
        status.textContent = head.note ? "" : "no frame yet";
        return;
      }
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
      draws += 1;
      const ms = performance.now() - t0;
      root.dataset.draws = String(draws);
      root.dataset.drawMs = ms.toFixed(3);
      root.dataset.view = head.view;
      root.dataset.lanes = String(nch);
      root.dataset.seq = String(head.seq ?? "");
      const unit = head.view === "spectrum" ? "Hz" : "s";
      status.textContent = `${head.view} ${fmt(head.x0)}–${fmt(head.x1)} ${unit} · frame ${head.seq ?? draws} · draw ${ms.toFixed(1)} ms`;
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
  const handlers = [
    ["change:frame", schedule],
    ["change:header", schedule],
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
