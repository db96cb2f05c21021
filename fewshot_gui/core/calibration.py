"""What a support set says about itself: leave-one-out accuracy and the `unknown` threshold."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .confusion import Confusion, leave_one_out_confusion
from .methods import FewShotClassifier


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
    confusion: Confusion | None = None  # the leave-one-out predictions, class by class


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
    predictions, novelties = model.leave_one_out(features, labels)
    for label, predicted, novelty in zip(
        labels.tolist(), predictions.tolist(), novelties.tolist(), strict=True
    ):
        if predicted < 0:  # alone in its class
            continue
        inside.append(novelty)
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
    threshold = choose_threshold(inside, outside)
    confusion = leave_one_out_confusion(
        labels.cpu().numpy(), predictions.cpu().numpy(), novelties.cpu().numpy(), threshold, names
    )
    return Calibration(tuple(reports), threshold, confusion)


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
