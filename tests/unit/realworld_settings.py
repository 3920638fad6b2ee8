"""Settings classes shaped like ezmsg-sigproc / ezmsg-baseproc ones, for schema/form tests.

Written with ``from __future__ import annotations`` as those packages are, so every
annotation is a string that the schema must resolve with ``typing.get_type_hints``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import ezmsg.core as ez
import numpy as np
import numpy.typing as npt


class Anchor(enum.Enum):
    BEGINNING = "beginning"
    END = "end"
    MIDDLE = "middle"


class Window(enum.Enum):
    """Same name and members as the demo's ``Window``: a "foreign" enum for translation."""

    RECTANGULAR = "rectangular"
    HANN = "hann"
    HAMMING = "hamming"
    BLACKMAN = "blackman"


class Order(enum.IntEnum):
    LOW = 1
    HIGH = 4


@dataclass(frozen=True)
class BandSpec:
    lo_hz: float = field(default=1.0, metadata={"ge": 0.0})
    hi_hz: float = field(default=40.0, metadata={"gt": 0.0, "lt": 1000.0})
    label: str = "band"


def _identity(x: Any) -> Any:
    return x


class RealWorldSettings(ez.Settings):
    # required, no default (as ButterworthFilterSettings.order in some versions)
    axis: str | None = field(metadata={"description": "Axis to filter along."})
    order: int = field(metadata={"ge": 0, "le": 12, "description": "Filter order."})
    cuton: float | None = None
    cutoff: float | None = field(default=30.0, metadata={"gt": 0.0})
    frequencies: float | tuple[float, float] | None = field(default=None, metadata={"ge": 0.0})
    coef_type: Literal["ba", "sos"] = "ba"
    anchor: Anchor = Anchor.BEGINNING
    window: Window = Window.HANN
    order_enum: Order = Order.LOW
    weights: np.ndarray = field(default_factory=lambda: np.ones(4))
    float_weights: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(2))
    coefs: npt.ArrayLike | None = None
    func: Callable[[Any], Any] = _identity
    shape: tuple[int, ...] = (1, 2)
    channels: list[int] = field(default_factory=lambda: [0, 1])
    gains: dict[str, float] = field(default_factory=dict)
    band: BandSpec = field(default_factory=BandSpec)
    maybe_band: BandSpec | None = None
    extra: Any = None
    mode: int | str = "auto"
    tag: Literal[1, 2, "three"] = 1


class NoDefaultsSettings(ez.Settings):
    gain: float
    offset: float = 0.0
