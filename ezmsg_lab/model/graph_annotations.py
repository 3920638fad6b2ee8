"""Annotations of the graph widget: rates and channel kinds on edges, backpressure on
publishers, errors on units, missing processes. A separate dict from the graph state
(:mod:`ezmsg_lab.model.graph_view`): it changes at 2 Hz, the topology rarely.

Layout::

    {"edges":      {"src->dst": {rate_hz, channel}},
     "publishers": {topic: {inflight, num_buffers, fill, level, rate_hz}},
     "units":      {address: {errors, last_error}},
     "missing_processes": [process id],
     "thresholds": {"warn": BACKPRESSURE_WARN, "critical": BACKPRESSURE_CRITICAL}}
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, TypedDict

# Backpressure: fraction of a publisher's buffers in flight.
BACKPRESSURE_WARN = 0.5
BACKPRESSURE_CRITICAL = 0.9
CHANNEL_KINDS = ("LOCAL", "SHM", "TCP", "UNKNOWN")
EDGE_SEP = "->"


def edge_id(source: str, target: str) -> str:
    """The id of the edge from topic ``source`` to topic ``target`` (graph state and
    annotations share it)."""
    return f"{source}{EDGE_SEP}{target}"


class EdgeAnnotation(TypedDict):
    rate_hz: float | None
    channel: str | None


class PublisherAnnotation(TypedDict):
    inflight: int
    num_buffers: int
    fill: float
    level: str
    rate_hz: float | None


class UnitAnnotation(TypedDict):
    errors: int
    last_error: str | None


class Annotations(TypedDict):
    edges: dict[str, EdgeAnnotation]
    publishers: dict[str, PublisherAnnotation]
    units: dict[str, UnitAnnotation]
    missing_processes: list[str]
    thresholds: dict[str, float]  # the backpressure thresholds, for the legend


def backpressure_level(inflight: int, num_buffers: int) -> str:
    """``"ok"``, ``"warn"`` (>= BACKPRESSURE_WARN full) or ``"critical"`` (>= ..._CRITICAL)."""
    if num_buffers <= 0:
        return "ok"
    fill = inflight / num_buffers
    if fill >= BACKPRESSURE_CRITICAL:
        return "critical"
    if fill >= BACKPRESSURE_WARN:
        return "warn"
    return "ok"


def _rate(value: Any, what: str) -> float | None:
    if value is None:
        return None
    rate = float(value)
    if math.isnan(rate):
        return None
    if rate < 0 or math.isinf(rate):
        raise ValueError(f"{what}: rate {value!r} must be a finite number >= 0, or None")
    return rate


def _channel(value: Any, what: str) -> str | None:
    if value is None:
        return None
    name = str(getattr(value, "value", value)).upper()
    if name not in CHANNEL_KINDS:
        raise ValueError(f"{what}: channel kind {value!r} must be one of {CHANNEL_KINDS}")
    return name


def _edge_key(key: str | tuple[str, str]) -> str:
    if isinstance(key, tuple):
        return edge_id(str(key[0]), str(key[1]))
    if EDGE_SEP not in key:
        raise ValueError(
            f"edge key {key!r} must be (source topic, target topic) or 'source{EDGE_SEP}target'"
        )
    return key


def make_annotations(
    *,
    edge_rates: Mapping[Any, float | None] | None = None,
    edge_channels: Mapping[Any, Any] | None = None,
    publishers: Mapping[str, tuple[int, int]] | None = None,
    publisher_rates: Mapping[str, float | None] | None = None,
    unit_errors: Mapping[str, tuple[int, str | None]] | None = None,
    missing_processes: Iterable[Any] = (),
) -> Annotations:
    """Build the graph widget's annotations, checking every value.

    Parameters
    ----------
    edge_rates, edge_channels : mapping
        Keyed by ``(source topic, target topic)`` or an edge id ``"src->dst"``: message
        rate in Hz (None when unknown) and channel kind (LOCAL/SHM/TCP, a string or
        ezmsg's ``ProfileChannelType``).
    publishers : mapping
        Output topic -> ``(inflight messages, num_buffers)``; the backpressure level is
        derived with :data:`BACKPRESSURE_WARN` and :data:`BACKPRESSURE_CRITICAL`.
    publisher_rates : mapping
        Output topic -> publish rate (Hz).
    unit_errors : mapping
        Unit address -> ``(error count, last error text or None)``.
    missing_processes : iterable
        Process ids (UUID or str) that did not answer the last poll: drawn greyed out.
    """
    edges: dict[str, EdgeAnnotation] = {}
    for key, value in (edge_rates or {}).items():
        eid = _edge_key(key)
        edges.setdefault(eid, {"rate_hz": None, "channel": None})
        edges[eid]["rate_hz"] = _rate(value, f"edge {eid}")
    for key, value in (edge_channels or {}).items():
        eid = _edge_key(key)
        edges.setdefault(eid, {"rate_hz": None, "channel": None})
        edges[eid]["channel"] = _channel(value, f"edge {eid}")
    pubs: dict[str, PublisherAnnotation] = {}
    for topic, (inflight, num_buffers) in (publishers or {}).items():
        inflight, num_buffers = int(inflight), int(num_buffers)
        if inflight < 0 or num_buffers < 0:
            raise ValueError(
                f"publisher {topic}: inflight={inflight} and num_buffers={num_buffers} must be >= 0"
            )
        pubs[str(topic)] = {
            "inflight": inflight,
            "num_buffers": num_buffers,
            "fill": inflight / num_buffers if num_buffers else 0.0,
            "level": backpressure_level(inflight, num_buffers),
            "rate_hz": _rate((publisher_rates or {}).get(topic), f"publisher {topic}"),
        }
    units: dict[str, UnitAnnotation] = {}
    for address, (count, last) in (unit_errors or {}).items():
        if int(count) < 0:
            raise ValueError(f"unit {address}: error count {count!r} must be >= 0")
        units[str(address)] = {
            "errors": int(count),
            "last_error": None if last is None else str(last),
        }
    return {
        "edges": edges,
        "publishers": pubs,
        "units": units,
        "missing_processes": sorted({str(p) for p in missing_processes}),
        "thresholds": {"warn": BACKPRESSURE_WARN, "critical": BACKPRESSURE_CRITICAL},
    }


def normalize_annotations(ann: Mapping[str, Any] | None) -> Annotations:
    """Check an annotations dict (as :func:`make_annotations` builds) and fill defaults."""
    if ann is None:
        return make_annotations()
    if not isinstance(ann, Mapping):
        raise TypeError(f"annotations must be a dict, got {type(ann).__name__}")
    # "thresholds" is accepted and rebuilt from the module constants.
    unknown = set(ann) - {"edges", "publishers", "units", "missing_processes", "thresholds"}
    if unknown:
        raise ValueError(
            f"unknown annotation keys {sorted(unknown)}; expected edges, publishers, units, "
            "missing_processes (build them with make_annotations)"
        )
    edges = ann.get("edges", {}) or {}
    pubs = ann.get("publishers", {}) or {}
    return make_annotations(
        edge_rates={k: v.get("rate_hz") for k, v in edges.items()},
        edge_channels={k: v.get("channel") for k, v in edges.items()},
        publishers={k: (v["inflight"], v["num_buffers"]) for k, v in pubs.items()},
        publisher_rates={k: v.get("rate_hz") for k, v in pubs.items()},
        unit_errors={
            k: (v.get("errors", 0), v.get("last_error"))
            for k, v in (ann.get("units", {}) or {}).items()
        },
        missing_processes=ann.get("missing_processes", ()) or (),
    )
