"""Every use of a private ezmsg API, or of the text of ezmsg's messages, in one place.

ezmsg's public API does not offer these (see each function for why the Lab needs it).
The two hooks into private parts of Python's multiprocessing and threading are here too
(at the end), so that every private access of the package is in this module.
Each has a test in ``tests/integration/test_ezmsg_compat.py`` against the installed ezmsg,
so an ezmsg release that changes one fails there, loudly and by name, instead of somewhere
deep in a feed.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import re
import threading
import warnings
from typing import Any

# ----------------------------------------------------------------------------- GraphContext


def session_task(ctx: Any) -> Any:
    """The task running a GraphContext's session with the server (ends when the server
    goes away). ezmsg leaves a request in flight waiting forever when the server dies, so
    the Lab races every call against this task."""
    return ctx._session_task  # noqa: SLF001


async def close_session(ctx: Any) -> None:
    """Release a GraphContext's local resources after its server died (its public
    ``__aexit__`` first talks to the server, which would fail or wait)."""
    await ctx._close_session()  # noqa: SLF001


def count_leaky_drops(sub: Any, on_drop: Any) -> bool:
    """Call ``on_drop()`` for every message a leaky subscriber's queue drops unread.

    ezmsg's ``LeakyQueue`` drops the oldest notification when full and tells only the
    subscriber (to release the publisher's buffer); a tap must count those drops, never
    lose messages silently. ezmsg's own callback still runs. False if ``sub`` has no
    such queue (not leaky, or ezmsg changed).
    """
    queue = getattr(sub, "_incoming", None)
    if queue is None or not hasattr(queue, "_on_drop"):
        return False
    release = queue._on_drop  # noqa: SLF001

    def dropped(item: Any) -> None:
        on_drop()
        if release is not None:
            release(item)

    queue._on_drop = dropped  # noqa: SLF001
    return True


def release_unread(sub: Any) -> int:
    """Release (acknowledge) every notification a subscriber holds unread; return how many.

    ezmsg's ``Channel.unregister_client`` frees a closing subscriber's leases without
    acknowledging them to the publisher, so while the channel stays open (another
    subscriber in this process uses it) the publisher never gets those buffers back;
    after ``num_buffers`` of them it blocks: the whole pipeline stalls. Releasing each
    unread message first, as a leaky drop does, leaves nothing for that path to leak.
    """
    queue = getattr(sub, "_incoming", None)
    channels = getattr(sub, "_channels", None)
    if queue is None or channels is None:
        return 0
    released = 0
    while not queue.empty():
        pub_id, msg_id = queue.get_nowait()
        channel = channels.get(pub_id)
        if channel is not None:
            channel.release_without_get(msg_id, sub.id)
            released += 1
    return released


def forget_client(ctx: Any, client: Any) -> None:
    """Drop a closed publisher or subscriber from a GraphContext's client set (ezmsg
    has no public call for one client; its own ``_publish_settings`` does this)."""
    clients = getattr(ctx, "_clients", None)
    if isinstance(clients, set):
        clients.discard(client)


# ----------------------------------------------------------------------------- GraphServer


def server_loop(server: Any) -> Any:
    """The event loop of an in-process GraphServer's thread (None before it runs)."""
    return getattr(server, "_loop", None)


def shutdown_server(server: Any) -> None:
    """Ask an in-process GraphServer's thread to end (ezmsg's own ``stop()`` also joins
    it without a bound)."""
    server._shutdown.set()  # noqa: SLF001


def prune_server(server: Any) -> None:
    """On the server's loop: forget what an in-process GraphServer keeps of clients that
    have gone.

    ezmsg 3.9.0 and 3.10 keep every pub/sub client's finished handler task in
    ``_client_tasks`` and every released shared-memory segment in ``shms`` for the
    server's lifetime: a few per launch, which add up over hundreds of launches. A
    released segment has no leases and a closed buffer; it cannot be attached again.
    """
    tasks = getattr(server, "_client_tasks", None)
    if isinstance(tasks, dict):
        for key, task in list(tasks.items()):
            if task.done():
                tasks.pop(key, None)
    shms = getattr(server, "shms", None)
    if isinstance(shms, dict):
        for name, info in list(shms.items()):
            shm = getattr(info, "shm", None)
            if not getattr(info, "leases", True) and shm is not None and shm.buf is None:
                shms.pop(name, None)


