"""A person's corrections: read from a CSV, folded into a support set as the app does, and
what they say of the other images (each a prototype of its own label, and a reach)."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import ConfigError
from .support import UNKNOWN, SupportClass, SupportSet


def read_corrections(path: Path) -> dict[Path, str]:
    """`path,label` rows (with that header) -> {image: class name or `unknown`}."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read the corrections {path}: {error}") from error
    reader = csv.DictReader(text.splitlines())
    if not {"path", "label"} <= set(reader.fieldnames or ()):
        raise ConfigError(f"{path} needs a header line `path,label`")
    corrections: dict[Path, str] = {}
    for line, row in enumerate(reader, start=2):
        image, label = (row.get("path") or "").strip(), (row.get("label") or "").strip()
        if not image or not label:
            raise ConfigError(f"{path}, line {line}: a correction needs a path and a label")
        corrections[Path(image)] = label
    return corrections


def apply_corrections(support: SupportSet, corrections: Mapping[Path, str]) -> SupportSet:
    """The support set the app sends with `corrections`: each image corrected to a class is
    an example of that class (and of no other); one corrected to `unknown` of none."""
    names = set(support.names)
    wrong = sorted({c for c in corrections.values() if c not in names and c != UNKNOWN})
    if wrong:
        raise ConfigError(
            f"corrections name classes the examples do not have: {', '.join(wrong)}; "
            f"use one of {', '.join(sorted(names | {UNKNOWN}))}"
        )
    classes = []
    for support_class in support.classes:
        kept = [p for p in support_class.examples if p not in corrections]
        added = [p for p, label in corrections.items() if label == support_class.name]
        classes.append(SupportClass(support_class.name, tuple(kept + added)))
    return SupportSet(tuple(classes))


@dataclass(frozen=True)
class Spread:
    """How far corrections act beyond their own images (see `reach_boundary`).

    `reach`: a correction that moves the unknown boundary moves it only for the rows among
    its `reach` nearest (`benchmarks/review_effort.py` measured 20 against 10 and 40; it
    also measures label propagation, `propagation.propagate_corrections`, which lost).
    """

    reach: int = 20


def as_prototypes(
    scores: torch.Tensor,
    far: torch.Tensor,
    near: torch.Tensor,
    distance: torch.Tensor,
    pin_labels: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Scores (n, n_way) and novelty (n,) with every correction a prototype of its own label,
    and per row a verdict on `unknown` (n,): 1 unknown, -1 known, 0 as the threshold says.

    `near` and `distance` (n, pins) score each row against each correction as the model
    scores a row against a prototype; `pin_labels` (pins,) are class indices, negative for
    `unknown`. A class correction raises its class's score, and lowers the novelty, of the
    rows nearer to it than to their class means; an `unknown` one makes unknown (1) the rows
    nearer to it than to any class.
    """
    n = len(scores)
    verdict = np.zeros(n, np.int8)
    of_class = pin_labels >= 0
    if bool(of_class.any()):
        best = torch.full_like(scores, -torch.inf).scatter_reduce(
            1, pin_labels[of_class].expand(n, -1), near[:, of_class], "amax"
        )
        scores = torch.maximum(scores, best)
        far = torch.minimum(far, distance[:, of_class].min(1).values)
    if not bool(of_class.all()):
        unknown = near[:, ~of_class].max(1).values
        verdict[(unknown > scores.max(1).values).cpu().numpy()] = 1
    return scores, far, verdict


def reach_boundary(
    verdict: np.ndarray,
    scores: torch.Tensor,
    far: torch.Tensor,
    distance: torch.Tensor,
    pin_scores: torch.Tensor,
    pin_far: torch.Tensor,
    pin_labels: torch.Tensor,
    usable: torch.Tensor,
    threshold: float,
    reach: int,
) -> np.ndarray:
    """`verdict` (n,) with the unknown boundary moved near each correction that crosses it.

    A class correction of an image the threshold made unknown makes known (-1) the rows of
    the same nearest class among its `reach` nearest that are no farther from the class; an
    `unknown` correction of an image under the threshold makes unknown (1) such rows that are
    no nearer. Where both say something of a row, neither acts and the threshold decides;
    a row `verdict` already decides (not 0) keeps its verdict.

    `scores` (n, n_way) and novelty `far` (n,) are the prototypes' alone; `distance` (n,
    pins) from each row to each correction; `pin_scores` (pins, n_way), `pin_far` (pins,)
    score the corrections themselves; `pin_labels` (pins,) as in `as_prototypes`; `usable`
    (n,) bool: the rows that were embedded.
    """
    n = len(far)
    pin_near = pin_scores.argmax(1)
    stretch = (pin_labels >= 0) & (pin_near == pin_labels) & (pin_far > threshold)
    stop = (pin_labels < 0) & (pin_far <= threshold)
    acting = stretch | stop  # only these pins move the boundary: the rest cost nothing
    if not bool(acting.any()):
        return verdict
    stretch, pin_near, pin_far = stretch[acting], pin_near[acting], pin_far[acting]
    local = distance.T[acting].masked_fill(~usable, torch.inf)  # (pins, n): rows contiguous
    radius = local.topk(min(reach, n), dim=1, largest=False).values[:, -1:]
    close = (local <= radius) & usable & (pin_near[:, None] == scores.argmax(1))
    known = (close & (stretch[:, None] & (far <= pin_far[:, None]))).any(0)
    unknown = (close & (~stretch[:, None] & (far >= pin_far[:, None]))).any(0)
    known, unknown = known & (far > threshold), unknown & (far <= threshold)
    known, unknown = (known & ~unknown).cpu().numpy(), (unknown & ~known).cpu().numpy()
    verdict = verdict.copy()
    verdict[known & (verdict == 0)] = -1
    verdict[unknown & (verdict == 0)] = 1
    return verdict
