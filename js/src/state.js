// @ts-check
// Graph state helpers shared by the widget: the diff format of
// ezmsg_lab/model/graph_view.py, which parts are visible, and what the layout depends on.

/** @typedef {{address:string,name:string,msg_type:string,settings:boolean,num_buffers:(number|null)}} Stream */
/** @typedef {{address:string,name:string,collection:(string|null),path:string[],component_type:string,session:string,process_id:(string|null),pid:(number|null),host:(string|null),inputs:Stream[],outputs:Stream[]}} Unit */
/** @typedef {{address:string,name:string,parent:(string|null),path:string[],component_type:string,children:string[]}} Group */
/** @typedef {{address:string,name:string,parent:(string|null),direction:(string|null),kind:string,msg_type:(string|null)}} Topic */
/** @typedef {{id:string,source:string,target:string,source_node:string,target_node:string,owners:string[],session:(string|null)}} Edge */
/** @typedef {{schema:number,digest:string,units:Object<string,Unit>,groups:Object<string,Group>,topics:Object<string,Topic>,edges:Object<string,Edge>,processes:Object<string,any>,hosts:Object<string,any>}} GraphState */

export const SECTIONS = ["units", "groups", "topics", "edges", "processes", "hosts"];

/** @returns {GraphState} */
export function emptyState() {
  return { schema: 1, digest: "", units: {}, groups: {}, topics: {}, edges: {}, processes: {}, hosts: {} };
}

/**
 * Normalise whatever the model holds into a full state (missing sections become empty).
 * @param {any} raw
 * @returns {GraphState}
 */
export function normalizeState(raw) {
  const out = emptyState();
  if (!raw || typeof raw !== "object") return out;
  for (const key of Object.keys(raw)) out[key] = raw[key];
  for (const s of SECTIONS) if (!out[s] || typeof out[s] !== "object") out[s] = {};
  return out;
}

/**
 * Apply a diff made by graph_view.diff_state. Throws when the diff does not fit the state,
 * so the caller can ask Python for the full state instead.
 * @param {GraphState} state
 * @param {any} diff
 * @returns {GraphState}
 */
export function applyDiff(state, diff) {
  if (!diff || diff.base !== state.digest) {
    throw new Error(`diff base ${diff?.base} does not match state digest ${state.digest}`);
  }
  /** @type {any} */
  const out = { ...state };
  for (const s of SECTIONS) out[s] = { ...state[s] };
  for (const [section, part] of Object.entries(diff.sections || {})) {
    if (!SECTIONS.includes(section)) throw new Error(`unknown diff section ${section}`);
    const target = out[section];
    for (const key of part.removed || []) {
      if (!(key in target)) throw new Error(`diff removes absent ${section}[${key}]`);
      delete target[key];
    }
    for (const [key, rec] of Object.entries(part.added || {})) {
      if (key in target) throw new Error(`diff adds existing ${section}[${key}]`);
      target[key] = rec;
    }
    for (const [key, rec] of Object.entries(part.changed || {})) {
      if (!(key in target)) throw new Error(`diff changes absent ${section}[${key}]`);
      target[key] = rec;
    }
  }
  out.digest = diff.digest;
  return out;
}

/**
 * The innermost collapsed group hiding `path` (a list of ancestor group ids, outermost
 * first), or null when everything on the path is expanded.
 * @param {string[]} path
 * @param {Set<string>} collapsed
 * @returns {string|null}
 */
export function hiddenBy(path, collapsed) {
  for (const g of path) if (collapsed.has(g)) return g;
  return null;
}

/**
 * Where an entity is drawn: its own node, or the collapsed group that hides it.
 * @param {GraphState} state
 * @param {Set<string>} collapsed
 * @param {string} nodeId  a unit, topic or group address
 * @returns {string|null}  an ELK node id ("u:", "t:", "g:") or null when unknown
 */
export function visibleNode(state, collapsed, nodeId) {
  const unit = state.units[nodeId];
  if (unit) {
    const h = hiddenBy(unit.path || [], collapsed);
    return h ? `g:${h}` : `u:${nodeId}`;
  }
  const topic = state.topics[nodeId];
  if (topic) {
    const path = topic.parent ? groupPath(state, topic.parent) : [];
    const h = hiddenBy(path, collapsed);
    return h ? `g:${h}` : `t:${nodeId}`;
  }
  if (state.groups[nodeId]) {
    const h = hiddenBy(groupPath(state, nodeId), collapsed);
    return h ? `g:${h}` : `g:${nodeId}`;
  }
  return null;
}

/**
 * The group and its ancestors, outermost first.
 * @param {GraphState} state
 * @param {string} groupId
 */
export function groupPath(state, groupId) {
  const g = state.groups[groupId];
  if (!g) return [];
  return [...(g.path || []), groupId];
}

/** Short class name: "ezmsg_lab.demo.units.Filter" -> "Filter". */
export function shortType(t) {
  if (!t) return "";
  const parts = String(t).split(".");
  return parts[parts.length - 1];
}
