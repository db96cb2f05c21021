"""What labeling tells: one file's verdict, many files' as columns, and a run's events."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .manifest import ManifestRow
from .support import UNKNOWN

if TYPE_CHECKING:
    from .calibration import ClassReport
    from .confusion import Confusion


@dataclass(frozen=True)
class Prediction:
    """The verdict on one file. `label` is a class name, `unknown`, or '' with an `error`."""

    path: Path
    label: str
    confidence: float
    runner_up: str
    runner_up_confidence: float
    novelty: float
    error: str = ""
    nearest: str = ""  # the closest class, also when `label` is unknown
    pinned: bool = False  # the label is a person's correction, not the model's guess

    def manifest_row(self) -> ManifestRow:
        ok = not self.error
        return ManifestRow(
            path=str(self.path),
            label=self.label,
            confidence=self.confidence if ok else None,
            runner_up=self.runner_up,
            runner_up_confidence=self.runner_up_confidence if ok and self.runner_up else None,
            error=self.error,
        )


UNKNOWN_INDEX = -1
ERROR_INDEX = -2


@dataclass(frozen=True)
class Labels:
    """Predictions for many files as columns, cheap to make for 100,000 files at once.

    `label[i]` is a class index, UNKNOWN_INDEX or ERROR_INDEX; `nearest[i]` the closest
    class's index even when `label[i]` is unknown; `runner_up[i]` a class index or
    ERROR_INDEX where there is none; `pinned[i]` says the label is a correction (confidence
    1, no runner-up). Iterating or indexing gives `Prediction` objects.
    """

    paths: list[Path]
    class_names: tuple[str, ...]
    label: np.ndarray
    nearest: np.ndarray
    confidence: np.ndarray
    runner_up: np.ndarray
    runner_up_confidence: np.ndarray
    novelty: np.ndarray
    errors: list[str]
    pinned: np.ndarray | None = None  # bool per row; None: nothing pinned
    review_rank: np.ndarray | None = None  # per row: its place in "check next"; None: unranked

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Prediction:
        if self.errors[i]:
            return Prediction(self.paths[i], "", 0.0, "", 0.0, 0.0, self.errors[i])
        second = int(self.runner_up[i])
        return Prediction(
            path=self.paths[i],
            label=self.name(int(self.label[i])),
            confidence=float(self.confidence[i]),
            runner_up=self.name(second) if second >= 0 else "",
            runner_up_confidence=float(self.runner_up_confidence[i]) if second >= 0 else 0.0,
            novelty=float(self.novelty[i]),
            nearest=self.class_names[int(self.nearest[i])],
            pinned=self.pinned is not None and bool(self.pinned[i]),
        )

    def __iter__(self) -> Iterator[Prediction]:
        return (self[i] for i in range(len(self)))

    def counts(self) -> tuple[int, int, int]:
        """How many are labeled with a class, `unknown`, and unreadable."""
        label = self.label
        return (
            int((label >= 0).sum()),
            int((label == UNKNOWN_INDEX).sum()),
            int((label == ERROR_INDEX).sum()),
        )

    def name(self, index: int) -> str:
        if index == UNKNOWN_INDEX:
            return UNKNOWN
        return "" if index == ERROR_INDEX else self.class_names[index]


@dataclass(frozen=True)
class SupportReport:
    classes: tuple[ClassReport, ...]
    threshold: float | None  # the automatic unknown threshold, None where it cannot be set
    errors: tuple[tuple[Path, str], ...]  # examples that could not be read
    mismatch: str = ""  # says so when the examples do not suit the model's input
    confusion: Confusion | None = None  # the examples' leave-one-out predictions


@dataclass(frozen=True)
class LabelProgress:
    done: int
    total: int
    images_per_second: float
    seconds_left: float
    new: Labels  # this batch's files, inductive (the final labels come from relabel)


@dataclass(frozen=True)
class LabelSummary:
    total: int
    labeled: int
    unknown: int
    errors: int
    seconds: float
    cancelled: bool
