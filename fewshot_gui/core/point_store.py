"""One row of points per labeled file, kept where re-labeling reads them in one pass."""

from __future__ import annotations

import time

import torch


class PointStore:
    """Rows of `model.points(features)`, float32, zeros for files that failed; grows by doubling.

    With `compact`, a bfloat16 copy of every row as well: half the bytes to read, and on
    processors with bfloat16 instructions a several times faster pass; whoever scores from
    it rescores in float32 the rows its rounding could change (see `Labeler._predict`).
    """

    def __init__(self, compact: bool = False) -> None:
        self.compact = compact
        self._exact = torch.zeros(0)
        self._small = torch.zeros(0, dtype=torch.bfloat16)
        self._rows = 0

    def __len__(self) -> int:
        return self._rows

    def put(self, rows: list[int], points: torch.Tensor | None) -> None:
        """Write `points` (len(rows), ...) into `rows`; None writes zeros. Rows may be new."""
        if not rows:
            return
        if points is not None and self._exact.shape[1:] != points.shape[1:]:
            self._resize(0, points.shape[1:])  # every row so far failed (or none came yet)
        needed = max(rows) + 1
        if needed > len(self._exact):
            self._resize(max(2 * len(self._exact), needed, 64), self._exact.shape[1:])
        index = torch.tensor(rows)
        self._exact[index] = 0.0 if points is None else points.float().cpu()
        if self.compact:
            self._small[index] = 0.0 if points is None else points.to(torch.bfloat16).cpu()
        self._rows = max(self._rows, needed)

    def exact(self) -> torch.Tensor:
        """All rows, float32: a view, valid until the next `put`."""
        return self._exact[: self._rows]

    def small(self) -> torch.Tensor | None:
        """All rows in bfloat16 (a view), or None without `compact`."""
        return self._small[: self._rows] if self.compact else None

    def clear(self) -> None:
        self._exact = torch.zeros(0)
        self._small = torch.zeros(0, dtype=torch.bfloat16)
        self._rows = 0

    def _resize(self, capacity: int, shape: torch.Size) -> None:
        """New buffers; rows so far are kept if their shape stays (else they were all zeros)."""
        keep = min(self._rows, capacity, len(self._exact)) if self._exact.shape[1:] == shape else 0
        exact = torch.zeros(capacity, *shape)
        small = torch.zeros(capacity if self.compact else 0, *shape, dtype=torch.bfloat16)
        if keep:
            exact[:keep] = self._exact[:keep]
            if self.compact:
                small[:keep] = self._small[:keep]
        self._exact, self._small = exact, small


def bfloat16_pays(dim: int, classes: int = 8, rows: int = 8192) -> bool:
    """Whether scoring bfloat16 rows beats float32 here: on processors without bfloat16
    instructions it is emulated and slower. Timed, best of three, in a few milliseconds."""
    points = torch.rand(rows, dim)
    directions = torch.rand(classes, dim)

    def best(a: torch.Tensor, b: torch.Tensor) -> float:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            a @ b.T
            times.append(time.perf_counter() - started)
        return min(times)

    with torch.no_grad():
        return best(points.bfloat16(), directions.bfloat16()) < 0.8 * best(points, directions)