def limit_server_trace_buffer(server: Any, samples: int) -> bool:
    """Keep at most ``samples`` trace samples per process in an in-process GraphServer.

    ezmsg keeps the newest 200,000 samples of each process (``_RetentionPolicy``, read
    from ``EZMSG_PROFILE_TRACE_BUFFER_LIMIT`` once, at import) for clients that pull
    them, also after its stream delivered them: about 350 bytes each, so a kernel with an
    embedded server and five traced processes grew by 300 MB and more. The Lab reads the
    stream, which only needs what arrives between two of its batches. False where this
    ezmsg has no such policy.
    """
    policy = getattr(server, "_retention_policy", None)
    if policy is None or not hasattr(policy, "profiling_trace_buffer_limit"):
        return False
    server._retention_policy = dataclasses.replace(  # noqa: SLF001
        policy, profiling_trace_buffer_limit=samples
    )
    return True


# ----------------------------------------------------------------------------- Publisher


def publisher_channel_pids(pub: Any) -> set[int] | None:
    """The pids of the processes whose channels ``pub`` serves (None: ezmsg no longer
    says).

    A message broadcast before a unit's process connected its channel is lost, and
    Publisher has no public way to ask. Its channel table always holds the publisher's
    own process (its local channel manager), so "any channel" proves nothing: wait for
    the pid of the process that owns the subscriber.
    """
    channels = getattr(pub, "_channels", None)
    if channels is None:
        return None
    return {int(info.pid) for info in list(channels.values())}


class _SnapshotDict(dict[Any, Any]):
    """A dict whose ``values()`` is a snapshot: a publisher's broadcast loop awaits inside
    ``for channel in self._channels.values()``, and a channel leaving meanwhile would end
    that loop with "dictionary changed size during iteration"."""

    def values(self) -> list[Any]:  # type: ignore[override]
        return list(super().values())


