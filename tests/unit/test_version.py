"""The version is written once, in ezmsg_lab/__init__.py; the build reads it from there."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest

import ezmsg_lab

ROOT = Path(__file__).resolve().parents[2]


def test_pyproject_reads_the_version_from_the_package() -> None:
    tomllib = pytest.importorskip("tomllib", reason="tomllib is Python 3.11+")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"], "pyproject.toml must not repeat the version"
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["hatch"]["version"]["path"] == "ezmsg_lab/__init__.py"
    source = (ROOT / "ezmsg_lab" / "__init__.py").read_text()
    assert len(re.findall(r"^__version__ = ", source, re.M)) == 1


def test_installed_metadata_agrees_with_the_package() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+(\S*)", ezmsg_lab.__version__), ezmsg_lab.__version__
    assert importlib.metadata.version("ezmsg-lab") == ezmsg_lab.__version__
