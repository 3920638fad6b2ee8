"""The demo signal chain: source -> filter -> detector -> sink.

Importable (so unit processes can start under the spawn start method too) and realistic:
chunks of a sine plus noise at a set sample rate, a windowed-sinc FIR filter whose cutoff
and window can be tuned live, a threshold detector and a sink that counts what arrives.
Between them their settings use every kind of field a user writes: bounded floats, ints,
bools, strings, ``Literal``, ``Enum``, ``Optional`` and a nested dataclass.

Do not add ``from __future__ import annotations`` here: ezmsg 3.9.0 then loses the
``Literal`` choices from the settings metadata.
"""

import asyncio
import enum
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Literal

import ezmsg.core as ez
import numpy as np
from ezmsg.util.messages.axisarray import AxisArray, CoordinateAxis, LinearAxis


@dataclass(eq=False)
class Chunk(AxisArray):
    """A block of samples: an ``AxisArray`` with dims ``("time", "ch")``.

    The time axis carries the sample rate (``gain = 1 / fs``) and the ``time.time()`` of
    the first sample (``offset``), so taps and xarray see real time coordinates; ``seq``
    travels in ``attrs``. Build one with :meth:`Chunk.make`.
    """

    @classmethod
    def make(cls, samples: np.ndarray, fs: float, t0: float, seq: int) -> "Chunk":
        """A one-channel chunk of ``samples`` taken at ``fs`` Hz from ``t0``."""
        return cls(
            data=np.asarray(samples, dtype=float).reshape(-1, 1),
            dims=["time", "ch"],
            axes={
                "time": LinearAxis(unit="s", gain=1.0 / fs, offset=t0),
                "ch": CoordinateAxis(data=np.array(["ch0"]), dims=["ch"]),
            },
            attrs={"seq": seq},
        )

    @property
    def samples(self) -> np.ndarray:
        """The first channel as a 1-D array."""
        return np.asarray(self.data[:, 0])

    @property
    def fs(self) -> float:
        return float(1.0 / self.axes["time"].gain)

    @property
    def t0(self) -> float:
        return float(self.axes["time"].offset)

    @property
    def seq(self) -> int:
        return int(self.attrs["seq"])


@dataclass
class Detections:
    """Threshold crossings found in one chunk."""

    times: np.ndarray  # time.time() of each crossing
    values: np.ndarray
    label: str
    seq: int


class Window(enum.Enum):
    """FIR design window."""

    RECTANGULAR = "rectangular"
    HANN = "hann"
    HAMMING = "hamming"
    BLACKMAN = "blackman"


@dataclass(frozen=True)
class Tone:
    """The sine the source generates."""

    freq_hz: float = field(default=5.0, metadata={"ge": 0.0, "le": 5000.0})
    amplitude: float = field(default=1.0, metadata={"ge": 0.0, "le": 100.0})


class SignalSourceSettings(ez.Settings):
    fs: float = field(
        default=1000.0,
        metadata={"ge": 1.0, "le": 50_000.0, "description": "Sample rate (Hz)."},
    )
    chunk_size: int = field(
        default=10,
        metadata={
            "ge": 1,
            "le": 10_000,
            "description": "Samples per message; messages per second = fs / chunk_size.",
        },
    )
    tone: Tone = field(
        default_factory=Tone, metadata={"description": "Frequency and amplitude of the sine."}
    )
    noise_std: float = field(
        default=0.2, metadata={"ge": 0.0, "le": 10.0, "description": "Gaussian noise (std)."}
    )
    seed: int | None = field(
        default=None, metadata={"description": "Noise seed; None draws a fresh one."}
    )
    enabled: bool = field(default=True, metadata={"description": "Publish chunks."})


class FilterSettings(ez.Settings):
    # Honest bounds: the filter raises at or above Nyquist (fs / 2), 500 Hz at the demo's
    # 1 kHz. A field's bounds cannot follow another unit's fs, so at a lower fs a cutoff
    # inside them can still break the filter (the closed-loop check reports that).
    cutoff_hz: float = field(
        default=20.0,
        metadata={
            "ge": 0.1,
            "le": 499.0,
            "description": "Cutoff frequency (Hz); must stay below fs / 2 (500 Hz at 1 kHz).",
        },
    )
    taps: int = field(default=31, metadata={"ge": 3, "le": 511, "description": "FIR length (odd)."})
    window: Window = field(default=Window.HAMMING, metadata={"description": "Design window."})
    kind: Literal["lowpass", "highpass"] = field(
        default="lowpass", metadata={"description": "Pass band."}
    )
    bypass: bool = field(default=False, metadata={"description": "Pass input through."})


