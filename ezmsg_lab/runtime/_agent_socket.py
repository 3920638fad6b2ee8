"""Where a tap agent in a user's process listens, and how the Lab finds and reaches it.

A process run with :class:`ezmsg_lab.agent.BackendProcess` listens on a Unix socket named
by its pid in a per-user directory; the Lab, which learns each process's pid and host from
the GraphServer's process table, connects to ``<dir>/<pid>.sock`` for the processes on its
own host. No configuration: both ends compute the same directory.

Who may connect (two locks, either one enough on its own):

- the directory is ``/tmp/ezmsg-lab-<uid>`` (``$EZMSG_LAB_AGENT_DIR`` overrides it), made
  with mode 0700; both ends refuse to use it unless it is a real directory (not a
  symbolic link) owned by the current user and closed to group and others. Another
  user cannot reach a socket inside it (connecting needs search permission on the
  directory), nor plant one there;
- each socket has a 32-byte random key in ``<pid>.key`` (mode 0600, created exclusively)
  beside it, and both ends prove they know it before a byte is unpickled
  (multiprocessing's HMAC challenge, in both directions).

Stale files: a process that ends normally removes its socket and key. One killed by a
signal cannot; its files are ignored (nothing listens, so connecting is refused) and
removed by the next agent or Lab that looks, once no process has that pid. A pid reused
by a later agent simply replaces them.

No ezmsg here: this module is imported in unit processes and tested on its own.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import stat
import struct
import sys
from multiprocessing.connection import Connection, Listener, answer_challenge, deliver_challenge
from pathlib import Path

ENV_DIR = "EZMSG_LAB_AGENT_DIR"
KEY_BYTES = 32
# Longest path a Unix socket address may have (sun_path is 108 bytes on Linux, 104 on
# macOS; one for the terminating NUL).
_MAX_SOCKET_PATH = 103 if sys.platform == "darwin" else 107


class AgentDirError(PermissionError):
    """The agents' directory exists but is not private to this user: it is not used."""


def agent_dir() -> Path:
    """The directory of this user's agent sockets (it may not exist yet)."""
    override = os.environ.get(ENV_DIR)
    if override:
        return Path(override)
    return Path("/tmp") / f"ezmsg-lab-{os.getuid()}"


def check_private(path: Path) -> None:
    """Raise :class:`AgentDirError` unless ``path`` is a directory (not a link) owned by
    this user with no access for group or others."""
    st = os.lstat(path)
    problem = None
    if not stat.S_ISDIR(st.st_mode):
        problem = "is not a directory (or is a symbolic link)"
    elif st.st_uid != os.getuid():
        problem = f"is owned by uid {st.st_uid}, not by this user ({os.getuid()})"
    elif st.st_mode & 0o077:
        problem = f"has mode {stat.S_IMODE(st.st_mode):o}; it must be 700"
    if problem:
        raise AgentDirError(
            f"{path} {problem}, so ezmsg-lab's tap agents do not use it. Remove it, or "
            f"set {ENV_DIR} to a directory only you can read."
        )


def ensure_dir() -> Path:
    """The agents' directory, made private (0700) if it did not exist, and checked."""
    path = agent_dir()
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    check_private(path)
    return path


def socket_path(pid: int, directory: Path | None = None) -> Path:
    return (directory or agent_dir()) / f"{pid}.sock"


def key_path(pid: int, directory: Path | None = None) -> Path:
    return (directory or agent_dir()) / f"{pid}.key"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def remove_files(pid: int, directory: Path) -> None:
    for path in (socket_path(pid, directory), key_path(pid, directory)):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def clean_stale(directory: Path) -> list[int]:
    """Remove the files of agents whose process is gone; the pids removed."""
    gone = []
    for entry in directory.glob("*.sock"):
        try:
            pid = int(entry.stem)
        except ValueError:
            continue
        if not pid_alive(pid):
            remove_files(pid, directory)
            gone.append(pid)
    for entry in directory.glob("*.key"):  # a key whose socket never came (or went)
        with contextlib.suppress(ValueError):
            pid = int(entry.stem)
            if not pid_alive(pid):
                remove_files(pid, directory)
    return gone


class AgentListener:
    """This process's socket and key; :meth:`accept` returns an authenticated Lab's
    connection. :meth:`close` removes both files."""

    def __init__(self) -> None:
        directory = ensure_dir()
        clean_stale(directory)
        self.pid = os.getpid()
        self.directory = directory
        self.path = socket_path(self.pid, directory)
        if len(os.fsencode(self.path)) > _MAX_SOCKET_PATH:
            raise OSError(f"socket path {self.path} is too long for a Unix socket")
        # A file left by an earlier process with this pid: it is not listening.
        remove_files(self.pid, directory)
        key = secrets.token_bytes(KEY_BYTES)
        fd = os.open(key_path(self.pid, directory), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        try:
            self._listener = Listener(str(self.path), "AF_UNIX", authkey=key)
            os.chmod(self.path, 0o600)
        except BaseException:
            remove_files(self.pid, directory)
            raise
        self._closed = False

    def accept(self) -> Connection:
        """Block until a Lab connects and proves it holds the key (raises otherwise)."""
        return self._listener.accept()

    def close(self) -> None:
        """Stop listening and remove the socket and the key (a blocked :meth:`accept`
        returns with an error)."""
        if self._closed:
            return
        self._closed = True
        # Wake a thread blocked in accept(): closing the socket alone does not on Linux.
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as s:
            s.settimeout(0.5)
            s.connect(str(self.path))
        with contextlib.suppress(OSError):
            self._listener.close()
        remove_files(self.pid, self.directory)


def connect(pid: int, timeout: float = 1.0) -> Connection | None:
    """A connection to the agent of process ``pid`` on this host, authenticated both
    ways; None when there is none (no agent, a stale socket, a wrong key, a process that
    does not answer within ``timeout``). Raises :class:`AgentDirError` if the directory
    is not private."""
    directory = agent_dir()
    if not directory.exists():
        return None
    check_private(directory)
    path = socket_path(pid, directory)
    try:
        key = key_path(pid, directory).read_bytes()
    except FileNotFoundError:
        return None
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.settimeout(timeout)
        sock.connect(str(path))
        # The handshake reads with a deadline too: a frozen process must not hold a cell.
        sock.settimeout(None)
        _set_recv_timeout(sock, timeout)
        conn = Connection(sock.detach())
    except OSError:
        sock.close()
        if not pid_alive(pid):
            remove_files(pid, directory)
        return None
    try:
        answer_challenge(conn, key)
        deliver_challenge(conn, key)
        with socket.socket(fileno=os.dup(conn.fileno())) as view:
            _set_recv_timeout(view, 0.0)
    except Exception:  # AuthenticationError, a timeout, end of file
        conn.close()
        return None
    return conn


def _set_recv_timeout(sock: socket.socket, seconds: float) -> None:
    whole = int(seconds)
    micros = int((seconds - whole) * 1e6)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", whole, micros))
