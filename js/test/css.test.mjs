// The stylesheet (ezmsg_lab/widgets/static/graph.css) takes its fonts from the variables the
// view sets from fonts.js: every one it uses must exist, or text would fall back to defaults
// and no longer match what the layout measured.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { FONT_PX } from "../src/fonts.js";

const css = readFileSync(new URL("../../ezmsg_lab/widgets/static/graph.css", import.meta.url), "utf8");

describe("graph.css", () => {
  it("uses only the font-size variables fonts.js defines", () => {
    const used = new Set([...css.matchAll(/var\(--ezg-px-([a-z]+)\)/g)].map((m) => m[1]));
    assert.ok(used.size > 0);
    for (const kind of used) assert.ok(kind in FONT_PX, `--ezg-px-${kind} has no FONT_PX.${kind}`);
  });

  it("styles the root the view creates, and leaves no template placeholder", () => {
    assert.match(css, /\.ezg-root\s*\{/);
    assert.match(css, /font-family: var\(--ezg-font\)/);
    assert.doesNotMatch(css, /\$\{/);
  });
});
