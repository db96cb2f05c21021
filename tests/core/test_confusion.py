"""The examples' leave-one-out confusion, on features whose answers are known by construction."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fewshot_gui.core.calibration import calibrate
from fewshot_gui.core.confusion import leave_one_out_confusion
from fewshot_gui.core.methods.protonet import ProtoNet


def test_table_counts_each_judged_example_once_and_unknown_past_the_threshold() -> None:
    labels = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 1, 0, 1, 1, -1])  # the last example is alone in its class
    novelty = np.array([0.1, 0.2, 0.9, 0.1, 0.2, 0.0])

    confusion = leave_one_out_confusion(labels, predicted, novelty, 0.5, ["a", "b", "c"])

    assert confusion.columns == ("a", "b", "c", "unknown")
    assert confusion.counts.tolist() == [[1, 1, 0, 1], [0, 2, 0, 0], [0, 0, 0, 0]]
    assert confusion.alone.tolist() == [0, 0, 1]
    np.testing.assert_allclose(confusion.accuracy(), [1 / 3, 1.0, np.nan])
    assert confusion.mix_ups() == [("a", "b", 1), ("a", "unknown", 1)]
    # Without a threshold nothing is unknown: the far example counts as its prediction.
    assert leave_one_out_confusion(labels, predicted, novelty, None, "abc").counts[0, 0] == 2


def test_calibration_reports_the_confusion_of_a_real_protonet() -> None:
    # Classes a and b apart; c's two examples: one beside a's, one on its own far away.
    a = torch.tensor([[10.0, 0, 0], [10.2, 0.1, 0], [9.9, -0.1, 0]])
    b = torch.tensor([[0.0, 10, 0], [0.1, 10.1, 0], [-0.1, 9.8, 0]])
    c = torch.tensor([[10.1, 0.0, 0.2], [0.0, 0.0, 30.0]])
    features = torch.cat([a, b, c])
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2])
    model = ProtoNet(nn.Identity())

    calibration = calibrate(model, features, labels, ["a", "b", "c"])

    confusion = calibration.confusion
    assert confusion is not None
    # a and b recognised; c's first example taken for a (its class's other example is far
    # away), its second nearest its own class's first example but far past the threshold.
    assert calibration.threshold is not None and calibration.threshold < 900
    assert confusion.counts.tolist() == [[3, 0, 0, 0], [0, 3, 0, 0], [1, 0, 0, 1]]
    assert confusion.alone.tolist() == [0, 0, 0]
    report = {r.name: r for r in calibration.reports}
    assert report["c"].confused_with == "a"
