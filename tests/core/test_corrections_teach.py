"""What a correction teaches beyond its own image: it joins its class mean (the threshold
stays calibrated on the examples), it widens the boundary of a class that had a single
example, exactly where `widen_boundary` says, and an `unknown` one claims the look-alike
clutter it is the nearest labeled image of (`claim_clutter`)."""

from pathlib import Path

import numpy as np
import torch

from fewshot_gui.core.checkpoint import load_model
from fewshot_gui.core.corrections import (
    Evidence,
    Spread,
    claim_candidates,
    claim_clutter,
    widen_boundary,
)
from fewshot_gui.core.jobs import drive
from fewshot_gui.core.labeling import UNKNOWN, Labeler, SupportSet
from fewshot_gui.core.methods.protonet import class_means
from tests.conftest import LabelingTask, make_labeling_task

# Rows by (nearest class, novelty); the threshold is 1 and one correction of class 0 lies at
# novelty 2, far from every row (distance 9) but row 6's (distance 1).
NEAREST = [0, 0, 0, 1, 0, 0, 0]
NOVELTY = [0.5, 1.5, 2.5, 1.5, 1.8, 1.9, 1.1]
USABLE = [True, True, True, True, True, False, True]


def widened(guessed: list[bool], stop: bool = False) -> list[int]:
    scores = torch.nn.functional.one_hot(torch.tensor(NEAREST), 2).float()
    far = torch.tensor(NOVELTY)
    distance = torch.full((7, 1), 9.0)
    pin_scores, pin_far, pin_labels = torch.tensor([[1.0, 0.0]]), torch.tensor([2.0]), [0]
    if stop:  # an `unknown` correction nearest class 0 at novelty 1.2, near rows 1 and 6
        distance = torch.cat([distance, torch.full((7, 1), 20.0)], 1)
        distance[[1, 6], 1] = 0.5
        pin_scores = torch.cat([pin_scores, torch.tensor([[0.9, 0.1]])])
        pin_far, pin_labels = torch.tensor([2.0, 1.2]), [0, -1]
    verdict = np.zeros(7, np.int8)
    verdict[4] = 1  # as `as_prototypes` decides for a row nearest an `unknown` correction
    evidence = Evidence(
        scores,
        far,
        distance,
        pin_scores,
        pin_far,
        torch.tensor(pin_labels),
        torch.tensor(USABLE),
        1.0,
    )
    return widen_boundary(verdict, evidence, torch.tensor(guessed)).tolist()


def test_widening_reaches_every_row_of_a_guessed_class_up_to_the_correction() -> None:
    # Row 1 and 6: beyond the threshold, no farther than the correction, far from it.
    # Row 0 is within the threshold, 2 beyond the correction, 3 of the other class,
    # 4 decided already, 5 not embedded.
    assert widened([True, False]) == [0, -1, 0, 0, 1, 0, -1]
    assert widened([False, True]) == [0, 0, 0, 0, 1, 0, 0]  # class 0's boundary was measured


def test_an_unknown_correction_holds_back_the_rows_nearer_to_it_and_no_nearer_the_class() -> None:
    # Row 1 (novelty 1.5 >= 1.2, nearer the stop than the class correction) is held back;
    # row 6 is as near the stop but nearer the class than it (1.1 < 1.2), so it widens.
    assert widened([True, False], stop=True) == [0, 0, 0, 0, 1, 0, -1]


def labeler_for(model: Path, support: dict[str, list[Path]], **options: object) -> Labeler:
    labeler = Labeler(load_model(model), **options)  # type: ignore[arg-type]
    drive(labeler.set_support(SupportSet.from_mapping(support)))
    return labeler


def test_a_class_correction_joins_its_class_mean_and_leaves_the_threshold(
    glyph_model: Path, labeling_task: LabelingTask
) -> None:
    paths = sorted(labeling_task.truth)
    name = sorted(labeling_task.support)[0]
    corrected = next(p for p in paths if labeling_task.truth[p] == name)
    plain = labeler_for(glyph_model, labeling_task.support, transductive=False)
    # As the app sends a correction: an example of its class, and a correction.
    support = {**labeling_task.support, name: [*labeling_task.support[name], corrected]}
    labeler = labeler_for(glyph_model, support, transductive=False)
    labeler.set_corrections({corrected: name})
    assert labeler.threshold == plain.threshold  # calibrated on the examples alone

    # Every example of every class, the correction among them, makes the means.
    every = [p for n in labeler.class_names for p in support[n]]
    drive(labeler.label(every))
    points = labeler._labeled.exact()
    labels = torch.tensor([labeler.class_names.index(n) for n in support for _ in support[n]])
    expected = class_means(points, labels, len(labeler.class_names))
    torch.testing.assert_close(labeler.model.prototypes, expected)