class DetectorSettings(ez.Settings):
    threshold: float = field(
        default=0.8, metadata={"ge": 0.0, "le": 100.0, "description": "Crossing level."}
    )
    edge: Literal["rising", "falling", "both"] = field(
        default="rising", metadata={"description": "Which crossings count."}
    )
    refractory_s: float | None = field(
        default=0.05,
        metadata={"description": "Dead time after a detection (s); None for none."},
    )
    label: str = field(default="event", metadata={"description": "Label of detections."})


class SinkSettings(ez.Settings):
    name: str = field(default="sink", metadata={"description": "Name shown in logs."})
    keep_last: int = field(
        default=100,
        metadata={"ge": 1, "le": 100_000, "description": "Detection times kept."},
    )


class SignalSourceState(ez.State):
    seq: int
    sample: int
    rng: np.random.Generator
    seed: int | None


class SignalSource(ez.Unit):
    """Sine plus Gaussian noise, published in chunks at ``fs / chunk_size`` Hz."""

    SETTINGS = SignalSourceSettings
    STATE = SignalSourceState

    INPUT_SETTINGS = ez.InputStream(SignalSourceSettings)
    OUTPUT_SIGNAL = ez.OutputStream(Chunk)

    async def initialize(self) -> None:
        self.STATE.seq = 0
        self.STATE.sample = 0
        self.STATE.seed = self.SETTINGS.seed
        self.STATE.rng = np.random.default_rng(self.SETTINGS.seed)

    @ez.subscriber(INPUT_SETTINGS)
    async def on_settings(self, msg: SignalSourceSettings) -> None:
        self.apply_settings(msg)
        if msg.seed != self.STATE.seed:
            self.STATE.seed = msg.seed
            self.STATE.rng = np.random.default_rng(msg.seed)

    @ez.publisher(OUTPUT_SIGNAL)
    async def generate(self) -> AsyncGenerator[tuple[ez.OutputStream, Any], None]:
        next_t = time.monotonic()
        while True:
            s = self.SETTINGS
            period = s.chunk_size / s.fs
            next_t += period
            delay = next_t - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -1.0:  # fell far behind (e.g. fs raised): do not burst to catch up
                next_t = time.monotonic()
            if not s.enabled:
                continue
            n = np.arange(self.STATE.sample, self.STATE.sample + s.chunk_size)
            data = s.tone.amplitude * np.sin(2 * np.pi * s.tone.freq_hz * n / s.fs)
            data = data + self.STATE.rng.normal(0.0, s.noise_std, s.chunk_size)
            chunk = Chunk.make(data, s.fs, time.time(), self.STATE.seq)
            self.STATE.sample += s.chunk_size
            self.STATE.seq += 1
            yield self.OUTPUT_SIGNAL, chunk


