"""Importable, spawn-safe demo pipelines used by the notebooks, tests and benchmarks."""

from .units import (
    Chunk,
    DemoPipeline,
    DemoSettings,
    Detections,
    Detector,
    DetectorSettings,
    Filter,
    FilterSettings,
    SignalSource,
    SignalSourceSettings,
    Sink,
    SinkSettings,
    Tone,
    Window,
    design_fir,
)

__all__ = [
    "Chunk",
    "DemoPipeline",
    "DemoSettings",
    "Detections",
    "Detector",
    "DetectorSettings",
    "Filter",
    "FilterSettings",
    "SignalSource",
    "SignalSourceSettings",
    "Sink",
    "SinkSettings",
    "Tone",
    "Window",
    "design_fir",
]
