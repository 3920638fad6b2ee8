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
TIMEOUT_MS = 90_000  # a notebook page, its kernel and its widgets on a busy machine
# No news toast, no autosave (a saved notebook would change the files under test).
LAB_OVERRIDES = {
    "@jupyterlab/apputils-extension:notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/docmanager-extension:plugin": {"autosave": False},
    # Every cell stays rendered: with windowing, a cell far outside the viewport is hidden
    # until scrolled to, and a test that scrolls to each widget output waited forever
    # on one (seen once, under load, in topology.ipynb).
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
}


# A Jupyter server for a test: local, no token, no browser of its own.
SERVER_ARGS = (
    "--no-browser",
    "--ip=127.0.0.1",
    "--allow-root",
    "--ServerApp.token=",
    "--ServerApp.password=",
    "--ServerApp.disable_check_xsrf=True",
)


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


@contextlib.contextmanager
def jupyterlab(root: Path) -> Iterator[str]:
    """Real JupyterLab on loopback, no token, serving ``root``; yields its base URL.

    Kernels' connection files are in ``root / ".runtime"`` (see :class:`NotebookKernel`).
    """
    settings_dir = Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings"
    settings_dir.mkdir(parents=True, exist_ok=True)
    (settings_dir / "overrides.json").write_text(json.dumps(LAB_OVERRIDES))
    args = [
        "jupyter",
        "lab",
        *SERVER_ARGS,
        "--LabApp.expose_app_in_browser=True",
        f"--ServerApp.root_dir={root}",
    ]
    with serve(args, root) as base:
        yield base


class NotebookKernel:
    """A notebook's own kernel in a running server, reached through its connection file."""

    def __init__(self, base: str, root: Path, path: str | None = None) -> None:
        from jupyter_client import BlockingKernelClient

        sessions: list[dict[str, Any]] = []

        def found() -> bool:  # the page may still be starting its kernel
            nonlocal sessions
            sessions = [
                s
                for s in get(f"{base}/api/sessions") or []
                if path is None or s["path"].endswith(path)
            ]
            return bool(sessions) and all(s.get("kernel") for s in sessions)

        assert wait_until(found, 60, interval=0.2), f"no kernel session for {path}"
        assert len(sessions) == 1, sessions
        self.session_id = sessions[0]["id"]
        kernel_id = sessions[0]["kernel"]["id"]
        self.client = BlockingKernelClient(
            connection_file=str(root / ".runtime" / f"kernel-{kernel_id}.json")
        )
        self.client.load_connection_file()
        self.client.start_channels()

    def run(self, code: str, timeout: float = 300) -> str:
        """Execute ``code`` after whatever the page queued; its stdout, or raise."""
        out: list[str] = []
        errors: list[str] = []

        def hook(msg: dict) -> None:
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                errors.append("\n".join(msg["content"]["traceback"]))

        reply = self.client.execute_interactive(code, timeout=timeout, output_hook=hook)
        assert reply["content"]["status"] == "ok", errors
        return "".join(out)

    def eval(self, expr: str) -> Any:
        """The JSON value of ``expr`` in the kernel (``_json`` must be imported there)."""
        return json.loads(self.run(f"print(_json.dumps({expr}))"))

    def close(self) -> None:
        self.client.stop_channels()
