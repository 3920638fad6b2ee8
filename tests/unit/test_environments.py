"""pyproject.toml, environment.yml and binder/ name the same runtime dependencies."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _norm(req: str) -> tuple[str, str]:
    req = req.strip().strip("'\"")
    m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", req)
    assert m, req
    name = m.group(1).lower().replace("_", "-")
    spec = ",".join(sorted(s.strip() for s in m.group(2).replace(" ", "").split(",") if s))
    return name, spec


def _pyproject() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = dict(_norm(d) for d in data["project"]["dependencies"])
    deps.update(_norm(d) for d in data["project"]["optional-dependencies"]["notebook"])
    return deps


def _conda(path: Path) -> dict[str, str]:
    env = yaml.safe_load(path.read_text())
    deps: dict[str, str] = {}
    for item in env["dependencies"]:
        items = item["pip"] if isinstance(item, dict) else [item]
        for dep in items:
            if dep == "pip" or dep.startswith(("-e", "python=")):
                continue
            name, spec = _norm(dep)
            deps[name] = spec
    return deps


def test_environment_yml_matches_pyproject():
    assert _conda(ROOT / "environment.yml") == _pyproject()


def test_binder_matches_pyproject():
    assert _conda(ROOT / "binder" / "environment.yml") == _pyproject()


def test_binder_installs_the_package():
    assert "pip install" in (ROOT / "binder" / "postBuild").read_text()
