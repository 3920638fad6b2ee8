// Look of the graph widget: a light theme that sits well on JupyterLab's default.
import { FONT_FAMILY, FONT_PX } from "./fonts.js";

const px = (k) => `${FONT_PX[k]}px`;

// Process colours: distinct, readable on white, and away from the red/amber that mean
// errors and backpressure.
export const PROCESS_COLORS = [
  "#4e79a7",
  "#59a14f",
  "#b07aa1",
  "#76b7b2",
  "#9c755f",
  "#6a5acd",
  "#17becf",
  "#8c9d3c",
  "#d37295",
  "#5f7c8a",
  "#2f6f4f",
  "#a0522d",
];
export const HOST_COLORS = ["#57606a", "#0969da", "#8250df", "#1a7f37", "#9a6700", "#bf3989"];

export const processColor = (i) => (i == null || i < 0 ? "#8c959f" : PROCESS_COLORS[i % PROCESS_COLORS.length]);
export const hostColor = (i) => (i == null || i < 0 ? "#8c959f" : HOST_COLORS[i % HOST_COLORS.length]);

// The root is a column: toolbar, drawing, legend. The legend sits under the drawing (not
// over it), so a fitted graph has the whole width and nothing starts hidden.
export const CSS = `
.ezg-root { position: relative; font-family: ${FONT_FAMILY}; color: #1f2328; background: #ffffff;
  border: 1px solid #d0d7de; border-radius: 8px; overflow: hidden; height: var(--ezg-height, 460px);
  display: flex; flex-direction: column; box-sizing: border-box;
  user-select: none; -webkit-user-select: none; }
.ezg-toolbar { flex: none; display: flex; gap: 8px; align-items: center; padding: 6px 10px;
  border-bottom: 1px solid #eaeef2; z-index: 2; }
.ezg-title { font-weight: 600; font-size: 13.5px; color: #1f2328; }
.ezg-counts { font-size: 12.5px; color: #59636e; }
.ezg-hint { font-size: 12px; color: #59636e; display: none; }
.ezg-closed-note { font-size: 12.5px; font-weight: 600; color: #57606a; background: #eaeef2;
  border: 1px solid #d0d7de; border-radius: 6px; padding: 2px 8px; display: none; }
.ezg-spacer { flex: 1; }
.ezg-btn { font: 12.5px ${FONT_FAMILY}; color: #1f2328; background: #f6f8fa;
  border: 1px solid #d0d7de; border-radius: 6px; padding: 3px 10px; cursor: pointer; }
.ezg-btn:hover { background: #eef1f4; border-color: #afb8c1; }
.ezg-svg { display: block; flex: 1 1 auto; min-height: 0; width: 100%; cursor: grab; background:
  radial-gradient(circle, #e6e9ed 1px, transparent 1.2px) 0 0 / 18px 18px; }
.ezg-svg.ezg-panning { cursor: grabbing; }
.ezg-group-box { fill: rgba(246,248,250,.78); stroke: #d0d7de; stroke-width: 1; }
.ezg-group-title { font: ${`600 ${px("group")} ${FONT_FAMILY}`}; fill: #24292f; }
.ezg-group-sub { font: ${px("sub")} ${FONT_FAMILY}; fill: #6e7781; }
.ezg-toggle { cursor: pointer; }
.ezg-toggle rect { fill: #ffffff; stroke: #d0d7de; }
.ezg-toggle:hover rect { fill: #eef1f4; }
.ezg-toggle text { font: ${px("toggle")} ${FONT_FAMILY}; fill: #57606a; }
.ezg-collapsed .ezg-card { stroke-dasharray: 5 3; fill: #f6f8fa; }
.ezg-card { fill: #ffffff; stroke: #d0d7de; stroke-width: 1; filter: drop-shadow(0 1px 1.5px rgba(31,35,40,.08)); }
.ezg-unit { cursor: pointer; }
.ezg-unit:hover .ezg-card { stroke: #8c959f; }
.ezg-unit.ezg-selected .ezg-card { stroke: #0969da; stroke-width: 2.2; }
.ezg-name { font: ${`600 ${px("name")} ${FONT_FAMILY}`}; fill: #1f2328; }
.ezg-type { font: ${px("type")} ${FONT_FAMILY}; fill: #59636e; }
.ezg-meta { font: ${px("meta")} ${FONT_FAMILY}; fill: #6e7781; }
.ezg-sep { stroke: #eaeef2; }
.ezg-port-label { font: ${px("port")} ${FONT_FAMILY}; fill: #424a53; }
.ezg-port { stroke: #ffffff; stroke-width: 1.5; }
.ezg-port.ezg-warn { fill: #d4a72c !important; }
.ezg-port.ezg-critical { fill: #cf222e !important; }
.ezg-unit.ezg-missing { opacity: .5; }
.ezg-unit.ezg-missing .ezg-card { fill: #f6f8fa; stroke-dasharray: 4 3; }
.ezg-unit.ezg-missing .ezg-bar { fill: #afb8c1 !important; }
.ezg-missing-tag { font: ${`600 ${px("meta")} ${FONT_FAMILY}`}; fill: #6e7781; display: none; }
.ezg-unit.ezg-missing .ezg-missing-tag { display: inline; }
.ezg-unit.ezg-missing .ezg-host { display: none; }
.ezg-error { display: none; }
.ezg-unit.ezg-has-error .ezg-error { display: inline; }
.ezg-error circle { fill: #cf222e; stroke: #ffffff; stroke-width: 1.5; }
.ezg-error text { font: ${`700 ${px("meta")} ${FONT_FAMILY}`}; fill: #ffffff; }
.ezg-unit.ezg-has-error .ezg-card { stroke: #cf222e; }
.ezg-topic rect { fill: #eef2f6; stroke: #c3ccd5; }
.ezg-topic text { font: ${px("topic")} ${FONT_FAMILY}; fill: #424a53; }
.ezg-edge { fill: none; stroke: #8c959f; stroke-width: 1.4; }
.ezg-edge-hit { fill: none; stroke: transparent; stroke-width: 10; }
.ezg-edge.ezg-warn { stroke: #d4a72c; stroke-width: 2.2; }
.ezg-edge.ezg-critical { stroke: #cf222e; stroke-width: 2.6; }
.ezg-edge.ezg-missing { stroke: #c8cdd3; stroke-dasharray: 4 3; }
.ezg-edge.ezg-hover { stroke: #0969da; }
.ezg-edge-label { font: ${px("edge")} ${FONT_FAMILY}; fill: #424a53; paint-order: stroke; stroke: #ffffff;
  stroke-width: 3px; stroke-linejoin: round; pointer-events: none; }
.ezg-legend { flex: none; max-height: 30%; overflow: auto; display: flex; flex-wrap: wrap; align-items: center;
  gap: 2px 16px; padding: 5px 10px; border-top: 1px solid #eaeef2; background: #fbfcfd; font-size: 12.5px; }
.ezg-legend h4 { margin: 0; font-size: 11.5px; text-transform: uppercase; letter-spacing: .04em; color: #6e7781; font-weight: 600; }
.ezg-legend-row { display: flex; align-items: center; gap: 6px; line-height: 20px; white-space: nowrap; }
.ezg-legend-row.ezg-missing { color: #8c959f; text-decoration: line-through; }
.ezg-swatch { width: 10px; height: 10px; border-radius: 3px; flex: none; }
.ezg-legend-units { color: #6e7781; overflow: hidden; text-overflow: ellipsis; max-width: 260px; }
.ezg-levels { display: flex; gap: 10px; color: #59636e; margin-left: auto; }
.ezg-levels .ezg-levels-title::before { display: none; }
.ezg-levels span::before { content: ""; display: inline-block; width: 14px; height: 3px; border-radius: 2px;
  margin-right: 4px; vertical-align: middle; background: var(--c); }
.ezg-tooltip { position: absolute; z-index: 3; pointer-events: none; display: none; max-width: 380px;
  background: #ffffff; border: 1px solid #d0d7de; border-radius: 8px; padding: 8px 10px; font-size: 12.5px;
  box-shadow: 0 6px 18px rgba(31,35,40,.14); line-height: 1.45; }
.ezg-tooltip b { font-weight: 600; }
.ezg-tooltip .ezg-k { color: #6e7781; display: inline-block; min-width: 64px; margin-right: 10px; }
.ezg-tooltip .ezg-err { color: #cf222e; white-space: pre-wrap; word-break: break-word; margin-top: 4px; }
.ezg-banner { position: absolute; left: 10px; top: 44px; z-index: 4; max-width: 70%; display: none;
  background: #ffebe9; color: #82071e; border: 1px solid #ff818266; border-radius: 6px; padding: 4px 8px;
  font-size: 12.5px; }
.ezg-empty { position: absolute; inset: 0; display: flex; align-items: center; justify-content: center;
  color: #8c959f; font-size: 13px; pointer-events: none; }
.ezg-root.ezg-closed .ezg-svg { filter: grayscale(1); opacity: .55; cursor: default; }
.ezg-root.ezg-closed .ezg-unit { cursor: default; }
.ezg-root.ezg-closed .ezg-legend, .ezg-root.ezg-closed .ezg-counts { opacity: .6; }
.ezg-root.ezg-closed .ezg-closed-note { display: inline-block; }
`;
