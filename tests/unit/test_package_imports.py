"""The package's names load on first use: unit processes (which import ezmsg_lab.runtime
or ezmsg_lab.agent) stay free of pandas, ipywidgets and the rest of the notebook side."""

from __future__ import annotations

import subprocess
import sys

import pytest

import ezmsg_lab

HEAVY = ("pandas", "ipywidgets", "anywidget", "xarray", "pyarrow", "ezmsg_lab.lab")


@pytest.mark.parametrize("module", ["ezmsg_lab.agent", "ezmsg_lab.runtime._backend"])
def test_what_unit_processes_import_pulls_in_nothing_heavy(module):
    code = f"import sys, {module}\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "", f"{module} imported {out.stdout.strip()}"


def test_every_public_name_resolves_and_nothing_else_does():
    public = set(ezmsg_lab.__all__) - {"__version__"}
    assert public == set(ezmsg_lab._LAZY)
    for name in sorted(public):
        value = getattr(ezmsg_lab, name)
        assert getattr(value, "__name__", name) == name
    assert public <= set(dir(ezmsg_lab))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        ezmsg_lab.Nope  # noqa: B018


def test_star_import_gives_the_public_names():
    space: dict[str, object] = {}
    exec("from ezmsg_lab import *", space)
    assert set(ezmsg_lab.__all__) <= set(space)
