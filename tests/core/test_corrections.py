"""Corrections beyond their own images: the graph and propagation exactly, and the labeler's
reach (an `unknown` correction moves the boundary only near itself) and widening, the same
in any labeling order."""

from pathlib import Path

import numpy as np
import torch

from fewshot_gui.core.checkpoint import load_model
from fewshot_gui.core.corrections import Spread
from fewshot_gui.core.jobs import drive
from fewshot_gui.core.labeling import UNKNOWN, Labeler, SupportSet
from fewshot_gui.core.propagation import near_rows, neighbour_graph, propagate
from tests.conftest import LabelingTask

# Five points on a line: two pairs and one far point; with one neighbour each, the graph
# links 0-1, 2-3 and 4-3 (4's nearest), so 3 has two links and every other node one.
LINE = torch.tensor([0.0, 1.0, 5.0, 6.0, 20.0])
LINKS = [(0, 1), (2, 3), (3, 4)]


def line_distances() -> torch.Tensor:
    return (LINE[:, None] - LINE[None, :]).abs()


def test_the_graph_is_the_symmetric_normalised_knn_affinity() -> None:
    w = np.zeros((5, 5))
    for i, j in LINKS:
        w[i, j] = w[j, i] = 1.0
    d = w.sum(1)
    expected = w / np.sqrt(d[:, None] * d[None, :])
    np.testing.assert_allclose(neighbour_graph(line_distances(), 1).numpy(), expected, atol=1e-7)


def test_propagation_reaches_zhous_closed_form_and_only_connected_nodes() -> None:
    graph = neighbour_graph(line_distances(), 1).double()
    seeds = torch.zeros(5, 2, dtype=torch.float64)
    seeds[0, 0], seeds[2, 1] = 1.0, -0.5
    spread = propagate(graph, seeds, alpha=0.5, steps=200)
    closed = np.linalg.solve(np.eye(5) - 0.5 * graph.numpy(), seeds.numpy())
    np.testing.assert_allclose(spread.numpy(), closed, atol=1e-12)
    # A seed reaches its own component only: 0's evidence stays on 0-1, 2's on 2-3-4.
    assert spread[2:, 0].abs().max() == 0 and spread[:2, 1].abs().max() == 0
    assert spread[4, 1] < 0 and spread[1, 0] > 0
    assert torch.equal(propagate(graph, seeds, alpha=0.5, steps=0), torch.zeros_like(seeds))


def test_near_rows_keep_ties_so_the_row_order_does_not_matter() -> None:
    distances = torch.tensor([[3.0, 0.0], [1.0, 2.0], [1.0, 9.0], [0.0, 9.0], [7.0, 1.0]])
    usable = torch.tensor([True, True, True, True, False])
    near = near_rows(distances, usable, per_seed=2)
    # Seed 0: rows 3, then 1 and 2 tied at 1; seed 1: rows 0 and 1 (4 is not usable).
    assert near.tolist() == [True, True, True, True, False]
    order = torch.tensor([4, 2, 0, 3, 1])
    assert near_rows(distances[order], usable[order], per_seed=2).tolist() == near[order].tolist()


def relabeled(
    model: Path, support: SupportSet, batches: list[list[Path]], threshold: float, spread: Spread
) -> Labeler:
    labeler = Labeler(load_model(model))
    labeler.spread = spread
    drive(labeler.set_support(support))
    labeler.set_unknown(threshold)
    for batch in batches:
        drive(labeler.label(batch))
    return labeler


def test_a_correction_moves_a_guessed_boundary_the_same_way_in_any_order(
    glyph_model: Path, labeling_task: LabelingTask
) -> None:
    one_each = {name: examples[:1] for name, examples in labeling_task.support.items()}
    support = SupportSet.from_mapping(one_each)  # one example: each boundary is a guess
    paths = sorted(labeling_task.truth)
    spread = Spread(reach=4)
    probe = relabeled(glyph_model, support, [paths], 0.0, spread)
    novelty = probe.relabel().novelty
    # A threshold that leaves about half the images unknown, so the boundary has room to move.
    threshold = float(np.quantile(novelty, 0.5))
    labeler = relabeled(glyph_model, support, [paths], threshold, spread)
    before = labeler.relabel()
    unknown = np.flatnonzero(before.label == -1)
    far_one = unknown[np.argmax(before.novelty[unknown])]  # the farthest: reaches the most
    corrected = paths[far_one]
    nearest = before.class_names[before.nearest[far_one]]
    labeler.set_corrections({corrected: nearest})
    after = labeler.relabel()

    # The same corrections give the same labels, whatever order the folder was labeled in.
    reordered = relabeled(glyph_model, support, [paths[::-1][:5], paths[::-1]], threshold, spread)
    reordered.set_corrections({corrected: nearest})
    again = {p.path: p.label for p in reordered.relabel()}
    assert again == {p.path: p.label for p in after}

    labeler.spread = None  # pinned only: the boundary stays where the threshold puts it
    pinned = labeler.relabel()
    widened = np.flatnonzero(pinned.label != after.label)
    assert len(widened), "the correction should make some unknown row of its class known"
    assert (pinned.label[widened] == -1).all()
    assert {after.name(int(label)) for label in after.label[widened]} == {nearest}


def test_an_unknown_correction_makes_unknown_only_nearby_rows_no_nearer_to_the_class(
    glyph_model: Path, labeling_task: LabelingTask
) -> None:
    support = SupportSet.from_mapping(labeling_task.support)
    paths = sorted(labeling_task.truth)
    labeler = relabeled(glyph_model, support, [paths], 1e9, Spread(reach=4, claim=0))
    before = labeler.relabel()
    assert not (before.label == -1).any()
    closest = int(np.argmin(before.novelty))  # the row nearest its class: all others are farther
    labeler.set_corrections({paths[closest]: UNKNOWN})
    after = labeler.relabel()
    turned = np.flatnonzero(after.label != before.label)
    assert closest in turned and (after.label[turned] == -1).all()
    points = labeler._labeled.exact()
    distance = (points - points[closest]).pow(2).sum(1).numpy()
    near = set(np.argsort(distance, kind="stable")[:4].tolist())
    same_class = before.nearest == before.nearest[closest]
    assert set(turned.tolist()) <= near & set(np.flatnonzero(same_class).tolist())
    assert len(turned) > 1, "a nearby row of the same class should follow the correction"
