"""What ships is what the source builds: ezmsg_lab/widgets/static/graph.js must equal a fresh
esbuild build of js/src with the locked esbuild (js/package-lock.json)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "js"
SHIPPED = ROOT / "ezmsg_lab" / "widgets" / "static" / "graph.js"


def _node_modules_ready() -> bool:
    # The bundler, the layout library it bundles, and fflate (compresses elkjs's worker).
    return all(
        (JS / "node_modules" / name / "package.json").exists()
        for name in ("esbuild", "elkjs", "fflate")
    )


def test_shipped_bundle_matches_a_fresh_build(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: cannot rebuild js/src to compare with the bundle")
    if not _node_modules_ready():
        npm = shutil.which("npm")
        assert npm is not None, "node is installed but npm is not: install npm to run `npm ci`"
        proc = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=JS,
            capture_output=True,
            text=True,
            timeout=170,
        )
        assert proc.returncode == 0, f"npm ci failed in js/:\n{proc.stdout}\n{proc.stderr}"
    out = tmp_path / "graph.js"
    proc = subprocess.run(
        [node, "build.mjs", "--outfile", str(out)],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"esbuild failed:\n{proc.stdout}\n{proc.stderr}"
    fresh = out.read_bytes()
    assert SHIPPED.exists(), f"{SHIPPED} is missing: run `make js`"
    shipped = SHIPPED.read_bytes()
    assert fresh == shipped, (
        f"{SHIPPED.relative_to(ROOT)} ({len(shipped)} bytes) differs from a fresh build of "
        f"js/src ({len(fresh)} bytes): run `make js` and commit the bundle"
    )


def test_lockfile_pins_the_bundler_and_the_layout_library() -> None:
    import json

    lock = json.loads((JS / "package-lock.json").read_text())
    packages = lock["packages"]
    for name in ("esbuild", "elkjs", "fflate"):
        entry = packages.get(f"node_modules/{name}")
        assert entry and entry.get("version"), f"{name} is not locked in js/package-lock.json"
    declared = json.loads((JS / "package.json").read_text())["devDependencies"]
    # Exact versions (no ^ or ~): the bundle must not change under our feet.
    assert all(v[0].isdigit() for v in declared.values()), declared
