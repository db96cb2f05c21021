"""One row of points per labeled file, kept where re-labeling reads them in one pass."""

from __future__ import annotations

import functools
import time

import torch

BLOCK = 8192  # rows per half-precision copy: a changed row re-packs only its block


class PointStore:
    """Rows of `model.points(features)`, float32, zeros for files that failed; grows to the
    size reserved for a run, else by doubling.

    `times(matrix)` multiplies every row by a small matrix: the one pass re-labeling makes,
    bound by how fast the rows come from memory. With `half` (and FBGEMM in this torch), each
    full block of rows also keeps a float16 copy packed for FBGEMM's half-precision product,
    which reads half the bytes and sums in float32. float16 keeps 11 significant bits, so a
    product of unit vectors moves by at most about 2^-11 (measured: 3e-5 at 1,280 dimensions,
    1.2e-4 at 64), less than the encoder's own rounding moves them. A block is packed when
    it fills (while labeling), and again by the next `times` after one of its rows changed;
    the last, partial block is read in float32.
    """

    def __init__(self, half: bool = False) -> None:
        self.half = half and "fbgemm" in torch.backends.quantized.supported_engines
        self._exact = torch.zeros(0)
        self._rows = 0
        self._reserved = 0
        self._packed: list[torch.Tensor | None] = []

    def __len__(self) -> int:
        return self._rows

    def reserve(self, rows: int) -> None:
        """Room for `rows` rows at the next growth: one buffer of the size a labeling run will
        need, instead of doublings that hold the old and new buffers at once. Rows take memory
        only once written, so a run cancelled early costs only what it stored."""
        self._reserved = max(self._reserved, rows)

    def put(self, rows: list[int], points: torch.Tensor | None) -> None:
        """Write `points` (len(rows), ...) into `rows`; None writes zeros. Rows may be new."""
        if not rows:
            return
        if points is not None and self._exact.shape[1:] != points.shape[1:]:
            self._resize(0, points.shape[1:])  # every row so far failed (or none came yet)
        needed = max(max(rows) + 1, self._rows)
        if needed > len(self._exact):
            grown = max(2 * len(self._exact), needed, 64)
            self._resize(
                self._reserved if self._reserved >= needed else grown, self._exact.shape[1:]
            )
        self._exact[self._rows : needed] = 0.0  # new rows, some perhaps skipped by `rows`
        self._exact[torch.tensor(rows)] = 0.0 if points is None else points.float().cpu()
        filled, self._rows = self._rows // BLOCK, needed
        full = self._rows // BLOCK
        self._packed.extend([None] * (full - len(self._packed)))
        for block in {row // BLOCK for row in rows}:
            if block < filled:
                self._packed[block] = None  # changed: packed again when next read
        for block in range(filled, full):
            self._packed[block] = self._pack(block)  # while labeling, not when re-labeling

    def exact(self) -> torch.Tensor:
        """All rows, float32: a view, valid until the next `put`."""
        return self._exact[: self._rows]

    def times(self, matrix: torch.Tensor) -> torch.Tensor:
        """All rows times `matrix` (k, D) transposed -> (rows, k), float32."""
        matrix = matrix.float()
        if self._exact.dim() < 2:  # every row failed: all zeros
            return torch.zeros(self._rows, len(matrix))
        rows = self.exact().flatten(1)
        if not self.half or len(rows) < BLOCK:
            return rows @ matrix.T
        parts = []
        for block, packed in enumerate(self._packed):
            if packed is None:
                packed = self._packed[block] = self._pack(block)
            parts.append(torch.ops.quantized.linear_dynamic_fp16(matrix, packed))
        tail = rows[len(self._packed) * BLOCK :]
        return torch.cat([*parts, matrix @ tail.T], dim=1).T

    def clear(self) -> None:
        self._exact = torch.zeros(0)
        self._rows = self._reserved = 0
        self._packed = []

    def _pack(self, block: int) -> torch.Tensor | None:
        if not self.half or self._exact.dim() < 2:  # no points yet: nothing to pack
            return None
        rows = self._exact[block * BLOCK : (block + 1) * BLOCK].flatten(1)
        return torch.ops.quantized.linear_prepack_fp16(rows, None)

    def _resize(self, capacity: int, shape: torch.Size) -> None:
        """New buffers; rows so far are kept if their shape stays (else they were all zeros).
        Uninitialised beyond them: `put` zeroes each row as it comes into use."""
        same = self._exact.shape[1:] == shape
        keep = min(self._rows, capacity, len(self._exact)) if same else 0
        exact = torch.empty(capacity, *shape)
        if keep:
            exact[:keep] = self._exact[:keep]
        exact[keep : min(self._rows, capacity)] = 0.0  # rows that failed before points came
        self._exact = exact
        if not same:
            self._packed = []


@functools.lru_cache
def half_pays(dim: int, columns: int = 8, rows: int = BLOCK) -> bool:
    """Whether this torch has FBGEMM's half-precision product and it beats float32 here.
    Timed once per process and size on a block of random rows, best of three."""
    if "fbgemm" not in torch.backends.quantized.supported_engines:
        return False
    points, matrix = torch.rand(rows, dim), torch.rand(columns, dim)
    packed = torch.ops.quantized.linear_prepack_fp16(points, None)

    def best(job: object) -> float:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            job()  # type: ignore[operator]
            times.append(time.perf_counter() - started)
        return min(times)

    with torch.no_grad():
        half = best(lambda: torch.ops.quantized.linear_dynamic_fp16(matrix, packed))
        return half < 0.8 * best(lambda: points @ matrix.T)
