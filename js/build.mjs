// One bundler command for the widgets: `node build.mjs [--outfile PATH]`.
// Deterministic (same sources and lockfile, same bytes): tests/unit/test_js_bundle.py
// rebuilds into a temporary folder and compares with the shipped file.
import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const i = args.indexOf("--outfile");
const outfile = i >= 0 ? path.resolve(args[i + 1]) : path.join(here, "..", "ezmsg_lab", "widgets", "static", "graph.js");

await build({
  absWorkingDir: here,
  entryPoints: ["src/graph.js"],
  bundle: true,
  format: "esm",
  target: "es2020",
  minify: true,
  legalComments: "eof",
  charset: "utf8",
  outfile,
  logLevel: "warning",
  // elkjs is EPL-2.0 and its bundle carries no license comment of its own.
  banner: { js: "/* ezmsg-lab graph widget (MIT). Bundles elkjs (EPL-2.0, https://github.com/kieler/elkjs). */" },
});
