"""Matching Networks: attention and full-context embeddings against computations by hand."""

import numpy as np
import pytest
import torch
from torch import nn

from fewshot_gui.core.calibration import calibrate
from fewshot_gui.core.errors import ConfigError
from fewshot_gui.core.methods import MatchingNetwork
from tests.core.methods.test_maml import float64

__all__ = ["float64"]  # autouse: every test here runs in double precision


def tiny_task(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    support = torch.randn(7, 4, generator=generator)
    query = torch.randn(5, 4, generator=generator)
    return support, torch.tensor([0, 2, 1, 1, 0, 2, 2]), query


def matching(fce_steps: int = 0) -> MatchingNetwork:
    torch.manual_seed(3)
    return MatchingNetwork(nn.Identity(), 4, fce_steps=fce_steps).double().eval()


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def attention_by_hand(
    queries: np.ndarray, support: np.ndarray, labels: np.ndarray, scale: float
) -> np.ndarray:
    """P(y = k | x) = sum over examples i of class k of softmax_i(scale * cos(x, x_i))."""
    probabilities = np.zeros((len(queries), labels.max() + 1))
    for q, query in enumerate(queries):
        weights = np.array([np.exp(scale * cosine(query, example)) for example in support])
        for i, label in enumerate(labels):
            probabilities[q, label] += weights[i] / weights.sum()
    return probabilities


def test_class_probabilities_are_the_attention_over_support_examples() -> None:
    support, labels, query = tiny_task()
    model = matching()
    with torch.no_grad():
        model.log_scale.fill_(np.log(3.0))
        model.fit_support(support, labels)
        probabilities = torch.softmax(model(query), dim=1)
        attention = model.attention(query)
    expected = attention_by_hand(query.numpy(), support.numpy(), labels.numpy(), 3.0)
    np.testing.assert_allclose(probabilities.numpy(), expected, rtol=1e-12)
    by_class = np.stack([attention[:, labels == k].sum(1).numpy() for k in range(3)], axis=1)
    np.testing.assert_allclose(by_class, expected, rtol=1e-12)


def test_scores_stay_finite_when_attention_is_sharp() -> None:
    support, labels, query = tiny_task()
    model = matching()
    with torch.no_grad():
        model.log_scale.fill_(np.log(5000.0))
        model.fit_support(support, labels)
        scores = model(query)
    assert torch.isfinite(scores).all()
    nearest = labels[(query @ torch.nn.functional.normalize(support, dim=1).T).argmax(1)]
    assert torch.equal(scores.argmax(1), nearest)


def lstm_cell(x: np.ndarray, h: np.ndarray, c: np.ndarray, cell: dict[str, np.ndarray]) -> tuple:
    """One LSTM step written out: gates input, forget, cell, output (PyTorch's order)."""
    z = cell["w_ih"] @ x + cell["b_ih"] + cell["w_hh"] @ h + cell["b_hh"]
    i, f, g, o = np.split(z, 4)
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    return sigmoid(o) * np.tanh(c), c


def weights(module: nn.Module, suffix: str = "") -> dict[str, np.ndarray]:
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    keys = ("w_ih", "w_hh", "b_ih", "b_hh")
    pairs = zip(keys, names, strict=True)
    return {key: getattr(module, name + suffix).detach().numpy() for key, name in pairs}


def full_context_by_hand(
    model: MatchingNetwork, support: np.ndarray, queries: np.ndarray, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """g(x_i, S) = h_forward_i + h_backward_i + x_i; f(x, S) after `steps` attention reads."""
    dim = support.shape[1]
    forward_cell = weights(model.support_lstm, "_l0")
    backward_cell = weights(model.support_lstm, "_l0_reverse")
    forward, backward = np.zeros_like(support), np.zeros_like(support)
    h, c = np.zeros(dim), np.zeros(dim)
    for i in range(len(support)):
        h, c = lstm_cell(support[i], h, c, forward_cell)
        forward[i] = h
    h, c = np.zeros(dim), np.zeros(dim)
    for i in reversed(range(len(support))):
        h, c = lstm_cell(support[i], h, c, backward_cell)
        backward[i] = h
    context = forward + backward + support
    query_cell = weights(model.query_lstm)
    embedded = np.zeros_like(queries)
    for q, query in enumerate(queries):
        h, read, c = np.zeros(dim), np.zeros(dim), np.zeros(dim)
        for _ in range(steps):
            hidden, c = lstm_cell(query, h + read, c, query_cell)
            h = hidden + query
            attention = np.exp(context @ h) / np.exp(context @ h).sum()
            read = attention @ context
        embedded[q] = h
    return context, embedded


def test_full_context_embeddings_match_the_lstms_written_out() -> None:
    support, labels, query = tiny_task(1)
    model = matching(fce_steps=3)
    with torch.no_grad():
        model.fit_support(support, labels)
        probabilities = torch.softmax(model(query), dim=1).numpy()
    context, embedded = full_context_by_hand(model, support.numpy(), query.numpy(), steps=3)
    expected = attention_by_hand(embedded, context, labels.numpy(), 10.0)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-10)


def test_full_context_embeddings_depend_on_the_support_set_and_learn() -> None:
    support, labels, query = tiny_task(2)
    model = matching(fce_steps=2).train()
    model.fit_support(support, labels)
    loss = torch.nn.functional.cross_entropy(model(query), torch.tensor([0, 1, 2, 0, 1]))
    loss.backward()
    for module in (model.support_lstm, model.query_lstm):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
    before = model(query).detach()
    model.fit_support(support[[1, 0, 2, 3, 4, 5, 6]], labels[[1, 0, 2, 3, 4, 5, 6]])
    assert not torch.allclose(model(query).detach(), before)  # the context is ordered


def test_a_correction_scores_as_a_class_of_that_one_example() -> None:
    support, labels, query = tiny_task(3)
    for fce_steps in (0, 2):
        model = matching(fce_steps)
        with torch.no_grad():
            model.fit_support(support, labels)
            points, anchors = model.points(query), model.points(support[:2])
            near, distance = model.anchor_scores(points, anchors)
            expected = model.log_scale.exp() * nn.functional.cosine_similarity(
                model._queries(points)[:, None], model._queries(anchors)[None], dim=2
            )
        np.testing.assert_allclose(near.numpy(), expected.numpy(), rtol=1e-12)
        scale = float(model.log_scale.detach().exp())
        np.testing.assert_allclose(distance.numpy(), 1 - expected.numpy() / scale, atol=1e-12)


def test_novelty_is_the_cosine_distance_to_the_nearest_example_and_calibrates() -> None:
    generator = torch.Generator().manual_seed(4)
    centres = torch.randn(3, 8, generator=generator) * 3
    support = centres.repeat_interleave(3, 0) + 0.3 * torch.randn(9, 8, generator=generator)
    labels = torch.arange(3).repeat_interleave(3)
    basis, _ = torch.linalg.qr(centres.T)
    outside = torch.randn(4, 8, generator=generator)
    outside -= outside @ basis @ basis.T  # at right angles to every class centre
    model = MatchingNetwork(nn.Identity(), 8).double().eval()
    with torch.no_grad():
        model.fit_support(support, labels)
        novelty = model.novelty(support)
        far = model.novelty(outside)
    np.testing.assert_allclose(novelty.numpy(), np.zeros(9), atol=1e-7)
    assert (far > 0.7).all()
    report = calibrate(model, support, labels, ["a", "b", "c"])
    assert [r.loo_accuracy for r in report.reports] == [1.0, 1.0, 1.0]
    assert report.threshold is not None and 0 < report.threshold < float(far.min())


def test_scoring_before_fitting_and_bad_settings_say_what_to_do() -> None:
    with pytest.raises(ConfigError, match="fit_support"):
        matching()(torch.randn(2, 4))
    with pytest.raises(ConfigError, match="fce_steps"):
        MatchingNetwork(nn.Identity(), 4, fce_steps=-1)