def guard_publisher_leases() -> bool:
    """Stop ezmsg publishers in this process leaking a buffer to a channel that has left.

    ezmsg 3.9.0 and 3.10 (``Publisher._handle_channel``): when a channel disconnects, the
    publisher frees that channel's leases, then awaits closing its writer, then forgets
    it. A broadcast running meanwhile (it awaits ``drain()`` per channel) still sends to
    it and leases the buffer to it again; nobody will ever acknowledge that lease, and
    when the publisher comes round to that buffer it waits forever: the whole pipeline
    stalls. A tap (or any subscriber in another process) that closes while its publisher
    broadcasts triggers it; measured, about once in 60-75 tap open/close cycles under
    load. Here a channel whose leases were all freed (only ezmsg's disconnect path does
    that) is never leased to again, and the channel table is iterated as a snapshot.

    Applied in every process the Lab starts (unit processes and the Lab's own), before
    any publisher exists; publishers of graphs the Lab only attached to keep the bug.
    Idempotent. False if ezmsg changed shape (nothing patched).
    """
    try:
        from ezmsg.core.backpressure import Backpressure
        from ezmsg.core.pubclient import Publisher
    except ImportError:  # pragma: no cover - ezmsg moved them
        return False
    if getattr(Publisher, "ezmsg_lab_guarded", False):
        return True
    init = Publisher.__init__

    class GuardedBackpressure(Backpressure):  # type: ignore[misc]  # ezmsg is untyped (Any)
        """ezmsg's Backpressure, refusing leases to clients whose leases were all freed."""

        def __init__(self, num_buffers: int) -> None:
            super().__init__(num_buffers)
            self.departed: dict[Any, None] = {}

        def free(self, uuid: Any, buf_idx: int | None = None) -> None:
            if buf_idx is None:
                self.departed[uuid] = None
                if len(self.departed) > 4096:  # channel ids are never reused
                    self.departed.pop(next(iter(self.departed)))
            super().free(uuid, buf_idx)

        def lease(self, uuid: Any, buf_idx: int) -> None:
            if uuid in self.departed:
                return
            super().lease(uuid, buf_idx)

    def guarded_init(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        bp = getattr(self, "_backpressure", None)
        channels = getattr(self, "_channels", None)
        if isinstance(bp, Backpressure) and isinstance(channels, dict):
            guarded = GuardedBackpressure(len(bp.buffers))
            self._backpressure = guarded
            self._channels = _SnapshotDict(channels)

    if not (
        hasattr(Backpressure, "lease")
        and hasattr(Backpressure, "free")
        and "_handle_channel" in vars(Publisher)
    ):
        return False
    Publisher.__init__ = guarded_init
    Publisher.ezmsg_lab_guarded = True
    return True


# ----------------------------------------------------------------------------- components


def launched_name(component: Any) -> str | None:
    """The name ezmsg gave a Component when it was launched (None before): ezmsg
    components run once, and this is the only sign one already ran."""
    name: str | None = component._name  # noqa: SLF001
    return name


# ----------------------------------------------------------------------------- GraphRunner


def runner_execution_context(runner: Any) -> Any:
    """The GraphRunner's execution context (its start/stop barriers and termination
    event), or None before it started."""
    return getattr(runner, "_execution_context", None)


def runner_barriers(runner: Any) -> list[Any]:
    """The runner's start and stop barriers: aborting them unblocks a start or stop that
    ezmsg 3.9.0 would wait on forever."""
    ctx = runner_execution_context(runner)
    return [] if ctx is None else [ctx.start_barrier, ctx.stop_barrier]


def runner_term_event(runner: Any) -> Any:
    """The multiprocessing event that tells every unit process to stop (None before start)."""
    ctx = runner_execution_context(runner)
    return None if ctx is None else ctx.term_ev


def runner_loop(runner: Any) -> Any:
    """The event loop of the runner's own thread (None before start): stopping it ends a
    cleanup that waits forever on a dead GraphServer."""
    return getattr(runner, "_loop", None)


# ----------------------------------------------------------------------------- messages

# ezmsg 3.9/3.10: ``RuntimeError(f"Process request failed ({response.error_code}): ...")``
# from GraphContext.decode_process_payload and update_setting.
_PROCESS_ERROR_RE = re.compile(
    r"Process request failed \((?:ProcessControlErrorCode\.)?(\w+)\): (.*)", re.S
)
# ezmsg 3.10's owning process, when pydantic refuses a field update.
_COERCION_TEXT = "Invalid value for settings field"


def process_error(exc: BaseException) -> tuple[str, str] | None:
    """(error code, detail) of ezmsg's "Process request failed" error, or None."""
    m = _PROCESS_ERROR_RE.search(str(exc))
    return (m.group(1), m.group(2).strip()) if m else None


def is_coercion_refusal(detail: str) -> bool:
    """Whether a HANDLER_ERROR's detail is ezmsg 3.10's settings-coercion refusal."""
    return _COERCION_TEXT in detail


def is_loopback_settings_publisher(detail: str) -> bool:
    """Whether a HANDLER_ERROR's detail says the unit's process could not connect to its
    own settings publisher (ezmsg 3.9/3.10 ``"Failed to patch settings field: ... Connect
    call failed"``): that publisher binds ezmsg's ``netprotocol.DEFAULT_HOST``
    (127.0.0.1) while the GraphServer advertises the host's address, which fails on a
    host other than the GraphServer's."""
    return "Failed to patch settings field" in detail and "Connect call failed" in detail


def is_address_collision(exc: BaseException) -> bool:
    """Whether a GraphRunner start failed because the unit addresses are already in use
    on the GraphServer (ezmsg says so only in the message)."""
    return "collision" in str(exc)


# ----------------------------------------------------------------------------- Python


def popen_with_own_start_method(process_obj: Any) -> Any:
    """multiprocessing's ``Process._Popen`` hook: start ``process_obj`` with its own
    ``_start_method`` (None: multiprocessing's default context), never changing the
    global start method."""
    method = process_obj._start_method  # noqa: SLF001
    if method is None:
        return multiprocessing.Process._Popen(process_obj)  # noqa: SLF001
    ctx = multiprocessing.get_context(method)
    if method != "fork":
        return ctx.Process._Popen(process_obj)  # noqa: SLF001
    # Python 3.12+ warns on every fork from a process with threads (a kernel running
    # the Lab always has some). The Lab forks only what cannot start another way
    # (units defined in the notebook) or when asked to: say so once in the docs, not
    # in every launch's output.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r".*multi-threaded.*fork\(\)", category=DeprecationWarning
        )
        return ctx.Process._Popen(process_obj)  # noqa: SLF001


def register_atexit_before_threads_join(fn: Any) -> bool:
    """Run ``fn`` at exit before Python joins non-daemon threads (``atexit`` runs after,
    too late to stop them); False if this Python has no such hook."""
    try:
        threading._register_atexit(fn)  # type: ignore[attr-defined]  # noqa: SLF001
    except (AttributeError, RuntimeError):
        return False
    return True
