"""A tapped topic's messages as data: arrays without pickle and a table per chunk.

``AxisArray`` messages (duck-typed as in :mod:`ezmsg_lab.model.tap_convert`) that follow
each other with the same dims, dtype and shape off the time axis are joined along it into
one array (one ``.npy`` member, a *run*); a table row per message says which run, where
in it, and its axes, attrs and key (JSON). Without a time dim a run stacks them along a
new first axis. Dataclass messages store their fields as JSON (arrays as lists), bare
numpy arrays as runs, anything else its JSON form.

Reading gives :class:`StoredAxisArray` objects: plain dataclasses with the same shape
(``data``, ``dims``, ``axes``, ``attrs``, ``key``), so the Lab's own tap conversion makes
the same xarray from them, and the replay rebuilds ezmsg messages from them.
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import RecordingError
from ..model.tap_buffer import TapItem
from ..model.tap_convert import is_axisarray, time_dim
from .tables import plain


@dataclass
class StoredLinearAxis:
    gain: float
    offset: float
    unit: str = ""


@dataclass
class StoredCoordinateAxis:
    data: np.ndarray
    dims: list[str]
    unit: str = ""


@dataclass
class StoredAxisArray:
    """An AxisArray message as recorded (``msg_type`` is ``module.qualname``)."""

    data: np.ndarray
    dims: list[str]
    axes: dict[str, Any] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    key: str = ""
    msg_type: str = ""


@dataclass
class StoredMessage:
    """A message that is not an AxisArray: its type and its fields (or value) as data."""

    msg_type: str
    fields: Any


def _type_name(msg: Any) -> str:
    cls = type(msg)
    return f"{cls.__module__}.{cls.__qualname__}"


def _axes_json(msg: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, axis in msg.axes.items():
        if hasattr(axis, "gain") and hasattr(axis, "offset"):
            out[name] = {
                "kind": "linear",
                "gain": float(axis.gain),
                "offset": float(axis.offset),
                "unit": str(getattr(axis, "unit", "")),
            }
        else:
            values = np.asarray(getattr(axis, "data", []))
            out[name] = {
                "kind": "coordinate",
                "data": plain(values),
                "dtype": values.dtype.str if values.dtype.kind in "biufUSM" else "",
                "dims": list(getattr(axis, "dims", [name])),
                "unit": str(getattr(axis, "unit", "")),
            }
    return out


def _run_key(msg: Any) -> tuple[Any, ...] | None:
    """Messages with equal keys join into one run (None: a message that is no array)."""
    if is_axisarray(msg):
        tdim = time_dim(msg)
        shape = list(msg.data.shape)
        axis = msg.dims.index(tdim) if tdim else None
        if axis is not None:
            shape.pop(axis)
        return ("axisarray", tuple(msg.dims), msg.data.dtype.str, tuple(shape), axis)
    if isinstance(msg, np.ndarray) and not msg.dtype.hasobject:
        return ("ndarray", (), msg.dtype.str, msg.shape, None)
    return None


def encode_items(items: list[TapItem]) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """One chunk of a tap: the message table and the run arrays it points into."""
    rows: list[dict[str, Any]] = []
    runs: list[np.ndarray] = []
    current: tuple[Any, ...] | None = None
    pieces: list[np.ndarray] = []
    offset = 0

    def close_run() -> None:
        nonlocal pieces, offset
        if pieces and current is not None:
            axis = current[4]
            runs.append(np.concatenate(pieces, axis=axis) if axis is not None else np.stack(pieces))
        pieces, offset = [], 0

    for it in items:
        msg = it.message
        key = _run_key(msg)
        row: dict[str, Any] = {"received": it.received, "msg_type": _type_name(msg)}
        if key is None:
            close_run()
            current = None
            row.update(kind="other", run=-1, start=0, stop=0, detail=_other_json(msg))
            rows.append(row)
            continue
        if key != current:
            close_run()
            current = key
        axis = key[4]
        n = msg.data.shape[axis] if axis is not None else 1
        data = msg.data if key[0] == "axisarray" else msg
        pieces.append(np.ascontiguousarray(data))
        detail = (
            {
                "dims": list(msg.dims),
                "axes": _axes_json(msg),
                "attrs": plain(dict(getattr(msg, "attrs", {}) or {})),
                "key": str(getattr(msg, "key", "") or ""),
            }
            if key[0] == "axisarray"
            else {}
        )
        row.update(kind=key[0], run=len(runs), start=offset, stop=offset + n, detail=plain(detail))
        offset += n
        rows.append(row)
    close_run()
    columns = ["received", "msg_type", "kind", "run", "start", "stop", "detail"]
    return pd.DataFrame(rows, columns=columns), runs


def _other_json(msg: Any) -> Any:
    if dataclasses.is_dataclass(msg) and not isinstance(msg, type):
        return {f.name: plain(getattr(msg, f.name)) for f in dataclasses.fields(msg)}
    return plain(msg)


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _coordinate(spec: dict[str, Any]) -> StoredCoordinateAxis:
    dtype = spec.get("dtype") or None
    values = np.asarray(spec.get("data", []), dtype=np.dtype(dtype) if dtype else None)
    return StoredCoordinateAxis(values, list(spec.get("dims", [])), str(spec.get("unit", "")))


def decode_items(table: pd.DataFrame, runs: list[np.ndarray], member: str) -> list[TapItem]:
    """The messages of one chunk (see :func:`encode_items`), as :class:`TapItem`."""
    items: list[TapItem] = []
    for row in table.to_dict("records"):
        detail: dict[str, Any] = row["detail"] if isinstance(row["detail"], dict) else {}
        kind = row["kind"]
        if kind == "other":
            msg: Any = StoredMessage(str(row["msg_type"]), row["detail"])
            items.append(TapItem(float(row["received"]), msg, 0))
            continue
        run = int(row["run"])
        if not 0 <= run < len(runs):
            raise RecordingError(f"{member!r} points to array run {run}, which is missing.")
        arr = runs[run]
        if kind == "ndarray":
            msg = arr[int(row["start"])]
        elif kind == "axisarray":
            dims = [str(d) for d in detail.get("dims", [])]
            axes: dict[str, Any] = {}
            for name, spec in (detail.get("axes") or {}).items():
                axes[name] = (
                    StoredLinearAxis(
                        float(spec["gain"]), float(spec["offset"]), spec.get("unit", "")
                    )
                    if spec.get("kind") == "linear"
                    else _coordinate(spec)
                )
            probe = StoredAxisArray(np.empty((0,) * len(dims)), dims, axes)
            tdim = time_dim(probe) if dims else None
            if tdim is not None:
                axis = dims.index(tdim)
                index = [slice(None)] * arr.ndim
                index[axis] = slice(int(row["start"]), int(row["stop"]))
                data = arr[tuple(index)]
            else:
                data = arr[int(row["start"])]
            msg = StoredAxisArray(
                data,
                dims,
                axes,
                dict(detail.get("attrs") or {}),
                str(detail.get("key", "")),
                str(row["msg_type"]),
            )
        else:
            raise RecordingError(f"{member!r} has a message of unknown kind {kind!r}.")
        items.append(TapItem(float(row["received"]), msg, int(getattr(msg, "nbytes", 0))))
    return items
