"""What a correction teaches beyond its own image: it joins its class mean (the threshold
stays calibrated on the examples), and it widens the boundary of a class that had a single
example, exactly where `widen_boundary` says."""

from pathlib import Path

import numpy as np
import torch

from fewshot_gui.core.checkpoint import load_model
from fewshot_gui.core.corrections import Evidence, Spread, widen_boundary
from fewshot_gui.core.jobs import drive
from fewshot_gui.core.labeling import Labeler, SupportSet
from fewshot_gui.core.methods.protonet import class_means
from tests.conftest import LabelingTask

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
