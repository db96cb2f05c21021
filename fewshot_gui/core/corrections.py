"""A person's corrections: read from a CSV, folded into a support set as the app does, and
what they say of the other images (each a prototype of its own label, a reach, the rows an
`unknown` one is the nearest labeled image of, and for a class whose boundary was a guess,
how far that class goes)."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol

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
    """How far corrections act beyond their own images.

    `reach` (`reach_boundary`): an `unknown` correction under the threshold moves the
    boundary in only for the rows among its `reach` nearest (`benchmarks/review_effort.py`
    measured 20 against 10 and 40; it also measures label propagation,
    `propagation.propagate_corrections`, which lost). `widen` (`widen_boundary`): a class
    correction beyond the threshold of a class whose threshold is a guess moves that
    class's whole boundary out. `claim` (`claim_clutter`): an `unknown` correction makes
    unknown the rows of a measured class it is the nearest labeled image of, among its
    `claim` nearest (0: none; `claim_candidates`), and the refinement leaves them out
    (`claimed_rows`).
    """

    reach: int = 20
    widen: bool = True
    claim: int = 1024


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


class Evidence(NamedTuple):
    """What the rows and the corrections say of the unknown boundary: `scores` (n, n_way)
    and novelty `far` (n,) of the rows by the prototypes alone; `distance` (n, pins) from
    each row to each correction; `pin_scores` (pins, n_way), `pin_far` (pins,) score the
    corrections themselves; `pin_labels` (pins,) as in `as_prototypes`; `usable` (n,) bool:
    the rows that were embedded; the novelty `threshold`."""

    scores: torch.Tensor
    far: torch.Tensor
    distance: torch.Tensor
    pin_scores: torch.Tensor
    pin_far: torch.Tensor
    pin_labels: torch.Tensor
    usable: torch.Tensor
    threshold: float


def reach_boundary(verdict: np.ndarray, evidence: Evidence, reach: int) -> np.ndarray:
    """`verdict` (n,) with the unknown boundary moved in near each `unknown` correction.

    An `unknown` correction of an image under the threshold makes unknown (1) the rows of
    the same nearest class among its `reach` nearest that are no nearer to the class. A row
    `verdict` already decides (not 0) keeps its verdict. A class correction moves no
    boundary here: the boundary of a class with a measured threshold stays (moving it near
    each correction turned right labels wrong on look-alike clutter,
    `benchmarks/review_effort.py`), one with a guessed threshold widens (`widen_boundary`).
    """
    scores, far, distance, pin_scores, pin_far, pin_labels, usable, threshold = evidence
    n = len(far)
    acting = (pin_labels < 0) & (pin_far <= threshold)  # only these pins cost anything
    if not bool(acting.any()):
        return verdict
    pin_near, pin_far = pin_scores.argmax(1)[acting], pin_far[acting]
    local = distance.T[acting].masked_fill(~usable, torch.inf)  # (pins, n): rows contiguous
    radius = local.topk(min(reach, n), dim=1, largest=False).values[:, -1:]
    close = (local <= radius) & usable & (pin_near[:, None] == scores.argmax(1))
    unknown = (close & (far >= pin_far[:, None])).any(0) & (far <= threshold)
    verdict = verdict.copy()
    verdict[unknown.cpu().numpy() & (verdict == 0)] = 1
    return verdict


def widen_boundary(verdict: np.ndarray, evidence: Evidence, guessed: torch.Tensor) -> np.ndarray:
    """`verdict` (n,) with the boundary of each `guessed` class moved out to its corrections.

    A class with fewer than two examples has a guessed boundary: calibration cannot measure
    how far its members lie. A correction to such a class of an image beyond the threshold,
    nearest that class, shows the class reaches at least that far: every row of the same
    nearest class beyond the threshold and no farther from the class becomes known (-1),
    wherever it lies (the members a single example leaves out are scattered, not near the
    correction). An `unknown` correction nearest the same class holds back the rows nearer
    to it than to the class correction and no nearer the class than it. A row `verdict`
    already decides keeps its verdict.

    `guessed` (n_way,) bool.
    """
    scores, far, distance, pin_scores, pin_far, pin_labels, usable, threshold = evidence
    near, pin_near = scores.argmax(1), pin_scores.argmax(1)
    of_class = pin_labels >= 0
    widening = of_class & (pin_near == pin_labels) & (pin_far > threshold)
    widening &= guessed[pin_labels.clamp_min(0)]
    if not bool(widening.any()):
        return verdict
    known = torch.zeros_like(usable)
    for c in torch.unique(pin_labels[widening]).tolist():
        pins = widening & (pin_labels == c)
        rows = torch.nonzero(
            usable & (near == c) & (far > threshold) & (far <= pin_far[pins].max())
        ).flatten()
        within = far[rows, None] <= pin_far[pins]  # (rows, pins): the pin reaches the row
        stops = ~of_class & (pin_near == c)
        if bool(stops.any()):  # (rows, pins, stops): a stop nearer to the row holds it back
            held = (far[rows, None] >= pin_far[stops])[:, None, :] & (
                distance[rows][:, stops][:, None, :] < distance[rows][:, pins][:, :, None]
            )
            within &= ~held.any(2)
        known[rows[within.any(1)]] = True
    verdict = verdict.copy()
    verdict[known.cpu().numpy() & (verdict == 0)] = -1
    return verdict


def claim_clutter(
    verdict: np.ndarray, evidence: Evidence, to_examples: torch.Tensor, guessed: torch.Tensor
) -> np.ndarray:
    """`verdict` (n,) with each `unknown` correction a labeled point of clutter: a row becomes
    unknown (1) when an `unknown` correction nearest the row's nearest class is nearer to it
    than every example and class correction, image to image.

    A class mean of a few examples lies nearer its look-alikes than any one photo does, so
    as a prototype (`as_prototypes`) an `unknown` correction wins only its near duplicates;
    against single images it wins the look-alike clutter around it (`look5` in
    `benchmarks/review_effort.py`: 19 more photos of leopards labeled `cougar_body`). Only
    for a class with a measured boundary: a class of one example has one image to compare
    with, and there this turned whole classes unknown (`shot1`, `hard1`). A row `verdict`
    already decides keeps its verdict.

    `to_examples` (n,): each row's distance to its nearest example; `guessed` (n_way,) bool.
    """
    scores, _, distance, pin_scores, _, pin_labels, usable, _ = evidence
    clutter = pin_labels < 0
    if not bool(clutter.any()):
        return verdict
    near = scores.argmax(1)
    labeled = to_examples
    if bool((~clutter).any()):
        labeled = torch.minimum(labeled, distance[:, ~clutter].min(1).values)
    same = near[:, None] == pin_scores[clutter].argmax(1)[None, :]  # (n, unknown pins)
    nearest = distance[:, clutter].masked_fill(~same, torch.inf).min(1).values
    claimed = (nearest < labeled) & usable & ~guessed[near]
    verdict = verdict.copy()
    verdict[claimed.cpu().numpy() & (verdict == 0)] = 1
    return verdict


class AnchorScorer(Protocol):
    """A model that scores points against its prototypes and against single anchors
    (`ProtoNet.score_points`, `ProtoNet.anchor_scores`)."""

    def score_points(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def anchor_scores(
        self, points: torch.Tensor, anchors: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


def claim_candidates(evidence: Evidence, reach: int) -> np.ndarray:
    """The rows (m,) an `unknown` correction may claim: usable, among its `reach` nearest (ties
    included, so the set does not depend on the rows' order). Only these need their distance
    to the examples (25 directions cost 105 ms of CPU over 100,000 rows)."""
    clutter = evidence.pin_labels < 0
    if not bool(clutter.any()):
        return np.zeros(0, np.int64)
    far = evidence.distance.T[clutter].masked_fill(~evidence.usable, torch.inf)  # rows contiguous
    take = min(reach, far.shape[1])
    if take < 1:
        return np.zeros(0, np.int64)
    kth = far.topk(take, dim=1, largest=False).values[:, -1:]
    near = (far <= kth).any(0) & evidence.usable
    return torch.nonzero(near).flatten().cpu().numpy()


def claimed_rows(
    model: AnchorScorer,
    points: torch.Tensor,
    pins: tuple[torch.Tensor, torch.Tensor],
    examples: torch.Tensor,
    guessed: torch.Tensor,
    threshold: float,
) -> torch.Tensor:
    """(n,) bool: the rows of `points` (n, ...) that only `claim_clutter` makes unknown (not
    the threshold, nor a correction as a prototype), by the `model` as it stands: for the
    refinement, so that claimed clutter pulls no class mean.

    `pins`: the corrections' points (pins, ...) and labels (pins,), negative for `unknown`;
    `examples` (e, ...) the points of every example; `guessed` (n_way,) bool.
    """
    pin_points, pin_labels = pins
    scores, far = model.score_points(points)
    pin_scores, pin_far = model.score_points(pin_points)
    near, distance = model.anchor_scores(points, pin_points)
    to_examples = model.anchor_scores(points, examples)[1].min(1).values
    verdict = as_prototypes(scores, far, near, distance, pin_labels)[2]
    usable = torch.from_numpy(verdict == 0).to(points.device) & (far <= threshold)
    evidence = Evidence(scores, far, distance, pin_scores, pin_far, pin_labels, usable, threshold)
    claimed = claim_clutter(verdict, evidence, to_examples, guessed)
    return torch.from_numpy(claimed > verdict).to(points.device)
