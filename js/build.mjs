// One bundler command for the widgets: `node build.mjs [--outfile PATH]`.
// Deterministic (same sources and lockfile, same bytes): tests/unit/test_js_bundle.py
// rebuilds into a temporary folder and compares with the shipped file.
import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const i = args.indexOf("--outfile");
const outfile =
  i >= 0 ? path.resolve(args[i + 1]) : path.join(here, "..", "ezmsg_lab", "widgets", "static", "graph.js");

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
  // Minifying strips elkjs's own copyright comments (they are not /*! legal comments), so
  // the banner carries its notice (EPL-2.0 section 3.3); THIRD_PARTY_NOTICES.md has the rest.
  banner: {
    js:
      "/* ezmsg-lab graph widget (MIT, see LICENSE). Bundles elkjs 0.12.1: Copyright (c) 2017, 2021 " +
      "Kiel University and others, EPL-2.0 OR GPL-3.0-or-later, distributed here under EPL-2.0 " +
      "(https://www.eclipse.org/legal/epl-2.0); source: https://github.com/kieler/elkjs. " +
      "See THIRD_PARTY_NOTICES.md. */",
  },
});
