"""Write the tour notebooks from their cell sources, then execute them in place.

Usage: ``python notebooks/build.py [name ...]`` (default: all). Notebooks are committed
executed, so nbval compares real outputs; re-run this after changing a notebook here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).parent
NOTEBOOKS: dict[str, list[tuple[str, str]]] = {}


def notebook(name: str):
    def register(fn):
        NOTEBOOKS[name] = fn()
        return fn

    return register


def md(text: str) -> tuple[str, str]:
    return ("markdown", text.strip())


def code(text: str) -> tuple[str, str]:
    return ("code", text.strip())


@notebook("quickstart")
def _quickstart():
    return [
        md(
            """
# ezmsg-lab quickstart

This notebook starts an ezmsg GraphServer inside the kernel, launches the demo signal chain
(source → filter → detector → sink, each unit in its own process) and shows what is running.
Everything the Lab starts is stopped by `lab.close()` (or when the kernel shuts down).
"""
        ),
        code(
            """
from ezmsg_lab import Lab
from ezmsg_lab.demo import DemoPipeline

lab = Lab()  # an embedded GraphServer on 127.0.0.1, at a free port
lab
"""
        ),
        md("Launch the demo. The cell returns as soon as the unit processes are running."),
        code(
            """
demo = lab.launch(DemoPipeline(), name="DEMO")
demo
"""
        ),
        code("demo.units"),
        code(
            """
# Which process runs which unit, from the GraphServer's own process table.
snapshot = lab.snapshot()
sorted((p.units[0], p.pid in demo.pids) for p in snapshot.processes.values())
"""
        ),
        md(
            """
A pipeline can also run inside the kernel, so you can look at live unit objects:
"""
        ),
        code(
            """
live = lab.launch(DemoPipeline(), name="LIVE", mode="in-kernel")
sink = live.unit_objects["LIVE/SINK"]
import time
deadline = time.monotonic() + 10
while sink.STATE.received == 0 and time.monotonic() < deadline:
    time.sleep(0.05)
sink.STATE.received > 0
"""
        ),
        code(
            """
lab.close()
lab
"""
        ),
    ]


def build(name: str, execute: bool = True) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    for kind, src in NOTEBOOKS[name]:
        cell = (
            nbformat.v4.new_markdown_cell(src)
            if kind == "markdown"
            else nbformat.v4.new_code_cell(src)
        )
        nb.cells.append(cell)
    path = HERE / f"{name}.ipynb"
    nbformat.write(nb, path)
    if execute:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "jupyter",
                "nbconvert",
                "--to",
                "notebook",
                "--execute",
                "--inplace",
                "--ExecutePreprocessor.timeout=300",
                str(path),
            ],
            check=True,
            cwd=HERE,
        )
    return path


if __name__ == "__main__":
    for name in sys.argv[1:] or list(NOTEBOOKS):
        print("built", build(name))
