"""DataFrames to Parquet bytes and back, data only.

Columns pyarrow stores natively (numbers, bools, strings, timezone-aware timestamps,
categoricals, nullable ints) go as they are. An object column holding anything but
strings (settings values, lists of inputs, dicts of fields) is stored as JSON text and
decoded on reading; its name is listed in the table's metadata. Nothing is ever pickled.

What JSON cannot hold is written as plain data: numpy scalars and arrays become numbers
and lists, tuples become lists, Enum members their ``Class.NAME`` text, times their ISO
text, anything else its ``repr``. :func:`plain` is that conversion.
"""

from __future__ import annotations

import datetime
import enum
import io
import json
import math
from typing import Any

import numpy as np
import pandas as pd

from ..errors import RecordingError

JSON_COLUMNS_KEY = b"ezmsg_lab.json_columns"


def plain(value: Any) -> Any:
    """``value`` as JSON-ready plain data (see module docstring)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (datetime.datetime, datetime.date, pd.Timestamp)):
        return value.isoformat()
    return repr(value)


def dumps(value: Any) -> str:
    """JSON text of ``plain(value)`` (NaN and infinities allowed, as Python's json)."""
    return json.dumps(plain(value), sort_keys=False)


def _is_text_column(values: pd.Series) -> bool:
    for v in values:
        if v is None or isinstance(v, str):
            continue
        if isinstance(v, float) and math.isnan(v):
            continue
        return False
    return True


def encode_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as it is stored: non-text object columns as JSON text (with the
    column names in ``attrs["json_columns"]``)."""
    out = frame.reset_index(drop=True).copy()
    json_cols = []
    for name in out.columns:
        col = out[name]
        if col.dtype == object and not _is_text_column(col):
            out[name] = [None if v is None else dumps(v) for v in col]
            json_cols.append(str(name))
    out.attrs = {"json_columns": json_cols}
    return out


def to_parquet_bytes(frame: pd.DataFrame) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    encoded = encode_frame(frame)
    table = pa.Table.from_pandas(encoded, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[JSON_COLUMNS_KEY] = json.dumps(encoded.attrs["json_columns"]).encode()
    table = table.replace_schema_metadata(meta)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def from_parquet_bytes(data: bytes, member: str) -> pd.DataFrame:
    """Read a table written by :func:`to_parquet_bytes`; RecordingError when it is not
    one (a crafted or damaged member)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(data))
        meta = table.schema.metadata or {}
        json_cols = json.loads(meta.get(JSON_COLUMNS_KEY, b"[]"))
        frame: pd.DataFrame = table.to_pandas()
    except (pa.ArrowException, ValueError, TypeError, OSError) as exc:
        raise RecordingError(
            f"The recording's member {member!r} is not a readable Parquet table "
            f"({type(exc).__name__}: {exc}); the file is damaged or was not written by "
            "ezmsg-lab."
        ) from None
    if not isinstance(json_cols, list):
        raise RecordingError(f"The member {member!r} has malformed column metadata.")
    for name in json_cols:
        if name in frame.columns:
            try:
                values = [json.loads(v) if isinstance(v, str) else None for v in frame[name]]
                frame[name] = pd.Series(values, index=frame.index, dtype=object)
            except (TypeError, ValueError) as exc:
                raise RecordingError(
                    f"Column {name!r} of {member!r} is not JSON text ({exc}); the file is damaged."
                ) from None
    return frame
