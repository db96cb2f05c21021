"""The support set a person gives, and what it says about itself: accuracy and `unknown`."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import ConfigError, DataError
from .images import iter_image_files
from .methods import FewShotClassifier

UNKNOWN = "unknown"


@dataclass(frozen=True)
class SupportClass:
    name: str
    examples: tuple[Path, ...]


@dataclass(frozen=True)
class SupportSet:
    """Named classes, each with a few example images."""

    classes: tuple[SupportClass, ...]

    def __post_init__(self) -> None:
        names = [c.name for c in self.classes]
        if not names:
            raise ConfigError("the support set needs at least one class with examples")
        duplicates = sorted(n for n, count in Counter(names).items() if count > 1)
        if duplicates:
            raise ConfigError(f"class names must be unique; repeated: {', '.join(duplicates)}")
        for name in names:
            if not name.strip():
                raise ConfigError("class names must not be empty")
            if name == UNKNOWN:
                raise ConfigError(f"{UNKNOWN!r} is reserved for images far from every class")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.classes)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Sequence[Path]]) -> SupportSet:
        return cls(
            tuple(SupportClass(name, tuple(map(Path, paths))) for name, paths in mapping.items())
        )

    @classmethod
    def from_folder(cls, root: Path) -> SupportSet:
        """One class per subfolder of `root`, named after it, with every image inside."""
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"support folder {root} does not exist")
        classes = []
        for folder in sorted(
            p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
        ):
            examples = tuple(iter_image_files(folder))
            if examples:
                classes.append(SupportClass(folder.name, examples))
        if not classes:
            raise DataError(
                f"{root} has no class subfolders with images; lay it out as {root}/CLASS/*.jpg"
            )
        return cls(tuple(classes))


@dataclass(frozen=True)
class ClassReport:
    """How well one class's examples are recognised when each is left out in turn."""

    name: str
    examples: int
    loo_accuracy: float | None  # None with fewer than two examples
    confused_with: str
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class Calibration:
    reports: tuple[ClassReport, ...]
    threshold: float | None


def calibrate(
    model: FewShotClassifier, features: torch.Tensor, labels: torch.Tensor, names: Sequence[str]
) -> Calibration:
    """Leave-one-out accuracy per class and the automatic `unknown` threshold.

    Each example is held out and classified by the rest (its class needs a second example).
    The held-out examples' novelty shows how far a member of a known class lies; leaving a
    whole class out shows how far an image of a class the support set lacks lies. The
    threshold separates the two. Leaves `model` adapted to the whole support set.
    """
    counts = torch.bincount(labels, minlength=len(names))
    inside: list[float] = []
    correct: Counter[int] = Counter()
    wrong: dict[int, Counter[int]] = {c: Counter() for c in range(len(names))}
    for i in range(len(labels)):
        label = int(labels[i])
        if counts[label] < 2:
            continue
        keep = torch.arange(len(labels)) != i
        model.fit_support_features(features[keep], labels[keep])
        with torch.no_grad():
            predicted = int(model.forward_features(features[i : i + 1]).argmax(1))
            inside.append(float(model.novelty(features[i : i + 1])))
        if predicted == label:
            correct[label] += 1
        else:
            wrong[label][predicted] += 1

    outside: list[float] = []
    if len(names) > 1:
        for held in range(len(names)):
            keep = labels != held
            kept = labels[keep]
            remap = torch.cumsum(torch.bincount(kept, minlength=len(names)) > 0, 0) - 1
            model.fit_support_features(features[keep], remap[kept])
            with torch.no_grad():
                outside.extend(model.novelty(features[labels == held]).tolist())
    model.fit_support_features(features, labels)

    reports = []
    for c, name in enumerate(names):
        n = int(counts[c])
        accuracy = correct[c] / n if n >= 2 else None
        confused = names[wrong[c].most_common(1)[0][0]] if wrong[c] else ""
        warnings = []
        if n < 2:
            warnings.append("only one example: add a few more for a reliable class")
        if accuracy is not None and accuracy < 0.8:
            warnings.append(f"examples are often mistaken for {confused!r}: add clearer ones")
        reports.append(ClassReport(name, n, accuracy, confused, tuple(warnings)))
    return Calibration(tuple(reports), choose_threshold(inside, outside))


def choose_threshold(inside: Sequence[float], outside: Sequence[float]) -> float | None:
    """A novelty threshold between known-class values (`inside`) and unseen-class ones.

    Separable values get the geometric mean of the closest pair across the gap; overlapping
    ones the split with the best balanced accuracy. With one side missing the threshold is a
    fixed factor off the other, and with neither there is none.
    """
    if not inside and not outside:
        return None
    if not outside:
        return float(np.quantile(inside, 0.95) * 1.5)
    if not inside:
        return float(np.min(outside) * 0.75)
    inside_sorted, outside_sorted = np.sort(inside), np.sort(outside)
    if inside_sorted[-1] < outside_sorted[0]:
        return float(np.sqrt(max(inside_sorted[-1], 0.0) * outside_sorted[0]))
    candidates = np.unique(np.concatenate([inside_sorted, outside_sorted]))
    best, best_score = float(candidates[0]), -1.0
    for low, high in itertools.pairwise(candidates):
        cut = (low + high) / 2
        score = (np.mean(inside_sorted <= cut) + np.mean(outside_sorted > cut)) / 2
        if score > best_score:
            best, best_score = float(cut), float(score)
    return best
