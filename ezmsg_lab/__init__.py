"""ezmsg-lab: observe and tune a running ezmsg graph from a Jupyter notebook."""

import logging

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