def design_fir(cutoff_hz: float, fs: float, taps: int, window: Window, kind: str) -> np.ndarray:
    """Windowed-sinc FIR taps. Raises ValueError for a cutoff at or above Nyquist."""
    nyquist = fs / 2.0
    if not 0.0 < cutoff_hz < nyquist:
        raise ValueError(
            f"cutoff_hz={cutoff_hz:g} must be between 0 and the Nyquist frequency "
            f"{nyquist:g} Hz (fs={fs:g})"
        )
    taps = taps if taps % 2 else taps + 1
    m = np.arange(taps) - (taps - 1) / 2
    h: np.ndarray = 2 * cutoff_hz / fs * np.sinc(2 * cutoff_hz / fs * m)
    if window is Window.HANN:
        h *= np.hanning(taps)
    elif window is Window.HAMMING:
        h *= np.hamming(taps)
    elif window is Window.BLACKMAN:
        h *= np.blackman(taps)
    elif window is not Window.RECTANGULAR:
        raise TypeError(f"window={window!r} is not a demo Window member")
    h /= h.sum()
    if kind == "highpass":
        h = -h
        h[(taps - 1) // 2] += 1.0
    elif kind != "lowpass":
        raise ValueError(f"kind={kind!r} must be 'lowpass' or 'highpass'")
    return h


class FilterState(ez.State):
    taps: np.ndarray | None
    key: tuple[object, ...] | None
    tail: np.ndarray


class Filter(ez.Unit):
    """FIR filter with live-tunable cutoff, length, window and kind."""

    SETTINGS = FilterSettings
    STATE = FilterState

    INPUT_SETTINGS = ez.InputStream(FilterSettings)
    INPUT_SIGNAL = ez.InputStream(Chunk)
    OUTPUT_SIGNAL = ez.OutputStream(Chunk)

    async def initialize(self) -> None:
        self.STATE.taps = None
        self.STATE.key = None
        self.STATE.tail = np.zeros(0)

    @ez.subscriber(INPUT_SETTINGS)
    async def on_settings(self, msg: FilterSettings) -> None:
        self.apply_settings(msg)

    @ez.subscriber(INPUT_SIGNAL)
    @ez.publisher(OUTPUT_SIGNAL)
    async def on_signal(self, msg: Chunk) -> AsyncGenerator[tuple[ez.OutputStream, Any], None]:
        s = self.SETTINGS
        if s.bypass:
            yield self.OUTPUT_SIGNAL, msg
            return
        key = (s.cutoff_hz, msg.fs, s.taps, s.window, s.kind)
        h = self.STATE.taps
        if h is None or key != self.STATE.key:
            h = design_fir(s.cutoff_hz, msg.fs, s.taps, s.window, s.kind)
            self.STATE.taps = h
            self.STATE.key = key
            self.STATE.tail = np.zeros(len(h) - 1)
        x = np.concatenate([self.STATE.tail, msg.samples])
        y = np.convolve(x, h, mode="valid")
        self.STATE.tail = x[len(x) - (len(h) - 1) :]
        yield self.OUTPUT_SIGNAL, Chunk.make(y, msg.fs, msg.t0, msg.seq)


class DetectorState(ez.State):
    last_value: float
    last_detection_t: float


class Detector(ez.Unit):
    """Threshold-crossing detector with an optional refractory period."""

    SETTINGS = DetectorSettings
    STATE = DetectorState

    INPUT_SETTINGS = ez.InputStream(DetectorSettings)
    INPUT_SIGNAL = ez.InputStream(Chunk)
    OUTPUT_EVENTS = ez.OutputStream(Detections)

    async def initialize(self) -> None:
        self.STATE.last_value = 0.0
        self.STATE.last_detection_t = -np.inf

    @ez.subscriber(INPUT_SETTINGS)
    async def on_settings(self, msg: DetectorSettings) -> None:
        self.apply_settings(msg)

    @ez.subscriber(INPUT_SIGNAL)
    @ez.publisher(OUTPUT_EVENTS)
    async def on_signal(self, msg: Chunk) -> AsyncGenerator[tuple[ez.OutputStream, Any], None]:
        s = self.SETTINGS
        samples = msg.samples
        x = np.concatenate([[self.STATE.last_value], samples])
        above = x >= s.threshold
        rising = ~above[:-1] & above[1:]
        falling = above[:-1] & ~above[1:]
        if s.edge == "rising":
            hits = rising
        elif s.edge == "falling":
            hits = falling
        elif s.edge == "both":
            hits = rising | falling
        else:
            raise ValueError(f"edge={s.edge!r} must be 'rising', 'falling' or 'both'")
        idx = np.flatnonzero(hits)
        times = msg.t0 + idx / msg.fs
        keep = []
        for i, t in zip(idx, times, strict=False):
            if s.refractory_s is None or t - self.STATE.last_detection_t >= s.refractory_s:
                keep.append(i)
                self.STATE.last_detection_t = t
        keep_idx = np.asarray(keep, dtype=int)
        self.STATE.last_value = float(samples[-1]) if len(samples) else self.STATE.last_value
        yield (
            self.OUTPUT_EVENTS,
            Detections(
                times=msg.t0 + keep_idx / msg.fs,
                values=samples[keep_idx],
                label=s.label,
                seq=msg.seq,
            ),
        )


class SinkState(ez.State):
    received: int
    detections: int
    last_times: np.ndarray


class Sink(ez.Unit):
    """Counts what arrives and keeps the times of the last detections."""

    SETTINGS = SinkSettings
    STATE = SinkState

    INPUT_SETTINGS = ez.InputStream(SinkSettings)
    INPUT = ez.InputStream(Detections)

    async def initialize(self) -> None:
        self.STATE.received = 0
        self.STATE.detections = 0
        self.STATE.last_times = np.zeros(0)

    @ez.subscriber(INPUT_SETTINGS)
    async def on_settings(self, msg: SinkSettings) -> None:
        self.apply_settings(msg)

    @ez.subscriber(INPUT)
    async def on_message(self, msg: Detections) -> None:
        self.STATE.received += 1
        self.STATE.detections += len(msg.times)
        # Copy: a received message may live in shared memory that ezmsg reuses.
        kept = np.concatenate([self.STATE.last_times, np.array(msg.times, copy=True)])
        self.STATE.last_times = kept[-self.SETTINGS.keep_last :]


class DemoSettings(ez.Settings):
    source: SignalSourceSettings = field(default_factory=SignalSourceSettings)
    filter: FilterSettings = field(default_factory=FilterSettings)
    detector: DetectorSettings = field(default_factory=DetectorSettings)
    sink: SinkSettings = field(default_factory=SinkSettings)
    separate_processes: bool = True


class DemoPipeline(ez.Collection):
    """Source -> filter -> detector -> sink, each unit in its own process by default."""

    SETTINGS = DemoSettings

    SOURCE = SignalSource()
    FILTER = Filter()
    DETECTOR = Detector()
    SINK = Sink()

    def configure(self) -> None:
        self.SOURCE.apply_settings(self.SETTINGS.source)
        self.FILTER.apply_settings(self.SETTINGS.filter)
        self.DETECTOR.apply_settings(self.SETTINGS.detector)
        self.SINK.apply_settings(self.SETTINGS.sink)

    def network(self) -> ez.NetworkDefinition:
        return (
            (self.SOURCE.OUTPUT_SIGNAL, self.FILTER.INPUT_SIGNAL),
            (self.FILTER.OUTPUT_SIGNAL, self.DETECTOR.INPUT_SIGNAL),
            (self.DETECTOR.OUTPUT_EVENTS, self.SINK.INPUT),
        )

    def process_components(self) -> tuple[ez.Component, ...]:
        if self.SETTINGS.separate_processes:
            return (self.SOURCE, self.FILTER, self.DETECTOR, self.SINK)
        return ()


# --------------------------------------------------------------------------- settings echo
# Appended for the settings benchmark and tests: a unit that reports what its own code sees.


class EchoSettings(ez.Settings):
    value: float = field(default=0.0, metadata={"description": "Any number; echoed back."})
    window: Window = field(default=Window.HANN, metadata={"description": "Any Window member."})
    label: str = field(default="echo", metadata={"description": "Any text; echoed back."})


@dataclass
class SettingsSeen:
    """What a SettingsEcho unit saw, published each time its settings change."""

    value: float
    window_name: str  # the member's name, or "<foreign ClassName>" for another class
    label: str
    seen_ns: int  # time.perf_counter_ns() in the unit when its own handler ran
    count: int


class SettingsEchoState(ez.State):
    count: int


class SettingsEcho(ez.Unit):
    """Publishes :class:`SettingsSeen` from inside its settings handler.

    ``seen_ns`` is ``time.perf_counter_ns()`` (CLOCK_MONOTONIC on Linux: one clock for all
    processes of the host), so a caller on the same host can time how long a change takes
    to reach the unit's own code. ``window_name`` tells whether an enum arrived as a member
    of the unit's own ``Window`` class (ezmsg rough edge 6).
    """

    SETTINGS = EchoSettings
    STATE = SettingsEchoState

    INPUT_SETTINGS = ez.InputStream(EchoSettings)
    OUTPUT_SEEN = ez.OutputStream(SettingsSeen)

    async def initialize(self) -> None:
        self.STATE.count = 0

    @ez.subscriber(INPUT_SETTINGS)
    @ez.publisher(OUTPUT_SEEN)
    async def on_settings(
        self, msg: EchoSettings
    ) -> AsyncGenerator[tuple[ez.OutputStream, Any], None]:
        seen_ns = time.perf_counter_ns()
        self.apply_settings(msg)
        self.STATE.count += 1
        w = msg.window
        name = w.name if isinstance(w, Window) else f"<foreign {type(w).__name__}>"
        yield (
            self.OUTPUT_SEEN,
            SettingsSeen(msg.value, name, msg.label, seen_ns, self.STATE.count),
        )
