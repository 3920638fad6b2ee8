"""Columnar ring buffers: bounded history in preallocated numpy arrays.

Appends are vectorised (a whole poll or trace batch at once) and never allocate once the
buffer is full: the oldest rows are overwritten. ``view()`` returns the rows in arrival
order as plain arrays, ready for a DataFrame.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


class ColumnRing:
    """A fixed-capacity table of named numpy columns.

    Parameters
    ----------
    capacity : int
        Rows kept; older rows are overwritten.
    dtypes : mapping of column name to numpy dtype

    Examples
    --------
    >>> ring = ColumnRing(3, {"t": np.float64, "v": np.int32})
    >>> ring.extend(t=[1.0, 2.0, 3.0, 4.0], v=[1, 2, 3, 4])
    >>> ring.view()["v"].tolist()
    [2, 3, 4]
    """

    def __init__(self, capacity: int, dtypes: Mapping[str, np.dtype | type]) -> None:
        if capacity < 1:
            raise ValueError(f"capacity={capacity} must be at least 1")
        self.capacity = int(capacity)
        self._cols = {name: np.zeros(self.capacity, dtype=dt) for name, dt in dtypes.items()}
        self._next = 0  # index of the next write
        self._size = 0
        self.appended = 0  # rows ever appended (dropped = appended - len)

    def __len__(self) -> int:
        return self._size

    @property
    def columns(self) -> list[str]:
        return list(self._cols)

    @property
    def nbytes(self) -> int:
        return sum(col.nbytes for col in self._cols.values())

    @property
    def dropped(self) -> int:
        return self.appended - self._size

    def extend(self, **columns: object) -> None:
        """Append rows; every column of the table must be given, all of one length."""
        if set(columns) != set(self._cols):
            missing = set(self._cols) - set(columns)
            extra = set(columns) - set(self._cols)
            raise KeyError(f"columns differ: missing {sorted(missing)}, unknown {sorted(extra)}")
        arrays = {name: np.asarray(values) for name, values in columns.items()}
        lengths = {len(a) for a in arrays.values()}
        if len(lengths) != 1:
            raise ValueError(f"columns have different lengths: {sorted(lengths)}")
        n = lengths.pop()
        if n == 0:
            return
        self.appended += n
        if n >= self.capacity:
            for name, arr in arrays.items():
                self._cols[name][:] = arr[n - self.capacity :]
            self._next = 0
            self._size = self.capacity
            return
        end = self._next + n
        if end <= self.capacity:
            for name, arr in arrays.items():
                self._cols[name][self._next : end] = arr
        else:
            first = self.capacity - self._next
            for name, arr in arrays.items():
                col = self._cols[name]
                col[self._next :] = arr[:first]
                col[: n - first] = arr[first:]
        self._next = end % self.capacity
        self._size = min(self.capacity, self._size + n)

    def view(self, columns: list[str] | None = None) -> dict[str, np.ndarray]:
        """Copies of the stored rows, oldest first."""
        names = columns if columns is not None else list(self._cols)
        if self._size < self.capacity:
            return {name: self._cols[name][: self._size].copy() for name in names}
        return {
            name: np.concatenate([self._cols[name][self._next :], self._cols[name][: self._next]])
            for name in names
        }

    def tail(self, n: int, columns: list[str] | None = None) -> dict[str, np.ndarray]:
        """Copies of the newest ``n`` stored rows (at most all of them), oldest first."""
        n = max(0, min(int(n), self._size))
        names = columns if columns is not None else list(self._cols)
        start = (self._next - n) % self.capacity
        if start + n <= self.capacity:
            return {name: self._cols[name][start : start + n].copy() for name in names}
        return {
            name: np.concatenate([self._cols[name][start:], self._cols[name][: self._next]])
            for name in names
        }

    def oldest(self, column: str) -> object | None:
        """The oldest stored value of ``column`` (None when empty), without a copy."""
        if self._size == 0:
            return None
        value: object = self._cols[column][0 if self._size < self.capacity else self._next].item()
        return value

    def clear(self) -> None:
        self._next = 0
        self._size = 0
