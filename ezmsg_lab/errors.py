"""The Lab's exceptions: one small hierarchy under :class:`LabError`.

Every message says what happened, with which value, and what to do next.
"""

from __future__ import annotations

__all__ = [
    "LabError",
    "LabClosedError",
    "LabConnectionError",
    "LabTimeoutError",
    "PipelineError",
    "PipelineStartError",
    "RecordingError",
    "SettingsEffectError",
    "SettingsRefusedError",
]


class LabError(Exception):
    """Base class of every error the Lab raises."""


class LabClosedError(LabError):
    """The Lab was closed; create a new one with ``Lab()``."""


class LabConnectionError(LabError):
    """The GraphServer cannot be reached (it stopped, or the address is wrong)."""


class LabTimeoutError(LabError, TimeoutError):
    """A call into ezmsg did not finish within its timeout; the call was cancelled."""


class PipelineError(LabError):
    """A pipeline the Lab launched failed or was used wrongly."""


class PipelineStartError(PipelineError):
    """A pipeline could not start.

    Attributes
    ----------
    unit : str or None
        Address of the unit that failed, when known.
    cause : str
        A one-line description of the cause.
    traceback : str or None
        The unit process's traceback, when one was captured.
    """

    def __init__(
        self,
        message: str,
        *,
        unit: str | None = None,
        cause: str = "",
        traceback: str | None = None,
    ) -> None:
        super().__init__(message)
        self.unit = unit
        self.cause = cause
        self.traceback = traceback


class SettingsRefusedError(LabError):
    """ezmsg refused a settings update the Lab had validated, or the unit cannot take one.

    Attributes
    ----------
    unit : str
        Address of the unit.
    code : str
        ezmsg's ``ProcessControlErrorCode`` name (``HANDLER_ERROR``, ``UNROUTABLE_UNIT``,
        ...) or ``NOT_DYNAMIC`` when the unit has no ``INPUT_SETTINGS``.
    detail : str
        ezmsg's own message, in full.
    """

    def __init__(self, message: str, *, unit: str, code: str, detail: str = "") -> None:
        super().__init__(message)
        self.unit, self.code, self.detail = unit, code, detail


class SettingsEffectError(LabError):
    """A confirmed change broke the unit (``lab.set(..., check=True)``).

    The change stays in effect: ``lab.undo()`` reverts it (or use
    ``with lab.temporarily(...)``, which restores on exit, exceptions included).

    Attributes
    ----------
    result : SetResult
        The change, with ``result.health`` saying what went wrong.
    """

    def __init__(self, message: str, result: object) -> None:
        super().__init__(message)
        self.result = result
        self.unit = getattr(result, "unit", None)


class TapError(LabError):
    """A tap could not be opened: unknown topic, or a message class this kernel cannot
    import."""


class RecordingError(LabError):
    """A recording could not be written, read or replayed: not a recording, written by a
    newer ezmsg-lab, damaged, or holding something a recording never holds (a pickle, an
    object array). Loading never unpickles or imports anything from the file."""
