// @ts-check
// Colours of the graph widget's processes and hosts (the stylesheet is
// ezmsg_lab/widgets/static/graph.css, the widget's anywidget `_css`).

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
