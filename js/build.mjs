// One bundler command for the widgets: `node build.mjs [--outfile PATH]`.
// Deterministic (same sources and lockfile, same bytes): tests/unit/test_js_bundle.py
// rebuilds into a temporary folder and compares with the shipped file.
import { build, transform } from "esbuild";
import { gzipSync } from "fflate";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const i = args.indexOf("--outfile");
const outfile =
  i >= 0 ? path.resolve(args[i + 1]) : path.join(here, "..", "ezmsg_lab", "widgets", "static", "graph.js");

// elkjs runs only in the layout worker (src/engine.js): its worker script, minified, is
// bundled gzip-compressed as base64 text (module "elk-worker-source"), a third of its size;
// the browser inflates it with DecompressionStream. fflate (pinned) keeps the bytes the
// same on every machine; mtime 0 keeps the gzip header constant.
const elkWorker = await transform(readFileSync(path.join(here, "node_modules/elkjs/lib/elk-worker.min.js"), "utf8"), {
  minify: true,
  charset: "utf8",
  legalComments: "none",
});
const elkWorkerGz = Buffer.from(gzipSync(Buffer.from(elkWorker.code, "utf8"), { level: 9, mtime: 0 })).toString(
  "base64",
);
const elkWorkerSource = {
  name: "elk-worker-source",
  setup(b) {
    b.onResolve({ filter: /^elk-worker-source$/ }, () => ({ path: "elk-worker-source", namespace: "elk" }));
    b.onLoad({ filter: /.*/, namespace: "elk" }, () => ({
      contents: `export default ${JSON.stringify(elkWorkerGz)};`,
      loader: "js",
    }));
  },
};

await build({
  plugins: [elkWorkerSource],
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
      "/* ezmsg-lab graph widget (MIT, see LICENSE). Bundles elkjs 0.12.1 (its worker script, gzip + base64): Copyright (c) 2017, 2021 " +
      "Kiel University and others, EPL-2.0 OR GPL-3.0-or-later, distributed here under EPL-2.0 " +
      "(https://www.eclipse.org/legal/epl-2.0); source: https://github.com/kieler/elkjs. " +
      "See THIRD_PARTY_NOTICES.md. */",
  },
});
