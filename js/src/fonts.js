// @ts-check
// Text sizes of the drawing, in px at zoom 1. The widget never fits a graph of up to
// MAX_READABLE_UNITS units below READABLE_PX / MIN_FONT_PX: the smallest text then still
// shows at READABLE_PX or more (bigger graphs are fitted whole and read by zooming).
export const FONT_FAMILY =
  'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", "Noto Sans", "DejaVu Sans", Arial, sans-serif';

export const FONT_PX = {
  name: 13.5,
  type: 12,
  port: 12,
  meta: 12,
  group: 13.5,
  sub: 12,
  topic: 12,
  edge: 12,
  toggle: 12,
};
export const MIN_FONT_PX = Math.min(...Object.values(FONT_PX));
export const READABLE_PX = 11;
export const MAX_READABLE_UNITS = 30;
export const READABLE_ZOOM = READABLE_PX / MIN_FONT_PX;

export const FONTS = {
  name: `600 ${FONT_PX.name}px ${FONT_FAMILY}`,
  type: `${FONT_PX.type}px ${FONT_FAMILY}`,
  port: `${FONT_PX.port}px ${FONT_FAMILY}`,
  meta: `${FONT_PX.meta}px ${FONT_FAMILY}`,
  group: `600 ${FONT_PX.group}px ${FONT_FAMILY}`,
  sub: `${FONT_PX.sub}px ${FONT_FAMILY}`,
  topic: `${FONT_PX.topic}px ${FONT_FAMILY}`,
  edge: `${FONT_PX.edge}px ${FONT_FAMILY}`,
  toggle: `${FONT_PX.toggle}px ${FONT_FAMILY}`,
};
