"""`make test` also runs the suites on the newest CPython it finds, or says it skipped."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAKE = shutil.which("make")

pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")


def _fake_python(path: Path, version: str) -> Path:
    """An executable that answers the version query as a CPython of ``version`` would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho {version}\n")
    path.chmod(0o755)
    return path


def _make(target: str, tmp_path: Path, baseline: str) -> str:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    base = _fake_python(tmp_path / "base" / "python3.11", baseline)
    env = dict(os.environ, HOME=str(home), PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    env.pop("MAKEFLAGS", None)
    proc = subprocess.run(
        [MAKE, "-s", "-C", str(ROOT), target, f"PYTHON={base}"],  # type: ignore[list-item]
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_newest_python_comes_from_path_or_pyenv_and_broken_shims_are_skipped(tmp_path):
    bin_dir = tmp_path / "bin"
    broken = _fake_python(bin_dir / "python3.14", "x")
    broken.write_text("#!/bin/sh\necho 'pyenv: python3.14: command not found' >&2\nexit 127\n")
    _fake_python(bin_dir / "python3.12", "3.97.0")
    versions = tmp_path / "home" / ".pyenv" / "versions"
    _fake_python(versions / "3.98.1" / "bin" / "python3.13", "3.98.1")
    newest = _fake_python(versions / "3.98.10" / "bin" / "python3.13", "3.98.10")  # 10 > 9
    _fake_python(versions / "3.98.9" / "bin" / "python3.13", "3.98.9")
    assert _make("newest-python", tmp_path, "3.11.7") == str(newest)
    # PATH wins when it holds the newest.
    on_path = _fake_python(bin_dir / "python3.13", "3.99.0")
    assert _make("newest-python", tmp_path, "3.11.7") == str(on_path)


def test_nothing_newer_is_a_printed_skip(tmp_path):
    _fake_python(tmp_path / "bin" / "python3.12", "3.12.1")
    assert _make("newest-python", tmp_path, "3.99.99") == ""
    out = _make("test-newest", tmp_path, "3.99.99")
    assert "skipped: no newer CPython found than 3.99.99" in out
    assert "python3.14, python3.13, python3.12 on PATH and in ~/.pyenv/versions" in out


def test_make_test_runs_the_javascript_checks():
    """`make test` depends on js-check, which lints, type-checks and runs node's tests in js/."""
    env = dict(os.environ)
    env.pop("MAKEFLAGS", None)
    proc = subprocess.run(
        [MAKE, "-n", "-C", str(ROOT), "js-check"],  # type: ignore[list-item]
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "npm run -s lint && npm run -s typecheck && npm test" in proc.stdout
    rules = (ROOT / "Makefile").read_text().splitlines()
    test_rule = next(line for line in rules if line.startswith("test:"))
    assert "js-check" in test_rule.split(":", 1)[1].split()


def test_make_test_runs_the_type_checker():
    """`make test` depends on typecheck, which runs mypy (configured in pyproject.toml)."""
    env = dict(os.environ)
    env.pop("MAKEFLAGS", None)
    proc = subprocess.run(
        [MAKE, "-n", "-C", str(ROOT), "typecheck", "BIN=/nonexistent/bin"],  # type: ignore[list-item]
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "/nonexistent/bin/mypy" in proc.stdout.splitlines()
    rules = (ROOT / "Makefile").read_text().splitlines()
    test_rule = next(line for line in rules if line.startswith("test:"))
    assert "typecheck" in test_rule.split(":", 1)[1].split()


def test_make_test_builds_the_docs_strictly():
    """`make test` depends on docs-check: the strict site build, then tests/unit/test_docs.py."""
    env = dict(os.environ)
    env.pop("MAKEFLAGS", None)
    proc = subprocess.run(
        [MAKE, "-n", "-B", "-C", str(ROOT), "docs-check", "BIN=/nonexistent/bin"],  # type: ignore[list-item]
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "/nonexistent/bin/mkdocs build --strict --site-dir site" in lines
    assert any(line.endswith("pytest -q tests/unit/test_docs.py") for line in lines)
    assert any('pip install -q -e ".[docs]"' in line for line in lines)
    rules = (ROOT / "Makefile").read_text().splitlines()
    test_rule = next(line for line in rules if line.startswith("test:"))
    assert "docs-check" in test_rule.split(":", 1)[1].split()
