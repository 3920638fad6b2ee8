"""Test hosts on one machine: Linux namespaces as real separate hosts (root only).

:func:`test_hosts` makes three hosts, each a network namespace with its own private
address on one test subnet (``10.231.X.0/24``, X chosen free), its own hostname (UTS
namespace) and its own monotonic clock (time namespace, ``unshare --time --monotonic``),
joined through a bridge in a fourth namespace, with one more veth into the root
namespace so the Lab (this test process) can attach to host A's GraphServer:

- host A (``.1``): ``ezmsg serve`` (the GraphServer);
- host B (``.2``): ``B/TICK``, a source at a known rate (_host_units.py);
- host C (``.3``): ``C/SCALE`` and ``C/SINK``, fed by B over TCP; its monotonic clock is
  hours ahead of the others.

The hosts share /dev/shm, and B and C run with ``EZMSG_FORCE_TCP=1`` so their streams
travel over TCP as between machines. They cannot have a /dev/shm of their own: ezmsg
(3.9.0 and 3.10.0b5) creates every publisher's shared memory in the GraphServer's
process (``SHM_CREATE``) and the publisher attaches to it by name, so a publisher on a
host that does not share /dev/shm with the GraphServer's fails to start
(``FileNotFoundError: '/psm_...'``, measured with a private /dev/shm per host).

Every address is inside namespaces made here (the root side's ``.254`` is on a veth whose
peer is in the bridge namespace); on exit, also on failure, every process group started
here is ended and every namespace deleted (which deletes their veths). Where namespaces
are not permitted (not root, no ``ip``/``unshare``, no time namespaces), the tests skip
and say why.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from ..conftest import wait_until
from ._script_graph import _end_group

ROOT = Path(__file__).resolve().parents[2]
PORT = 25978
# Each host's monotonic clock, ahead of the machine's by this many seconds.
MONOTONIC_OFFSET_S = {"a": 0, "b": 90, "c": 3 * 3600 + 17}


@dataclass
class Host:
    name: str  # "a", "b", "c"
    netns: str
    hostname: str
    address: str
    dev: str  # this host's end of its veth (inside its namespace)
    monotonic_offset_s: int
    procs: list[subprocess.Popen] = field(default_factory=list)

    def link(self, up: bool) -> None:
        """Cut this host off the network (``ip link set ... down``), or reconnect it."""
        _ip("-n", self.netns, "link", "set", self.dev, "up" if up else "down")


@dataclass
class Hosts:
    subnet: str
    hosts: dict[str, Host]
    workdir: Path
    server_address: str
    sink_file: Path

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def pids(self) -> set[int]:
        out = set()
        for host in self.hosts.values():
            for proc in host.procs:
                with contextlib.suppress(psutil.NoSuchProcess):
                    p = psutil.Process(proc.pid)
                    out.add(p.pid)
                    out.update(c.pid for c in p.children(recursive=True))
        return out


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def why_not_permitted() -> str | None:
    """None if this machine can make test hosts, else the reason it cannot."""
    if os.geteuid() != 0:
        return "multi-host tests need root (network, UTS and time namespaces)"
    for tool in ("ip", "unshare"):
        if shutil.which(tool) is None:
            return f"multi-host tests need the {tool!r} command"
    probe = f"ezlprobe{os.getpid()}"
    try:
        _ip("netns", "add", probe)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        return f"network namespaces are not permitted here: {exc}"
    try:
        res = subprocess.run(
            ["ip", "netns", "exec", probe, "unshare", "--uts", "--time", "--monotonic", "5"]
            + ["--fork", "true"],
            capture_output=True,
            timeout=10,
        )
        if res.returncode != 0:
            return f"UTS/time namespaces are not permitted here: {res.stderr.decode().strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=10)
    return None


def _free_subnet() -> int:
    used = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
    free = [x for x in range(1, 255) if f"10.231.{x}." not in used]
    if not free:
        pytest.skip("no free 10.231.X.0/24 test subnet on this machine")
    return random.choice(free)


def _spawn(host: Host, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Run ``argv`` on ``host``: in its network namespace, with its hostname and its
    monotonic clock, in a new session (its whole process group is ended on exit)."""
    script = 'hostname "$1" && shift && exec "$@"'
    cmd = ["ip", "netns", "exec", host.netns, "unshare", "--uts", "--time"]
    cmd += ["--monotonic", str(host.monotonic_offset_s), "--fork"]
    cmd += ["sh", "-c", script, "sh", host.hostname, *argv]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    host.procs.append(proc)
    return proc


