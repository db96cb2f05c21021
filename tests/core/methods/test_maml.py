"""MAML: meta-gradients checked against an independent unrolled computation."""

from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fewshot_gui.core.methods import MAML


@pytest.fixture(autouse=True)
def float64() -> Iterator[None]:
    """Exact gradient checks want double precision; restored for the other tests."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def tiny_task(seed: int = 0) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    support = torch.randn(6, 4, generator=generator)
    query = torch.randn(9, 4, generator=generator)
    return support, torch.tensor([0, 0, 1, 1, 2, 2]), query, torch.tensor([0, 1, 2] * 3)


def tiny_maml(**kwargs: object) -> MAML:
    torch.manual_seed(1)
    body = nn.Sequential(nn.Linear(4, 3), nn.Tanh())
    return MAML(nn.Identity(), body, **kwargs).double()


def meta_gradient(model: MAML, task: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
    support, support_labels, query, query_labels = task
    model.train()
    model.zero_grad()
    model.fit_support(support, support_labels)
    F.cross_entropy(model(query), query_labels).backward()
    return [p.grad.clone() for p in model.body.parameters()]


def unrolled_reference(
    weight: torch.Tensor,
    bias: torch.Tensor,
    task: tuple[torch.Tensor, ...],
    steps: int,
    lr: float | list[torch.Tensor],
    second_order: bool,
) -> torch.Tensor:
    """The outer loss written out by hand: Proto-MAML head, plain autograd, no functional_call.

    `lr` is one rate, or one per parameter (weight, bias, head weight, head bias) as Meta-SGD's."""
    support, support_labels, query, query_labels = task

    def body(w: torch.Tensor, b: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x @ w.T + b)

    embedded = body(weight, bias, support)
    prototypes = torch.stack([embedded[support_labels == c].mean(0) for c in range(3)])
    params = [weight, bias, 2 * prototypes, -(prototypes**2).sum(1)]
    for _ in range(steps):
        w, b, head_w, head_b = params
        loss = F.cross_entropy(body(w, b, support) @ head_w.T + head_b, support_labels)
        grads = torch.autograd.grad(loss, params, create_graph=second_order, retain_graph=True)
        rates = lr if isinstance(lr, list) else [lr] * len(params)
        params = [p - r * g for p, r, g in zip(params, rates, grads, strict=True)]
    w, b, head_w, head_b = params
    return F.cross_entropy(body(w, b, query) @ head_w.T + head_b, query_labels)


@pytest.mark.parametrize("first_order", [False, True])
def test_meta_gradient_matches_an_independent_unrolled_computation(first_order: bool) -> None:
    task = tiny_task()
    model = tiny_maml(inner_steps=2, inner_lr=0.3, first_order=first_order)
    ours = meta_gradient(model, task)

    weight = model.body[0].weight.detach().clone().requires_grad_()
    bias = model.body[0].bias.detach().clone().requires_grad_()
    loss = unrolled_reference(weight, bias, task, 2, 0.3, second_order=not first_order)
    reference = torch.autograd.grad(loss, [weight, bias])
    for mine, theirs in zip(ours, reference, strict=True):
        torch.testing.assert_close(mine, theirs, atol=1e-10, rtol=1e-8)


def test_second_order_gradient_matches_finite_differences() -> None:
    task = tiny_task(3)
    model = tiny_maml(inner_steps=2, inner_lr=0.3)
    analytic = meta_gradient(model, task)[0]
    weight = model.body[0].weight.detach()
    bias = model.body[0].bias.detach()
    eps = 1e-6
    numeric = torch.zeros_like(weight)
    for i in range(weight.shape[0]):
        for j in range(weight.shape[1]):
            shift = torch.zeros_like(weight)
            shift[i, j] = eps
            plus, minus = (
                unrolled_reference(
                    (weight + sign * shift).requires_grad_(),
                    bias.clone().requires_grad_(),
                    task,
                    2,
                    0.3,
                    second_order=True,
                )
                for sign in (1, -1)
            )
            numeric[i, j] = (plus - minus) / (2 * eps)
    torch.testing.assert_close(analytic, numeric, atol=1e-7, rtol=1e-5)


def test_first_order_drops_the_second_order_term() -> None:
    task = tiny_task()
    second = meta_gradient(tiny_maml(inner_steps=2, inner_lr=0.3), task)
    first = meta_gradient(tiny_maml(inner_steps=2, inner_lr=0.3, first_order=True), task)
    difference = max((a - b).abs().max().item() for a, b in zip(first, second, strict=True))
    assert difference > 1e-4


def test_inner_learning_rate_zero_leaves_predictions_unchanged() -> None:
    support, support_labels, query, _ = tiny_task()
    unadapted = tiny_maml(inner_steps=0, test_inner_steps=0).eval()
    frozen = tiny_maml(inner_steps=5, test_inner_steps=5, inner_lr=0.0).eval()
    unadapted.fit_support(support, support_labels)
    frozen.fit_support(support, support_labels)
    torch.testing.assert_close(frozen(query), unadapted(query))
    assert frozen.scoring_directions() is None and not frozen.scores_by_products


def test_adaptation_fits_the_support_set_and_leaves_the_module_untouched() -> None:
    support, support_labels, _, _ = tiny_task()
    model = tiny_maml(test_inner_steps=50, inner_lr=0.5).eval()
    before = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        model.fit_support(support, support_labels)
        adapted_loss = F.cross_entropy(model(support), support_labels)
    unadapted = tiny_maml(test_inner_steps=0).eval()
    unadapted.fit_support(support, support_labels)
    assert adapted_loss < F.cross_entropy(unadapted(support), support_labels)
    for old, new in zip(before, model.parameters(), strict=True):
        assert torch.equal(old, new)
    assert all(not p.requires_grad for p in model.fast_params.values())


def test_any_number_of_classes_works_with_one_initialisation() -> None:
    model = tiny_maml().eval()
    for way in (2, 5, 7):
        support = torch.randn(way * 2, 4)
        model.fit_support(support, torch.arange(way).repeat_interleave(2))
        assert model(torch.randn(3, 4)).shape == (3, way)
