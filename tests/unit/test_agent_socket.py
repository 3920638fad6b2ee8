"""The tap agent's socket and key (``runtime/_agent_socket``), without ezmsg: a private
directory, a key only the listener's user can read, authentication both ways, and stale
files of dead processes ignored and removed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from ezmsg_lab.runtime import _agent_socket as agent

pytestmark = pytest.mark.skipif(not hasattr(os, "getuid"), reason="Unix sockets")


@pytest.fixture
def agent_dir(monkeypatch):
    base = Path(tempfile.mkdtemp(prefix="ezl-"))
    path = base / "agents"
    monkeypatch.setenv(agent.ENV_DIR, str(path))
    yield path
    shutil.rmtree(base, ignore_errors=True)


def _serve_one(listener: agent.AgentListener, out: list) -> threading.Thread:
    def run() -> None:
        try:
            conn = listener.accept()
            out.append(conn.recv())
            conn.send("pong")
            conn.close()
        except Exception as exc:
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_the_listener_makes_a_private_dir_a_private_key_and_removes_both(agent_dir):
    listener = agent.AgentListener()
    try:
        assert agent_dir.stat().st_mode & 0o777 == 0o700
        key = agent.key_path(os.getpid())
        assert key.stat().st_mode & 0o777 == 0o600
        assert len(key.read_bytes()) == agent.KEY_BYTES
        assert agent.socket_path(os.getpid()).exists()
        out: list = []
        thread = _serve_one(listener, out)
        conn = agent.connect(os.getpid(), timeout=2.0)
        assert conn is not None
        conn.send("ping")
        assert conn.recv() == "pong"
        thread.join(5)
        assert out == ["ping"]
    finally:
        listener.close()
    assert list(agent_dir.iterdir()) == []


def test_a_wrong_key_is_refused_both_ways(agent_dir):
    listener = agent.AgentListener()
    try:
        out: list = []
        thread = _serve_one(listener, out)
        agent.key_path(os.getpid()).write_bytes(b"x" * agent.KEY_BYTES)  # not the agent's
        assert agent.connect(os.getpid(), timeout=2.0) is None
        thread.join(5)
        assert len(out) == 1 and isinstance(out[0], Exception)  # and it got nothing
    finally:
        listener.close()


@pytest.mark.parametrize(
    ("mode", "message"), [(0o755, "mode 755"), (0o770, "mode 770"), (0o701, "mode 701")]
)
def test_a_directory_others_can_reach_is_not_used(agent_dir, mode, message):
    agent_dir.mkdir(mode=0o700)
    agent_dir.chmod(mode)
    with pytest.raises(agent.AgentDirError, match=message):
        agent.AgentListener()
    with pytest.raises(agent.AgentDirError, match=message):
        agent.connect(12345)
    assert list(agent_dir.iterdir()) == []  # nothing made there


def test_a_symbolic_link_is_not_used(agent_dir):
    target = agent_dir.parent / "elsewhere"
    target.mkdir(mode=0o700)
    agent_dir.symlink_to(target)
    with pytest.raises(agent.AgentDirError, match="symbolic link"):
        agent.AgentListener()


def test_no_directory_or_no_agent_is_none(agent_dir):
    assert agent.connect(os.getpid()) is None  # no directory at all
    agent.ensure_dir()
    assert agent.connect(os.getpid()) is None  # no socket for the pid


def test_a_dead_processes_files_are_ignored_and_removed(agent_dir):
    # A real listener in a process that is then killed: its socket and key stay behind.
    code = (
        "import os, sys, time\n"
        "from ezmsg_lab.runtime._agent_socket import AgentListener\n"
        "a = AgentListener(); print('ready', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2])),
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    finally:
        proc.kill()
        proc.wait(10)
    names = {p.name for p in agent_dir.iterdir()}
    assert names == {f"{proc.pid}.sock", f"{proc.pid}.key"}
    assert agent.connect(proc.pid, timeout=1.0) is None  # refused, not hung
    assert list(agent_dir.iterdir()) == []
    # And a new listener clears those of other dead processes.
    for ext in ("sock", "key"):
        (agent_dir / f"{proc.pid}.{ext}").write_bytes(b"")
    listener = agent.AgentListener()
    try:
        assert {p.name for p in agent_dir.iterdir()} == {
            f"{os.getpid()}.sock",
            f"{os.getpid()}.key",
        }
    finally:
        listener.close()


def test_a_live_process_that_does_not_answer_times_out(agent_dir):
    # A listening socket nobody accepts on: the handshake's read has a deadline.
    import socket

    agent.ensure_dir()
    path = agent.socket_path(os.getpid())
    agent.key_path(os.getpid()).write_bytes(b"k" * agent.KEY_BYTES)
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        server.listen()
        assert agent.connect(os.getpid(), timeout=0.3) is None
    assert path.exists()  # the process is alive: its files are not ours to remove
