// @ts-check
// A made-up pipeline for warming ELK up. elkjs is compiled Java (GWT): its first layouts
// run mostly in V8's interpreter and get fast only as V8 optimises the hot code, which
// takes about a second of layouts (measured: 300 units take ~1.6 s cold and ~0.5 s after
// a few small layouts; a 20-unit layout goes from ~75 to ~15 ms). Laying this graph out
// while the worker is idle pays that price before a real topology is waiting for it.

const stream = (address) => ({
  address,
  name: address.split("/").pop(),
  msg_type: "m.A",
  settings: false,
  num_buffers: 32,
});

/**
 * Collections of units chained with skip connections, the first feeding the others, the
 * others feeding the last: the shapes (compound nodes, fixed ports, orthogonal routes
 * across collections) that real topologies make ELK run through.
 * @param {number} groups
 * @param {number} perGroup
 * @returns {import("./state.js").GraphState}
 */
export function warmupState(groups = 4, perGroup = 5) {
  /** @type {any} */
  const state = { schema: 1, digest: "warmup", units: {}, groups: {}, topics: {}, edges: {}, processes: {}, hosts: {} };
  const addr = (g, i) => `W/G${g}/U${i}`;
  state.groups.W = { address: "W", name: "W", parent: null, path: [], component_type: "w.W", children: [] };
  for (let g = 0; g < groups; g++) {
    const ga = `W/G${g}`;
    state.groups.W.children.push(ga);
    state.groups[ga] = { address: ga, name: `G${g}`, parent: "W", path: ["W"], component_type: "w.G", children: [] };
    for (let i = 0; i < perGroup; i++) {
      const a = addr(g, i);
      state.groups[ga].children.push(a);
      state.units[a] = {
        address: a,
        name: `U${i}`,
        collection: ga,
        path: ["W", ga],
        component_type: "w.Stage",
        session: "s",
        process_id: null,
        pid: null,
        host: null,
        inputs: [stream(`${a}/INPUT`)],
        outputs: [stream(`${a}/OUTPUT`)],
      };
    }
  }
  const link = (a, b) => {
    const id = `${a}/OUTPUT->${b}/INPUT`;
    state.edges[id] = {
      id,
      source: `${a}/OUTPUT`,
      target: `${b}/INPUT`,
      source_node: a,
      target_node: b,
      owners: ["s"],
      session: "s",
    };
  };
  for (let g = 0; g < groups; g++) {
    for (let i = 0; i + 1 < perGroup; i++) link(addr(g, i), addr(g, i + 1));
    for (let i = 0; i + 2 < perGroup; i++) link(addr(g, i), addr(g, i + 2));
  }
  for (let g = 1; g + 1 < groups; g++) {
    link(addr(0, g % perGroup), addr(g, 0));
    link(addr(g, perGroup - 1), addr(groups - 1, g % perGroup));
  }
  return state;
}
