// A small graph state in the shape ezmsg_lab/model/graph_view.py sends: collection G holds
// units G/A -> G/B, wired through their streams, and a free topic T that G/B publishes to.

const stream = (address, settings = false) => ({
  address,
  name: address.split("/").pop(),
  msg_type: "AxisArray",
  settings,
  num_buffers: 32,
});

const unit = (address, { inputs = [], outputs = [], collection = "G", path = ["G"] } = {}) => ({
  address,
  name: address.split("/").pop(),
  collection,
  path,
  component_type: "pkg.mod.Filter",
  session: "s",
  process_id: "p1",
  pid: 42,
  host: "h",
  inputs,
  outputs,
});

const edge = (source, target, sourceNode, targetNode) => ({
  id: `${source}->${target}`,
  source,
  target,
  source_node: sourceNode,
  target_node: targetNode,
  owners: ["s"],
  session: "s",
});

export function smallState() {
  return {
    schema: 1,
    digest: "d0",
    units: {
      "G/A": unit("G/A", { outputs: [stream("G/A/OUTPUT")], inputs: [stream("G/A/INPUT_SETTINGS", true)] }),
      "G/B": unit("G/B", { inputs: [stream("G/B/INPUT")], outputs: [stream("G/B/OUTPUT")] }),
    },
    groups: {
      G: { address: "G", name: "G", parent: null, path: [], component_type: "pkg.G", children: ["G/A", "G/B"] },
    },
    topics: { T: { address: "T", name: "T", parent: null, direction: null, kind: "free", msg_type: null } },
    edges: Object.fromEntries(
      [edge("G/A/OUTPUT", "G/B/INPUT", "G/A", "G/B"), edge("G/B/OUTPUT", "T", "G/B", "T")].map((e) => [e.id, e]),
    ),
    processes: { p1: { color: 0, host_color: 0, host: "h" } },
    hosts: { h: { color: 0 } },
  };
}
