"""ezmsg-lab: observe and tune a running ezmsg graph from a Jupyter notebook."""

import importlib
import logging
from typing import TYPE_CHECKING, Any

# Names load on first use (PEP 562): a unit process that imports ezmsg_lab.runtime or
# ezmsg_lab.agent (every process of a pipeline the Lab launched, and of a script run with
# the tap agent) gets none of pandas, ipywidgets and the rest (about 0.5-2 s and 500
# modules a process on these machines).
_LAZY = {
    "LabClosedError": ".errors",
    "LabConnectionError": ".errors",
    "LabError": ".errors",
    "LabTimeoutError": ".errors",
    "PipelineError": ".errors",
    "PipelineStartError": ".errors",
    "RecordingError": ".errors",
    "SettingsEffectError": ".errors",
    "SettingsRefusedError": ".errors",
    "TapError": ".errors",
    "CompareResult": ".experiments.compare",
    "ExpectationError": ".experiments.expect",
    "OptimizeResult": ".experiments.optimize",
    "AsyncLab": ".lab",
    "Lab": ".lab",
    "Tap": ".lab_taps",
    "SetResult": ".model.settings_changes",
    "SettingsValidationError": ".model.settings_validate",
    "Recording": ".recording",
    "load": ".recording",
    "Pipeline": ".runtime.pipeline",
    "ProcessInfo": ".runtime.pipeline",
    "Address": ".runtime.server",
    "ConnectionStatus": ".services.reconnect",
    "Recorder": ".services.recorder",
}

if TYPE_CHECKING:
    from .errors import (
        LabClosedError,
        LabConnectionError,
        LabError,
        LabTimeoutError,
        PipelineError,
        PipelineStartError,
        RecordingError,
        SettingsEffectError,
        SettingsRefusedError,
        TapError,
    )
    from .experiments.compare import CompareResult
    from .experiments.expect import ExpectationError
    from .experiments.optimize import OptimizeResult
    from .lab import AsyncLab, Lab
    from .lab_taps import Tap
    from .model.settings_changes import SetResult
    from .model.settings_validate import SettingsValidationError
    from .recording import Recording, load
    from .runtime.pipeline import Pipeline, ProcessInfo
    from .runtime.server import Address
    from .services.reconnect import ConnectionStatus
    from .services.recorder import Recorder

# The one place the version is written: pyproject.toml reads it from here (hatch's
# [tool.hatch.version]), and the installed metadata comes from that.
__version__ = "0.1.0"

__all__ = [
    "Address",
    "AsyncLab",
    "CompareResult",
    "ExpectationError",
    "ConnectionStatus",
    "Lab",
    "LabClosedError",
    "LabConnectionError",
    "LabError",
    "LabTimeoutError",
    "OptimizeResult",
    "Pipeline",
    "PipelineError",
    "PipelineStartError",
    "SetResult",
    "SettingsEffectError",
    "SettingsRefusedError",
    "ProcessInfo",
    "Recorder",
    "Recording",
    "RecordingError",
    "SettingsValidationError",
    "Tap",
    "TapError",
    "__version__",
    "load",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
