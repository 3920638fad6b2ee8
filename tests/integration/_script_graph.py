"""A graph the Lab did not launch: a user's script run by ``ez.run`` against ``ezmsg serve``.

The script's units and settings classes live in its ``__main__``, so this kernel cannot
import them (as with ezmsg's own example graphs). :func:`script_graph` starts
``ezmsg serve`` on a free loopback port and the script as a subprocess against it, each
in its own session, and ends both process groups on exit (SIGTERM, then SIGKILL), also
when the test fails: ``ez.run``'s forked unit processes survive a SIGTERM to the script
alone.

The default script, :data:`KNOB_SCRIPT`, is ``SCRIPT/KNOB`` (settings with a bounded
float, an int, a bool, a ``Literal``, an ``Enum``, a str, a nested dataclass and a
``__post_init__`` rule; it applies settings from ``INPUT_SETTINGS``) publishing what it sees to ``SCRIPT/SINK``,
which writes the latest message as JSON to the file in ``EZLAB_SEEN``: the unit's own
account of the settings in effect, read by :meth:`ScriptGraph.seen`. ``SCRIPT/TAG`` has
a field of a plain class, whose type neither ezmsg's metadata nor its value describes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from ..conftest import port_is_listening, wait_until

KNOB_SCRIPT = textwrap.dedent(
    '''
    """A user's pipeline script: units and settings in __main__, run by ez.run."""
    import asyncio
    import enum
    import json
    import os
    from dataclasses import field
    from typing import Literal

    import ezmsg.core as ez


    class Mode(enum.Enum):
        SLOW = "slow"
        FAST = "fast"
        TURBO = "turbo"


    class Tone(ez.Settings):
        freq_hz: float = 5.0
        amplitude: float = 1.0


    class Calibration:
        """A plain class: neither its type nor its fields are in ezmsg's metadata."""

        def __init__(self, offset: float = 0.0) -> None:
            self.offset = offset


    class KnobSettings(ez.Settings):
        gain: float = field(default=1.0, metadata={"ge": 0.0, "le": 10.0})
        count: int = 3
        enabled: bool = True
        shape: Literal["sine", "square"] = "sine"
        mode: Mode = Mode.SLOW
        label: str = "alpha"
        tone: Tone = field(default_factory=Tone)

        def __post_init__(self) -> None:
            # A rule only the class knows: the kernel cannot check it.
            if self.count > 100:
                raise ValueError(f"count must be <= 100, got {self.count}")


    class Knob(ez.Unit):
        SETTINGS = KnobSettings
        INPUT_SETTINGS = ez.InputStream(KnobSettings)
        OUTPUT = ez.OutputStream(dict)

        @ez.subscriber(INPUT_SETTINGS)
        async def on_settings(self, msg: KnobSettings) -> None:
            self.apply_settings(msg)

        @ez.publisher(OUTPUT)
        async def report(self):
            while True:
                await asyncio.sleep(0.02)
                s = self.SETTINGS
                # What the unit's own code sees: types included, so a raw string where
                # a Mode member belongs is visible.
                yield self.OUTPUT, {
                    "gain": s.gain,
                    "gain_type": type(s.gain).__name__,
                    "count": s.count,
                    "count_type": type(s.count).__name__,
                    "enabled": s.enabled,
                    "shape": s.shape,
                    "mode": s.mode.name if isinstance(s.mode, Mode) else repr(s.mode),
                    "mode_is_member": isinstance(s.mode, Mode),
                    "label": s.label,
                    "tone_freq_hz": s.tone.freq_hz,
                    "tone_is_tone": isinstance(s.tone, Tone),
                    "output": s.gain * s.count * (2 if s.mode is Mode.FAST else 1),
                }


    class TagSettings(ez.Settings):
        # ezmsg 3.10 cannot model a plain class: such a class gets no JSON schema at all,
        # which is why it is not in KnobSettings.
        calibration: Calibration | None = None
        name: str = "tag"


    class Tag(ez.Unit):
        SETTINGS = TagSettings
        INPUT_SETTINGS = ez.InputStream(TagSettings)

        @ez.subscriber(INPUT_SETTINGS)
        async def on_settings(self, msg: TagSettings) -> None:
            self.apply_settings(msg)


    class Sink(ez.Unit):
        INPUT = ez.InputStream(dict)

        @ez.subscriber(INPUT)
        async def on_message(self, msg: dict) -> None:
            path = os.environ["EZLAB_SEEN"]
            with open(path + ".tmp", "w") as f:
                json.dump(msg, f)
            os.replace(path + ".tmp", path)


    class Script(ez.Collection):
        KNOB = Knob()
        SINK = Sink()
        TAG = Tag()

        def network(self) -> ez.NetworkDefinition:
            return ((self.KNOB.OUTPUT, self.SINK.INPUT),)

        def process_components(self):
            return (self.KNOB, self.SINK, self.TAG)


    if __name__ == "__main__":
        ez.run(SCRIPT=Script())
    '''
)

KNOB_INITIAL: dict[str, Any] = {
    "gain": 1.0,
    "count": 3,
    "enabled": True,
    "shape": "sine",
    "mode": "slow",
    "label": "alpha",
    "tone": {"freq_hz": 5.0, "amplitude": 1.0},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ScriptGraph:
    """A running ``ezmsg serve`` and a script attached to it."""

    address: str
    server: subprocess.Popen
    script: subprocess.Popen
    seen_path: Path
    log_path: Path
    start: Callable[[], subprocess.Popen] | None = None

    def wait_started(self) -> None:
        """Wait until the script's sink reports (AssertionError if the script exits)."""
        script = self.script
        assert wait_until(lambda: self.seen() is not None or script.poll() is not None, 30)
        assert script.poll() is None, f"the script exited:\n{self.log()}"

    def restart(self) -> None:
        """End the script's process group and run the script again, against the same
        server (a user restarting their pipeline)."""
        assert self.start is not None
        _end_group(self.script)
        self.seen_path.unlink(missing_ok=True)
        self.script = self.start()
        self.wait_started()

    def seen(self) -> dict[str, Any] | None:
        """The last message the script's sink received, or None before the first."""
        try:
            return json.loads(self.seen_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def wait_seen(self, timeout: float = 10.0, **expected: Any) -> dict[str, Any]:
        """Wait until the unit reports every ``expected`` item; the report, or AssertionError."""
        last: dict[str, Any] = {}

        def ok() -> bool:
            nonlocal last
            last = self.seen() or {}
            return all(last.get(k) == v for k, v in expected.items())

        assert wait_until(ok, timeout), f"the unit reports {last}, expected {expected}"
        return last

    def pids(self) -> set[int]:
        """The script's process and every unit process it forked, and the server."""
        out = set()
        for proc in (self.server, self.script):
            with contextlib.suppress(psutil.NoSuchProcess):
                p = psutil.Process(proc.pid)
                out.add(p.pid)
                out.update(c.pid for c in p.children(recursive=True))
        return out

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _ctrl_c_as_in_a_terminal() -> None:
    """A script run from a terminal stops on Ctrl-C. One started under a pytest that a
    non-interactive shell put in the background (``nohup make test &``) would inherit
    SIGINT ignored, and Python then installs no KeyboardInterrupt for it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _end_group(proc: subprocess.Popen) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left of it."""
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)

        def group_gone() -> bool:
            return not any(
                _pgid(p) == proc.pid for p in psutil.process_iter() if p.pid != os.getpid()
            )

        if wait_until(group_gone, grace):
            return


def _pgid(p: psutil.Process) -> int | None:
    try:
        if p.status() == psutil.STATUS_ZOMBIE:
            return None
        return os.getpgid(p.pid)
    except (ProcessLookupError, psutil.NoSuchProcess, psutil.ZombieProcess):
        return None


@contextlib.contextmanager
def ezmsg_serve() -> Iterator[tuple[subprocess.Popen, int]]:
    """A fresh ``ezmsg serve`` on a free loopback port, as a user would start it; its
    process group is ended on exit (also when the test killed it already)."""
    port = free_port()
    exe = os.path.join(os.path.dirname(sys.executable), "ezmsg")
    server = subprocess.Popen(
        [exe, "serve", "--address", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        assert wait_until(lambda: port_is_listening(port), 20), "ezmsg serve did not start"
        yield server, port
    finally:
        _end_group(server)


@contextlib.contextmanager
def script_graph(
    workdir: Path, script: str = KNOB_SCRIPT, env: dict[str, str] | None = None
) -> Iterator[ScriptGraph]:
    """Run ``script`` with ``ez.run`` against a fresh ``ezmsg serve``; stop both on exit.
    ``env``: more environment for the script (e.g. a ``PYTHONPATH`` where it imports
    ``ezmsg_lab.agent``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "pipeline_script.py"
    path.write_text(script)
    seen_path = workdir / "seen.json"
    log_path = workdir / "script.log"
    with ezmsg_serve() as (server, port):
        address = f"127.0.0.1:{port}"
        script_env = dict(os.environ, EZMSG_GRAPHSERVER_ADDR=address, EZLAB_SEEN=str(seen_path))
        # The script must not find the Lab's package on its path (it is a user's
        # program) unless the test says so.
        script_env.pop("PYTHONPATH", None)
        script_env.update(env or {})

        def start() -> subprocess.Popen:
            with open(log_path, "ab") as log:
                return subprocess.Popen(
                    [sys.executable, str(path)],
                    cwd=workdir,
                    env=script_env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_ctrl_c_as_in_a_terminal,
                )

        graph = ScriptGraph(address, server, start(), seen_path, log_path, start)
        try:
            graph.wait_started()
            yield graph
        finally:
            _end_group(graph.script)