def _unit_argv(role: str) -> list[str]:
    code = f"from tests.integration._host_units import main; main({role!r})"
    return [sys.executable, "-c", code]


@contextlib.contextmanager
def make_hosts(workdir: Path) -> Iterator[Hosts]:
    """Three test hosts running a graph across them; everything is removed on exit."""
    reason = why_not_permitted()
    if reason is not None:
        print(f"SKIPPED multi-host test: {reason}")
        pytest.skip(reason)
    x = _free_subnet()
    tag = f"ezl{os.getpid() % 100000}"
    bridge_ns = f"{tag}br"
    root_dev = f"{tag}r"  # the root namespace's end
    hosts = {
        name: Host(
            name=name,
            netns=f"{tag}{name}",
            hostname=f"host-{name}",
            address=f"10.231.{x}.{i}",
            dev=f"{tag}{name}",
            monotonic_offset_s=MONOTONIC_OFFSET_S[name],
        )
        for i, name in enumerate("abc", start=1)
    }
    made: list[str] = []
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        _ip("netns", "add", bridge_ns)
        made.append(bridge_ns)
        _ip("-n", bridge_ns, "link", "add", "br0", "type", "bridge")
        _ip("-n", bridge_ns, "link", "set", "br0", "up")
        for host in hosts.values():
            _ip("netns", "add", host.netns)
            made.append(host.netns)
            peer = f"{host.dev}p"
            _ip("link", "add", host.dev, "type", "veth", "peer", "name", peer)
            _ip("link", "set", host.dev, "netns", host.netns)
            _ip("link", "set", peer, "netns", bridge_ns)
            _ip("-n", bridge_ns, "link", "set", peer, "master", "br0")
            _ip("-n", bridge_ns, "link", "set", peer, "up")
            _ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", host.dev)
            _ip("-n", host.netns, "link", "set", "lo", "up")
            _ip("-n", host.netns, "link", "set", host.dev, "up")
        # The Lab's way in: a veth from the root namespace to the bridge.
        _ip("link", "add", root_dev, "type", "veth", "peer", "name", f"{root_dev}p")
        _ip("link", "set", f"{root_dev}p", "netns", bridge_ns)
        _ip("-n", bridge_ns, "link", "set", f"{root_dev}p", "master", "br0")
        _ip("-n", bridge_ns, "link", "set", f"{root_dev}p", "up")
        _ip("addr", "add", f"10.231.{x}.254/24", "dev", root_dev)
        _ip("link", "set", root_dev, "up")

        server = f"{hosts['a'].address}:{PORT}"
        sink_file = workdir / "sink.json"
        env = dict(os.environ, EZMSG_GRAPHSERVER_ADDR=server, EZLAB_SINK_FILE=str(sink_file))
        env["PYTHONPATH"] = str(ROOT)
        env["EZMSG_FORCE_TCP"] = "1"  # no shared memory between machines (see above)
        ezmsg_exe = str(Path(sys.executable).with_name("ezmsg"))
        _spawn(hosts["a"], [ezmsg_exe, "serve", "--address", server], env, workdir / "a.log")
        if not wait_until(lambda: _listening(hosts["a"], PORT), 20):
            raise RuntimeError(f"ezmsg serve did not start on host A: {_log(workdir, 'a')}")
        _spawn(hosts["b"], _unit_argv("b"), env, workdir / "b.log")
        _spawn(hosts["c"], _unit_argv("c"), env, workdir / "c.log")
        yield Hosts(f"10.231.{x}.0/24", hosts, workdir, server, sink_file)
    finally:
        for host in reversed(list(hosts.values())):
            for proc in host.procs:
                _end_group(proc)
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            _ip("link", "del", root_dev)
        for ns in reversed(made):
            with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
                _ip("netns", "del", ns)


def _listening(host: Host, port: int) -> bool:
    res = subprocess.run(
        ["ip", "netns", "exec", host.netns, "ss", "-Hltn", f"sport = :{port}"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    return bool(res.stdout.strip())


def _log(workdir: Path, name: str) -> str:
    path = workdir / f"{name}.log"
    return path.read_text(errors="replace")[-2000:] if path.exists() else ""


def namespaces_left(tag_prefix: str = "ezl") -> list[str]:
    """Test namespaces still present (for the cleanup check)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(tag_prefix)]
