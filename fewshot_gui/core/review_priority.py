"""The "check next" order: which labeled images a person's confirmation would teach the most.

An image is worth a look when the model is torn on it (a small margin between its two most
likely classes, or a novelty near the unknown threshold) and when nothing like it is known
yet (it lies far, in the model's scoring space, from every example and correction). The
first few are picked greedily, each far from those picked before it, so that they are not
near-copies of one another.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from .labeled_rows import path_order
from .predictions import ERROR_INDEX, Labels

if TYPE_CHECKING:
    from .labeling import Labeler

POOL = 1024  # the most torn rows whose points are read; the rest follow by how torn they are
PICKS = 128  # rows picked greedily from the pool: more than a person reviews in one sitting
TIES_OVER = 4  # how far past the pool rows tied at its edge may take it
CONFIRMED_CHUNK = 4096  # confirmed points compared at once: bounds the (pool, chunk) products


def boundary(labels: Labels, threshold: float | None) -> np.ndarray:
    """(n,) in [0, 1]: how near each row is to a boundary, 1 on it.

    The larger of one minus the margin between the two most likely classes, and, with a
    `threshold`, how near the novelty is to it: exp(-gap / median gap), so that a row as
    near the threshold as the middle row weighs 0.37.
    """
    second = np.where(labels.runner_up >= 0, labels.runner_up_confidence, 0.0)
    near = 1.0 - np.clip(labels.confidence - second, 0.0, 1.0)
    readable = labels.label != ERROR_INDEX
    if threshold is not None and readable.any():
        gap = np.abs(labels.novelty - np.float32(threshold))
        scale = float(np.median(gap[readable])) or 1.0
        near = np.maximum(near, np.exp(-gap / scale))
    return near.astype(np.float32)


def nearest_distance(points: np.ndarray, confirmed: np.ndarray) -> np.ndarray:
    """(n,) cosine distance of each of `points` (n, D) to the nearest of `confirmed` (m, D);
    1 (unrelated) where nothing is confirmed. Rows must be unit vectors."""
    nearest = np.ones(len(points), np.float32)
    for start in range(0, len(confirmed), CONFIRMED_CHUNK):
        block = confirmed[start : start + CONFIRMED_CHUNK]
        nearest = np.minimum(nearest, 1.0 - (points @ block.T).max(1))
    return np.clip(nearest, 0.0, 2.0)


def review_ranks(
    labels: Labels,
    points_of: Callable[[np.ndarray], np.ndarray],
    confirmed: np.ndarray,
    threshold: float | None,
    pool: int = POOL,
    picks: int = PICKS,
) -> np.ndarray:
    """(n,) int64: each row's place in the "check next" order, 0 first.

    `points_of(rows)` gives the points (len(rows), D) the model scores rows by; `confirmed`
    (m, D) the points of every example and correction. Among the `pool` rows nearest a
    boundary (`boundary`), the worth of a row is how near a boundary it is times its cosine
    distance to the nearest confirmed or already picked image; `picks` of them are taken
    one by one, the worthiest first, then the rest of the pool by worth, then every other
    row by nearness to a boundary, unreadable rows, and pinned rows last. Ties go by path
    hash in the pool (as `Labeler` orders its sample) and by row beyond it.
    """
    n = len(labels)
    near = boundary(labels, threshold)
    pinned = np.zeros(n, bool) if labels.pinned is None else np.asarray(labels.pinned, bool)
    unreadable = labels.label == ERROR_INDEX
    open_rows = np.flatnonzero(~pinned & ~unreadable)
    # Descending nearness, ties by row: one stable sort of the negated key.
    by_near = open_rows[np.argsort(-near[open_rows], kind="stable")]
    # Rows tied with the last one in stay in (up to TIES_OVER times the pool), so that which
    # rows make the pool does not hang on the order they were labeled in.
    cut = min(pool, len(by_near))
    if cut and pool:
        cut = max(cut, int(np.searchsorted(-near[by_near], -near[by_near[cut - 1]], "right")))
        cut = min(cut, TIES_OVER * pool)
    candidates, by_near = by_near[:cut], by_near[cut:]
    hashes = np.array([path_order(labels.paths[int(r)]) for r in candidates], np.uint64)
    candidates = candidates[np.lexsort((hashes, -near[candidates]))]
    head = _greedy(candidates, near[candidates], points_of, confirmed, picks)
    order = np.concatenate(
        [
            head,
            by_near,
            np.flatnonzero(unreadable & ~pinned),
            np.flatnonzero(pinned),
        ]
    )
    ranks = np.empty(n, np.int64)
    ranks[order] = np.arange(n)
    return ranks


def _greedy(
    rows: np.ndarray,
    near: np.ndarray,
    points_of: Callable[[np.ndarray], np.ndarray],
    confirmed: np.ndarray,
    picks: int,
) -> np.ndarray:
    """`rows` (k,) reordered: `picks` taken greedily by worth, the rest by worth after them."""
    if not len(rows):
        return rows
    points = _unit(points_of(rows))
    far = nearest_distance(points, _unit(confirmed)) if len(confirmed) else np.ones(len(rows))
    worth = near * far
    taken = np.zeros(len(rows), bool)
    head = []
    for _ in range(min(picks, len(rows))):
        best = int(np.argmax(np.where(taken, -np.inf, worth)))  # first of ties: path hash
        head.append(best)
        taken[best] = True
        far = np.minimum(far, np.clip(1.0 - points @ points[best], 0.0, 2.0))
        worth = near * far
    rest = np.flatnonzero(~taken)
    rest = rest[np.argsort(-worth[rest], kind="stable")]
    return rows[np.concatenate([np.array(head, np.int64), rest])]


def _unit(points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, np.float32).reshape(len(points), -1)
    norms = np.linalg.norm(points, axis=1, keepdims=True)
    return points / np.maximum(norms, np.float32(1e-12))


def labeler_ranks(labeler: Labeler, labels: Labels) -> np.ndarray:
    """`review_ranks` of `labels` from `labeler.relabel()`: its stored points, and every
    example and pinned row as confirmed."""
    pinned = np.zeros(0, np.int64) if labels.pinned is None else np.flatnonzero(labels.pinned)
    parts = [labeler.example_points(), *([labeler.stored_points(pinned)] if len(pinned) else [])]
    parts = [p for p in parts if len(p)]
    confirmed = np.concatenate(parts) if parts else np.zeros((0, 1), np.float32)
    return review_ranks(labels, labeler.stored_points, confirmed, labeler.threshold)
