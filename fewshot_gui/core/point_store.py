"""One row of points per labeled file, kept where re-labeling reads them in one pass."""

from __future__ import annotations

import functools
import time

import torch

BLOCK = 8192  # rows per oneDNN copy: a changed row re-copies only its block


class PointStore:
    """Rows of `model.points(features)`, float32, zeros for files that failed; grows by doubling.

    `times(matrix)` multiplies every row by a small matrix: the one pass re-labeling makes.
    With `onednn`, it reads oneDNN copies of the rows, made block by block the first time a
    block is read and kept until one of its rows changes. For a handful of columns oneDNN
    runs this near memory speed where the default BLAS may not (on AMD processors MKL takes
    a slow path, twice as slow here); the copies double the memory the rows take.
    """

    def __init__(self, onednn: bool = False) -> None:
        self.onednn = onednn
        self._exact = torch.zeros(0)
        self._rows = 0
        self._blocks: list[torch.Tensor | None] = []

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
        self._exact[torch.tensor(rows)] = 0.0 if points is None else points.float().cpu()
        self._rows = max(self._rows, needed)
        for block in {row // BLOCK for row in rows}:
            if block < len(self._blocks):
                self._blocks[block] = None

    def exact(self) -> torch.Tensor:
        """All rows, float32: a view, valid until the next `put`."""
        return self._exact[: self._rows]

    def times(self, matrix: torch.Tensor) -> torch.Tensor:
        """All rows times `matrix` (k, D) transposed -> (rows, k), float32."""
        rows = self.exact().flatten(1)
        if not self.onednn or not len(rows):
            return rows @ matrix.T
        weight = matrix.float().contiguous().to_mkldnn()
        parts = []
        for start in range(0, len(rows), BLOCK):
            stop = min(start + BLOCK, len(rows))
            block = start // BLOCK
            self._blocks.extend([None] * (block + 1 - len(self._blocks)))
            copy = self._blocks[block]
            if copy is None or copy.shape[0] != stop - start:
                copy = self._blocks[block] = rows[start:stop].contiguous().to_mkldnn()
            parts.append(torch._C._nn.mkldnn_linear(copy, weight, None).to_dense())
        return torch.cat(parts)

    def clear(self) -> None:
        self._exact = torch.zeros(0)
        self._rows = 0
        self._blocks = []

    def _resize(self, capacity: int, shape: torch.Size) -> None:
        """New buffers; rows so far are kept if their shape stays (else they were all zeros)."""
        same = self._exact.shape[1:] == shape
        keep = min(self._rows, capacity, len(self._exact)) if same else 0
        exact = torch.zeros(capacity, *shape)
        if keep:
            exact[:keep] = self._exact[:keep]
        self._exact = exact
        if not same:
            self._blocks = []


@functools.lru_cache
def onednn_pays(dim: int, columns: int = 8, rows: int = BLOCK) -> bool:
    """Whether oneDNN multiplies rows by a few columns faster than torch's default here.
    Timed once per process and size on a block of random rows, best of three."""
    if not torch.backends.mkldnn.is_available():
        return False
    points, matrix = torch.rand(rows, dim), torch.rand(columns, dim)
    copy, weight = points.to_mkldnn(), matrix.to_mkldnn()

    def best(job: object) -> float:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            job()  # type: ignore[operator]
            times.append(time.perf_counter() - started)
        return min(times)

    with torch.no_grad():
        onednn = best(lambda: torch._C._nn.mkldnn_linear(copy, weight, None).to_dense())
        return onednn < 0.8 * best(lambda: points @ matrix.T)
