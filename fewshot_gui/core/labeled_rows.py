"""The files labeled so far, one row each, as columns: path, error, whether it was embedded, a
key from its path, and its points (what scoring needs of it under any support set); and the
model's scores of those rows, the fast way for each device and model."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from .methods.base import FewShotClassifier
from .point_store import PointStore

PREDICT_CHUNK = 512  # rows scored at once at least: their features stay in the processor's cache
CHUNK_VALUES = 1 << 18  # float32 values of points scored at once on the CPU (1 MiB)
AnchorScores = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one thread to keep and score a streamed batch: for so little work a thread
    pool's wake-ups and spinning would only take the cores from the engine and the decoders."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def path_order(path: Path) -> int:
    """A stable 64-bit hash of a path (any bytes, also not UTF-8), to order rows by content
    rather than by when they were labeled."""
    digest = hashlib.blake2b(os.fsencode(path), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class LabeledRows:
    """Rows in the order their files were first stored; a file stored again keeps its row.

    `points` keeps every row's points (with half-precision copies when `half`, see
    `PointStore`); `exact()` gives them in float32 on `device`.
    """

    def __init__(self, device: torch.device, *, half: bool) -> None:
        self.device = device
        self.points = PointStore(half=half)
        self.row_of: dict[Path, int] = {}
        self.paths: list[Path] = []
        self.errors: list[str] = []  # per row: why it could not be embedded, or ""
        self.ok = np.zeros(0, bool)  # per row: embedded (not failed); may run past the rows
        self.order = np.zeros(0, np.uint64)  # per row: `path_order` of its path, as `ok`
        self._on_device: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def reserve(self, paths: Sequence[Path]) -> None:
        """Make room for `paths` beside the rows there are (see `PointStore.reserve`)."""
        self.points.reserve(len(self.paths) + sum(p not in self.row_of for p in paths))

    def put(
        self,
        paths: Sequence[Path],
        errors: Sequence[str],
        embedded: list[int],
        points: torch.Tensor | None,
    ) -> list[int]:
        """Store a batch: each path with its error, and `points` (len(embedded), ...) of the
        paths at `embedded` (zeros for the others; None when none was embedded). Returns
        the rows of `paths`, in order."""
        rows = []
        for path, error in zip(paths, errors, strict=True):
            row = self.row_of.get(path)
            if row is None:
                row = self.row_of[path] = len(self.paths)
                self.paths.append(path)
                self.errors.append(error)
            else:
                self.errors[row] = error
            rows.append(row)
        every = None  # zeros for every row when none was embedded
        if points is not None:
            every = points.new_zeros((len(rows), *points.shape[1:]))
            every[embedded] = points
        self.points.put(rows, every)  # one write: a block fills (and is packed) once
        if len(self.ok) < len(self.paths):
            grow = len(self.ok) + len(rows)
            self.ok = np.concatenate([self.ok, np.zeros(grow, bool)])
            self.order = np.concatenate([self.order, np.zeros(grow, np.uint64)])
        self.ok[rows] = [not self.errors[row] for row in rows]
        self.order[rows] = [path_order(self.paths[row]) for row in rows]
        self._on_device = None
        return rows

    def exact(self) -> torch.Tensor:
        """Every row's float32 points on the device: a view on the CPU, else a cached copy."""
        points = self.points.exact()
        if self.device.type == "cpu":
            return points
        if self._on_device is None or len(self._on_device) != len(points):
            self._on_device = points.to(self.device)
        return self._on_device

    def clear(self) -> None:
        """Drop every row."""
        self.row_of.clear()
        self.paths.clear()
        self.points.clear()
        self.errors.clear()
        self.ok = np.zeros(0, bool)
        self.order = np.zeros(0, np.uint64)
        self._on_device = None

    def scores(
        self, model: FewShotClassifier, rows: Sequence[int], everything: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores (n, n_way) and novelty (n,) of `rows` (`everything`: all of them, in order)
        by the adapted `model`, in float32.

        Every row at once, for a model that scores through products with a few directions,
        is one pass over the points (`PointStore.times`). Otherwise rows go in chunks that
        keep each one's features in the processor's cache between the method's steps.
        """
        directions = model.scoring_directions()
        if everything and directions is not None and self.device.type == "cpu":
            return model.score_products(self.points.times(directions))
        points = self.exact()
        n = len(rows)
        index = None if everything else torch.tensor(list(rows), device=self.device)
        scores, far = [], []
        on_cpu = self.device.type == "cpu"
        # A chunk of about a megabyte of points: each step is too little work to share out,
        # and two threads syncing on hundreds of small steps took seconds on a busy machine.
        chunk = max(PREDICT_CHUNK, CHUNK_VALUES // max(1, points[:1].numel())) if on_cpu else n
        with one_thread() if on_cpu else contextlib.nullcontext():
            for start in range(0, n, max(chunk, 1)):
                stop = min(start + chunk, n)
                part = points[start:stop] if index is None else points[index[start:stop]]
                chunk_scores, chunk_far = model.score_points(part)
                scores.append(chunk_scores.float())
                far.append(chunk_far.float())
        return torch.cat(scores), torch.cat(far)

    def anchor_scores(
        self,
        model: FewShotClassifier,
        anchor_scores: AnchorScores,
        anchors: torch.Tensor,
        rows: Sequence[int],
        everything: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores and distances (n, pins) of `rows` against `anchors` (pins, ...), each as if
        it were a prototype (`anchor_scores`, the model's `ProtoNet.anchor_scores`), in
        float32: for a cosine model on the CPU, one pass through the half copies, as `scores`.
        """
        if everything and self.device.type == "cpu" and model.scores_by_products:
            found = model.anchor_products(self.points.times(anchors))  # type: ignore[attr-defined]
            near, distance = (part.float() for part in found)
        elif everything:  # one product with a few anchors: chunks would only add calls
            near, distance = (part.float() for part in anchor_scores(self.exact(), anchors))
        else:
            part = self.exact()[torch.tensor(list(rows), device=self.device)]
            near, distance = (found.float() for found in anchor_scores(part, anchors))
        return near, distance