def test_a_correction_widens_a_one_example_class_wherever_its_members_lie(
    glyph_model: Path, labeling_task: LabelingTask
) -> None:
    paths = sorted(labeling_task.truth)
    one_each = {name: examples[:1] for name, examples in labeling_task.support.items()}
    probe = labeler_for(glyph_model, one_each)
    drive(probe.label(paths))
    threshold = float(np.quantile(probe.relabel().novelty, 0.4))  # most rows beyond it

    def relabeled(spread: Spread, corrections: dict[Path, str]) -> tuple[Labeler, np.ndarray]:
        labeler = labeler_for(glyph_model, one_each)
        labeler.spread = spread
        labeler.set_unknown(threshold)
        labeler.set_corrections(corrections)
        drive(labeler.label(paths))
        return labeler, labeler.relabel().label

    labeler, before = relabeled(Spread(reach=0), {})
    novelty = labeler.relabel().novelty
    # The farthest unknown row nearest a class: corrected to that class, it reaches the most.
    nearest = labeler.model.score_points(labeler._labeled.exact())[0].argmax(1).numpy()
    unknown = np.flatnonzero(before == -1)
    row = int(unknown[np.argmax(novelty[unknown])])
    name = labeler.class_names[nearest[row]]
    correction = {paths[row]: name}

    labeler, widened_labels = relabeled(Spread(reach=0), correction)
    _, kept = relabeled(Spread(reach=0, widen=False), correction)  # the same means
    scores, far = (t.numpy() for t in labeler.model.score_points(labeler._labeled.exact()))
    c = labeler.class_names.index(name)
    expected = (scores.argmax(1) == c) & (far > threshold) & (far <= far[row]) & (kept == -1)
    expected[row] = False
    changed = widened_labels != kept
    assert expected.any(), "some row of the class should lie between the threshold and it"
    assert changed.tolist() == expected.tolist()
    assert (widened_labels[changed] == c).all()

    # A class of two examples has a measured boundary: the correction widens nothing.
    two_each = {name: examples[:2] for name, examples in labeling_task.support.items()}
    measured = labeler_for(glyph_model, two_each)
    measured.spread = Spread(reach=0)
    measured.set_unknown(threshold)
    measured.set_corrections(correction)
    drive(measured.label(paths))
    widened_two = measured.relabel().label
    measured.spread = Spread(reach=0, widen=False)
    assert measured.relabel().label.tolist() == widened_two.tolist()


def claimed(guessed: list[bool], verdict: list[int] | None = None) -> list[int]:
    """Six rows; pins: an `unknown` correction nearest class 0 (column 0), one nearest class 1
    (column 1), and a class correction of class 0 (column 2)."""
    scores = torch.nn.functional.one_hot(torch.tensor([0, 0, 0, 1, 0, 0]), 2).float()
    distance = torch.tensor(
        [
            [0.1, 9.0, 9.0],  # nearer the clutter than its example (0.3): claimed
            [0.4, 9.0, 9.0],  # nearer its example (0.3): kept
            [0.2, 9.0, 0.1],  # nearer the class correction: kept
            [0.1, 9.0, 9.0],  # nearest class 1, the clutter is nearest class 0: kept
            [0.1, 9.0, 9.0],  # not embedded
            [0.2, 0.1, 9.0],  # the clutter nearest class 1 is not its class's: claimed by 0
        ]
    )
    to_examples = torch.tensor([0.3, 0.3, 0.3, 0.3, 0.3, 0.3])
    evidence = Evidence(
        scores,
        torch.zeros(6),
        distance,
        torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]),
        torch.zeros(3),
        torch.tensor([-1, -1, 0]),
        torch.tensor([True, True, True, True, False, True]),
        1.0,
    )
    start = np.array(verdict or [0] * 6, np.int8)
    return claim_clutter(start, evidence, to_examples, torch.tensor(guessed)).tolist()


def test_an_unknown_correction_claims_the_rows_it_is_the_nearest_labeled_image_of() -> None:
    assert claimed([False, False]) == [1, 0, 0, 0, 0, 1]
    assert claimed([True, False]) == [0, 0, 0, 0, 0, 0]  # class 0's boundary is a guess
    assert claimed([False, False], [-1, 0, 0, 0, 0, 0]) == [-1, 0, 0, 0, 0, 1]  # decided


def test_an_unknown_correction_may_claim_only_its_nearest_rows_ties_included() -> None:
    # Pins: `unknown` (column 0) and a class correction (column 1, never a reach).
    distance = torch.tensor([[0.3, 0.0], [0.1, 9.0], [0.2, 9.0], [0.2, 9.0], [0.0, 9.0]])
    usable = torch.tensor([True, True, True, True, False])
    evidence = Evidence(
        torch.zeros(5, 2),
        torch.zeros(5),
        distance,
        torch.zeros(2, 2),
        torch.zeros(2),
        torch.tensor([-1, 0]),
        usable,
        1.0,
    )
    assert claim_candidates(evidence, 2).tolist() == [1, 2, 3]  # 2 and 3 tie second
    assert claim_candidates(evidence, 1).tolist() == [1]  # row 4 is not usable
    assert claim_candidates(evidence, 0).tolist() == []
    assert claim_candidates(evidence, 99).tolist() == [0, 1, 2, 3]
    class_only = evidence._replace(pin_labels=torch.tensor([0, 1]))
    assert claim_candidates(class_only, 2).tolist() == []


