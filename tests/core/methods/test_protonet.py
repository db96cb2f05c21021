"""ProtoNet scores are minus squared distances to class means, computed by hand here."""

import pytest
import torch
from torch import nn

from fewshot_gui.core.errors import ConfigError
from fewshot_gui.core.methods import FewShotClassifier, ProtoNet
from fewshot_gui.core.methods.protonet import class_means


def test_scores_are_minus_squared_distances_to_class_means() -> None:
    support = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [0.0, 6.0]])
    labels = torch.tensor([0, 0, 1, 1])
    queries = torch.tensor([[1.0, 1.0], [0.0, 5.0], [3.0, -1.0]])
    model = ProtoNet(nn.Identity())
    model.fit_support(support, labels)
    # Class means are (1, 0) and (0, 5).
    expected = -torch.tensor(
        [
            [(1 - 1) ** 2 + (1 - 0) ** 2, (1 - 0) ** 2 + (1 - 5) ** 2],
            [(0 - 1) ** 2 + (5 - 0) ** 2, 0.0],
            [(3 - 1) ** 2 + (-1 - 0) ** 2, (3 - 0) ** 2 + (-1 - 5) ** 2],
        ]
    )
    torch.testing.assert_close(model(queries), expected)
    assert model(queries).argmax(1).tolist() == [0, 1, 0]


def test_distances_hold_for_random_features_against_the_direct_formula() -> None:
    torch.manual_seed(0)
    support, queries = torch.randn(15, 8), torch.randn(7, 8)
    labels = torch.arange(3).repeat_interleave(5)
    model = ProtoNet(nn.Identity())
    model.fit_support(support, labels)
    prototypes = torch.stack([support[labels == c].mean(0) for c in range(3)])
    direct = -((queries[:, None, :] - prototypes[None]) ** 2).sum(-1)
    torch.testing.assert_close(model(queries), direct, atol=1e-5, rtol=1e-5)


def test_cosine_metric_is_scaled_cosine_similarity() -> None:
    support = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    model = ProtoNet(nn.Identity(), metric="cosine")
    model.fit_support(support, torch.tensor([0, 1]))
    scores = model(torch.tensor([[2.0, 2.0]]))
    scale = model.log_scale.exp()
    torch.testing.assert_close(scores, scale * torch.tensor([[0.5**0.5, 0.5**0.5]]))


def test_support_labels_must_cover_every_class() -> None:
    model = ProtoNet(nn.Identity())
    with pytest.raises(ConfigError, match="no example for"):
        model.fit_support(torch.randn(3, 2), torch.tensor([0, 2, 2]))


def test_scoring_before_fitting_says_what_to_do() -> None:
    with pytest.raises(ConfigError, match="fit_support"):
        ProtoNet(nn.Identity())(torch.randn(2, 2))


def test_refine_moves_prototypes_to_their_unlabeled_clusters() -> None:
    model = ProtoNet(nn.Identity())
    model.fit_support(torch.tensor([[0.0, 0.0], [10.0, 0.0]]), torch.tensor([0, 1]))
    unlabeled = torch.tensor([[2.0, 0.0]] * 4 + [[12.0, 0.0]] * 4)
    model.refine(unlabeled)
    # Each cluster belongs to its class with weight ~1: (support + 4 * cluster) / 5.
    torch.testing.assert_close(model.prototypes, torch.tensor([[1.6, 0.0], [11.6, 0.0]]))
    once = model.prototypes.clone()
    model.refine(unlabeled)
    torch.testing.assert_close(model.prototypes, once)  # starts from the support each time


def test_refine_lets_the_clutter_cluster_keep_far_images_away() -> None:
    model = ProtoNet(nn.Identity())
    model.fit_support(torch.tensor([[0.0, 0.0], [10.0, 0.0]]), torch.tensor([0, 1]))
    far = torch.tensor([[0.0, 50.0]] * 4)
    model.refine(far, clutter_novelty=25.0)
    torch.testing.assert_close(model.prototypes, torch.tensor([[0.0, 0.0], [10.0, 0.0]]))
    model.refine(far)  # without it, the far images drag the nearest class away
    assert model.prototypes[0, 1] > 10


def test_cosine_scores_come_from_products_with_the_directions() -> None:
    torch.manual_seed(0)
    model = ProtoNet(nn.Identity(), metric="cosine")
    model.fit_support(torch.rand(6, 16), torch.tensor([0, 0, 1, 1, 2, 2]))
    points = model.points(torch.rand(50, 16))
    directions = model.scoring_directions()
    assert directions is not None and model.scores_by_products
    for ours, theirs in zip(
        model.score_products(points @ directions.T), model.score_points(points), strict=True
    ):
        torch.testing.assert_close(ours, theirs)
    euclidean = ProtoNet(nn.Identity())
    euclidean.fit_support(torch.rand(2, 16), torch.tensor([0, 1]))
    assert euclidean.scoring_directions() is None  # its scores need the points' lengths too
    assert not euclidean.scores_by_products


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_leave_one_out_at_once_equals_refitting_without_each_example(metric: str) -> None:
    torch.manual_seed(1)
    model = ProtoNet(nn.Identity(), metric=metric)
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3, 3, 3])  # class 2 has a single example
    features = torch.rand(len(labels), 8) + labels[:, None] * 0.1
    fast = model.leave_one_out(features, labels)
    slow = FewShotClassifier.leave_one_out(model, features, labels)  # one refit per example
    assert torch.equal(fast[0], slow[0]) and fast[0][5] == -1
    scored = fast[0] >= 0
    assert (fast[0][scored] != labels[scored]).any()  # mistakes too, not only easy wins
    torch.testing.assert_close(fast[1], slow[1], equal_nan=True)
    torch.testing.assert_close(model.prototypes, class_means(model.points(features), labels, 4))
