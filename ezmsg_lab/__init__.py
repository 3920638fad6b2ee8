"""ezmsg-lab: observe and tune a running ezmsg graph from a Jupyter notebook."""

import logging

from .errors import (
    LabClosedError,
    LabConnectionError,
    LabError,
    LabTimeoutError,
    PipelineError,
    PipelineStartError,
    SettingsEffectError,
    SettingsRefusedError,
    TapError,
)
from .lab import AsyncLab, Lab
from .lab_taps import Tap
from .model.settings_changes import SetResult
from .model.settings_validate import SettingsValidationError
from .runtime.pipeline import Pipeline, ProcessInfo
from .runtime.server import Address
from .services.reconnect import ConnectionStatus

# The one place the version is written: pyproject.toml reads it from here (hatch's
# [tool.hatch.version]), and the installed metadata comes from that.
__version__ = "0.1.0"

__all__ = [
    "Address",
    "AsyncLab",
    "ConnectionStatus",
    "Lab",
    "LabClosedError",
    "LabConnectionError",
    "LabError",
    "LabTimeoutError",
    "Pipeline",
    "PipelineError",
    "PipelineStartError",
    "SetResult",
    "SettingsEffectError",
    "SettingsRefusedError",
    "ProcessInfo",
    "SettingsValidationError",
    "Tap",
    "TapError",
    "__version__",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
