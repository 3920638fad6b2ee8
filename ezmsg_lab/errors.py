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
