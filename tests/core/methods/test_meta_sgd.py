"""Meta-SGD: learned per-weight inner rates, checked against MAML and an unrolled computation."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fewshot_gui.core.methods import MAML, MetaSGD
from tests.core.methods.test_maml import float64, tiny_task, unrolled_reference

__all__ = ["float64"]  # autouse: every test here runs in double precision


def tiny(cls: type[MAML] = MetaSGD, **kwargs: object) -> MAML:
    torch.manual_seed(1)
    body = nn.Sequential(nn.Linear(4, 3), nn.Tanh())
    extra = (3,) if cls is MetaSGD else ()
    return cls(nn.Identity(), body, *extra, **kwargs).double()  # type: ignore[arg-type]


def outer_loss(model: MAML, task: tuple[torch.Tensor, ...]) -> torch.Tensor:
    support, support_labels, query, query_labels = task
    model.train()
    model.zero_grad()
    model.fit_support(support, support_labels)
    return F.cross_entropy(model(query), query_labels)


def predictions(model: MAML, task: tuple[torch.Tensor, ...]) -> np.ndarray:
    support, support_labels, query, _ = task
    model.eval()
    model.fit_support(support, support_labels)
    return model(query).detach().numpy()


def test_a_zero_rate_tensor_leaves_predictions_unchanged() -> None:
    task = tiny_task()
    unadapted = predictions(tiny(inner_steps=0, test_inner_steps=0), task)
    model = tiny(inner_steps=3, test_inner_steps=3, inner_lr=0.5)
    with torch.no_grad():
        for rate in model.inner_lrs.values():
            rate.zero_()
    np.testing.assert_array_equal(predictions(model, task), unadapted)
    assert not np.allclose(predictions(tiny(test_inner_steps=3, inner_lr=0.5), task), unadapted)


def test_rates_filled_with_alpha_adapt_and_meta_learn_as_maml() -> None:
    task = tiny_task(1)
    settings = {"inner_steps": 2, "test_inner_steps": 3, "inner_lr": 0.3}
    meta_sgd, maml = tiny(**settings), tiny(MAML, **settings)
    np.testing.assert_allclose(predictions(meta_sgd, task), predictions(maml, task), rtol=1e-13)
    outer_loss(meta_sgd, task).backward()
    outer_loss(maml, task).backward()
    for mine, theirs in zip(meta_sgd.body.parameters(), maml.body.parameters(), strict=True):
        np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), rtol=1e-10)
    # Every rate moves MAML's one rate at once: their gradients sum to d(loss)/d(alpha).
    summed = sum(float(rate.grad.sum()) for rate in meta_sgd.inner_lrs.values())
    eps = 1e-6
    plus, minus = (
        float(outer_loss(tiny(MAML, **{**settings, "inner_lr": 0.3 + s}), task).detach())
        for s in (eps, -eps)
    )
    assert summed == pytest.approx((plus - minus) / (2 * eps), rel=1e-6)


def test_meta_gradients_of_weights_and_rates_match_an_unrolled_computation() -> None:
    task = tiny_task(2)
    model = tiny(inner_steps=2, inner_lr=0.2)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for rate in model.inner_lrs.values():
            rate.copy_(0.4 * torch.rand(rate.shape, generator=generator))
    outer_loss(model, task).backward()
    ours = [model.body[0].weight.grad, model.body[0].bias.grad] + [
        model.inner_lrs[key].grad for key in ("0-weight", "0-bias", "head-weight", "head-bias")
    ]

    leaves = [
        model.body[0].weight.detach().clone().requires_grad_(),
        model.body[0].bias.detach().clone().requires_grad_(),
    ] + [
        model.inner_lrs[key].detach().clone().requires_grad_()
        for key in ("0-weight", "0-bias", "head-weight", "head-bias")
    ]
    loss = unrolled_reference(leaves[0], leaves[1], task, 2, leaves[2:], second_order=True)
    reference = torch.autograd.grad(loss, leaves)
    for mine, theirs in zip(ours, reference, strict=True):
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-8, atol=1e-12)


def test_evaluation_keeps_no_graph_and_leaves_the_rates_untouched() -> None:
    model = tiny(test_inner_steps=2)
    before = {k: v.detach().clone() for k, v in model.inner_lrs.items()}
    support, support_labels, query, _ = tiny_task()
    model.eval()
    with torch.no_grad():
        model.fit_support(support, support_labels)
        scores = model(query)
    assert not scores.requires_grad
    assert all(not p.requires_grad for p in model.fast_params.values())
    assert all(torch.equal(before[k], v) for k, v in model.inner_lrs.items())