def clutter_task(root: Path) -> tuple[dict[str, list[Path]], list[Path], dict[Path, str]]:
    """Four glyph classes to label and a fifth, left out of the examples, as clutter."""
    task = make_labeling_task(root, classes=5)
    left_out = sorted(task.support)[-1]
    support = {name: examples for name, examples in task.support.items() if name != left_out}
    truth = {p: UNKNOWN if name == left_out else name for p, name in task.truth.items()}
    return support, sorted(truth), truth


def claim_expected(
    points: torch.Tensor, pin: torch.Tensor, examples: torch.Tensor, prototypes: torch.Tensor
) -> torch.Tensor:
    """Independently, for a Euclidean ProtoNet and one `unknown` correction at `pin` (D,):
    the rows (n,) nearer it than every example whose nearest prototype is the pin's."""
    nearest = torch.cdist(points, prototypes).argmin(1)
    pin_nearest = torch.cdist(pin[None], prototypes).argmin(1)
    to_pin = (points - pin).pow(2).sum(1)
    return (to_pin < torch.cdist(points, examples).pow(2).min(1).values) & (nearest == pin_nearest)


def test_an_unknown_correction_pulls_its_look_alike_clutter_to_unknown(
    glyph_model: Path, tmp_path: Path
) -> None:
    support, paths, truth = clutter_task(tmp_path)

    def relabeled(spread: Spread, corrections: dict[Path, str], order: list[Path]) -> Labeler:
        labeler = labeler_for(glyph_model, support)
        labeler.spread = spread
        labeler.set_unknown(1e9)  # every row known: the clutter is labeled as some class
        labeler.set_corrections(corrections)
        drive(labeler.label(order))
        return labeler

    before = relabeled(Spread(reach=0), {}, paths).relabel()
    clutter = [i for i, p in enumerate(paths) if truth[p] == UNKNOWN]
    assert (before.label[clutter] >= 0).all()
    row = clutter[int(np.argmin(before.confidence[clutter]))]  # the reviewer's first
    correction = {paths[row]: UNKNOWN}
    labeler = relabeled(Spread(reach=0), correction, paths)
    after = labeler.relabel()

    # The refinement leaves out the sample's rows that only the claim makes unknown (the
    # correction as a prototype already takes its nearest), as the first refinement's means
    # say.
    model, points = labeler.model, labeler._labeled.exact()
    examples = model.points(labeler._support_features[0])
    sample = labeler._sample
    final = model.prototypes.clone()
    model.fit_support_features(*labeler._support_features)
    model.refine(sample, 1e9)
    to_means = torch.cdist(sample, model.prototypes).pow(2).min(1).values
    taken = (sample - points[row]).pow(2).sum(1) < to_means
    left_out = claim_expected(sample, points[row], examples, model.prototypes) & ~taken
    assert left_out.any()
    model.fit_support_features(*labeler._support_features)
    model.refine(sample[~left_out], 1e9)
    torch.testing.assert_close(model.prototypes, final)

    # Unknown: the correction, the rows nearer it than every class mean (it is a
    # prototype), and the rows nearer it than every example (claimed); the rest as nearest.
    to_means = torch.cdist(points, final).pow(2)
    as_prototype = (points - points[row]).pow(2).sum(1) < to_means.min(1).values
    claimed = claim_expected(points, points[row], examples, final)
    unknown = (as_prototype | claimed).numpy()
    unknown[row] = True
    expected = np.where(unknown, -1, to_means.argmin(1).numpy())
    assert after.label.tolist() == expected.tolist()
    labeler.spread = Spread(reach=0, claim=0)  # the correction as a prototype only
    gained = np.flatnonzero((after.label == -1) & (labeler.relabel().label != -1))
    assert len(gained), "the correction should pull more of its clutter to unknown"
    assert all(truth[paths[i]] == UNKNOWN for i in gained)  # look-alike clutter only

    # The same corrections give the same labels in any labeling order.
    again = relabeled(Spread(reach=0), correction, paths[::-1]).relabel()
    assert {p.path: p.label for p in again} == {p.path: p.label for p in after}


def test_an_unknown_correction_claims_nothing_of_a_one_example_class(
    glyph_model: Path, tmp_path: Path
) -> None:
    support, paths, truth = clutter_task(tmp_path)
    one_each = {name: examples[:1] for name, examples in support.items()}
    labeler = labeler_for(glyph_model, one_each)
    labeler.set_unknown(1e9)
    drive(labeler.label(paths))
    row = next(i for i, p in enumerate(paths) if truth[p] == UNKNOWN)
    labeler.set_corrections({paths[row]: UNKNOWN})
    claimed_labels = labeler.relabel().label
    labeler.spread = Spread(claim=0)
    assert claimed_labels.tolist() == labeler.relabel().label.tolist()
