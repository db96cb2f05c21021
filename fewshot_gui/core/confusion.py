"""The examples' leave-one-out predictions, class by class: which classes the model mixes up."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .support import UNKNOWN


@dataclass(frozen=True)
class Confusion:
    """`counts[i, j]`: examples of class i that the model adapted to all the other examples
    predicts as class j; the last column counts those it would call `unknown`. `alone[i]`:
    examples of class i with no other example to be judged by."""

    class_names: tuple[str, ...]
    counts: np.ndarray  # (n_way, n_way + 1) int64
    alone: np.ndarray  # (n_way,) int64

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.class_names, UNKNOWN)

    def accuracy(self) -> np.ndarray:
        """Per class, the share of its judged examples predicted as itself (n_way,); NaN
        where none was judged."""
        judged = self.counts.sum(1)
        right = np.diag(self.counts[:, : len(self.class_names)])
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(judged > 0, right / np.maximum(judged, 1), np.nan)

    def mix_ups(self) -> list[tuple[str, str, int]]:
        """(class, predicted as, count) off the diagonal, most first, ties in table order."""
        found = [
            (self.class_names[i], self.columns[j], int(self.counts[i, j]))
            for i in range(len(self.class_names))
            for j in range(len(self.columns))
            if i != j and self.counts[i, j]
        ]
        return sorted(found, key=lambda item: -item[2])


def leave_one_out_confusion(
    labels: np.ndarray,
    predicted: np.ndarray,
    novelty: np.ndarray,
    threshold: float | None,
    class_names: tuple[str, ...] | list[str],
) -> Confusion:
    """The table of each example's class (n,) against its leave-one-out prediction (n,), -1
    where it was alone in its class; a `novelty` (n,) past `threshold` counts as unknown."""
    n_way = len(class_names)
    labels, predicted = np.asarray(labels, np.int64), np.asarray(predicted, np.int64)
    novelty = np.asarray(novelty, np.float64)
    judged = predicted >= 0
    column = predicted.copy()
    if threshold is not None:
        column[judged & (novelty > threshold)] = n_way
    counts = np.zeros((n_way, n_way + 1), np.int64)
    np.add.at(counts, (labels[judged], column[judged]), 1)
    alone = np.bincount(labels[~judged], minlength=n_way).astype(np.int64)
    return Confusion(tuple(class_names), counts, alone)
