"""Start a Jupyter-family server (JupyterLab, Notebook 7, Voila) for a browser test and
stop it, with every kernel it started, afterwards."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, method: str = "GET") -> Any:
    req = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(req, timeout=5) as resp:
        body = resp.read()
    return json.loads(body) if body and body.lstrip()[:1] in (b"{", b"[") else body


@contextlib.contextmanager
def serve(args: list[str], root: Path, ready: str = "/api/status") -> Iterator[str]:
    """Run ``python -m <args> --port=PORT`` in ``root`` (this worktree's ezmsg_lab first on
    the path, so its kernels import it) until the block ends; yields the base URL."""
    port = free_port()
    log = root / f"{args[0]}.log"
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(root / ".runtime"),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", *args, f"--port={port}"],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "w"),  # noqa: SIM115
        env=env,
        start_new_session=True,  # its kernels are in its group: one signal ends them all
    )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            get(base + ready)
            return True
        except OSError:
            return False

    try:
        assert wait_until(up, 60), log.read_text()[-3000:]
        yield base
    finally:
        with contextlib.suppress(OSError, ValueError):  # kernels outlive pages
            sessions = get(f"{base}/api/sessions")
            for session in sessions if isinstance(sessions, list) else []:
                get(f"{base}/api/sessions/{session['id']}", method="DELETE")
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        with contextlib.suppress(ProcessLookupError):  # a kernel that ignored SIGTERM
            os.killpg(proc.pid, signal.SIGKILL)


def shot(page: Any, name: str, element: Any = None) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    (element or page).screenshot(path=str(path))
    return path
