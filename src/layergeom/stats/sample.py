"""A fixed set of token rows of one layer, collected as they stream by (the intrinsic-dimension sample)."""

from __future__ import annotations

import numpy as np

from layergeom.stats.device import is_tensor, to_numpy


class PointSample:
    """The vectors of the rows fed to it; merged samples are ordered by token row."""

    ROW_BYTES_PER_D = 8  # it keeps every row fed: rows x d x 8 bytes (the fused job's memory budget counts it)

    def __init__(self, d: int, dtype: np.dtype | type = np.float64) -> None:
        """An empty sample of d-vectors, kept and saved as ``dtype`` (float32 only where the values are float32)."""
        self.dtype = np.dtype(dtype)
        self._rows: list[np.ndarray] = []
        self._values: list = [np.empty((0, d), self.dtype)]

    def update(self, values, rows: np.ndarray) -> None:
        """Keep a block's rows (a copy, on the values' device)."""
        self._rows.append(np.asarray(rows, dtype=np.int64).copy())
        self._values.append(values.clone() if is_tensor(values) else np.array(values, dtype=self.dtype))

    def merge(self, other: PointSample) -> None:
        """Add another shard's rows."""
        self._rows.extend(other._rows)
        self._values.extend(other._values)

    def state(self) -> dict[str, np.ndarray]:
        """rows (sorted) and their vectors."""
        rows = np.concatenate(self._rows) if self._rows else np.empty(0, np.int64)
        values = np.concatenate([to_numpy(v).astype(self.dtype, copy=False) for v in self._values])
        if np.all(rows[1:] > rows[:-1]):
            return {"rows": rows, "values": values}
        order = np.argsort(rows, kind="stable")
        return {"rows": rows[order], "values": values[order]}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> PointSample:
        """Rebuild from :meth:`state`."""
        acc = cls(state["values"].shape[1], state["values"].dtype)
        acc.update(state["values"], state["rows"])
        return acc

    def finalize(self) -> np.ndarray:
        """The vectors as float64, ordered by token row."""
        return self.state()["values"].astype(np.float64, copy=False)
