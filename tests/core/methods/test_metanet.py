"""Meta Networks: fast weights and scores against a computation written out by hand."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fewshot_gui.core.methods import MetaNet

pytestmark = pytest.mark.usefixtures("float64")


def tiny_task(seed: int = 0) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    support = torch.randn(6, 4, generator=generator)
    query = torch.randn(9, 4, generator=generator)
    return support, torch.tensor([0, 0, 1, 1, 2, 2]), query, torch.tensor([0, 1, 2] * 3)


def tiny_metanet(seed: int = 1) -> MetaNet:
    """Slow layers moved off the identity and generators with real output, so nothing is 0."""
    torch.manual_seed(seed)
    model = MetaNet(nn.Identity(), dim=4).double()
    with torch.no_grad():
        for layer in (model.base, model.key):
            layer.weight.add_(0.3 * torch.randn(4, 4))
            layer.bias.copy_(0.1 * torch.randn(4))
        for generator in (model.base_generator, model.key_generator):
            generator.out.weight.copy_(torch.randn(1, 20))
            generator.out.bias.fill_(0.05)
    return model.eval()


def means(rows: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return torch.stack([rows[labels == c].mean(0) for c in range(int(labels.max()) + 1)])


def loss_gradient(
    layer: nn.Linear, rows: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """d/d(W, b) of the prototype cross-entropy of relu(W x + b), the centres held fixed."""
    weight = layer.weight.detach().clone().requires_grad_()
    bias = layer.bias.detach().clone().requires_grad_()
    with torch.no_grad():
        centres = means(F.relu(layer(rows)), labels)
    outputs = F.relu(rows @ weight.T + bias)
    distances = ((outputs[:, None, :] - centres[None]) ** 2).sum(2)
    loss = F.cross_entropy(-distances, labels)
    return torch.autograd.grad(loss, [weight, bias])


def by_hand(model: MetaNet, task: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
    """Every step of MetaNet with a loop per example and autograd, no vmap and no batching."""
    support, labels, query, _ = task
    for_key = loss_gradient(model.key, support, labels)
    task_weight, task_bias = (model.key_generator(g) for g in for_key)
    # Each example's loss uses the centres of the whole support: written out per example.
    with torch.no_grad():
        centres = means(F.relu(model.base(support)), labels)
    per_example = []
    for i in range(len(support)):
        weight = model.base.weight.detach().clone().requires_grad_()
        bias = model.base.bias.detach().clone().requires_grad_()
        output = F.relu(weight @ support[i] + bias)
        loss = -torch.log_softmax(-((output - centres) ** 2).sum(1), 0)[labels[i]]
        per_example.append(torch.autograd.grad(loss, [weight, bias]))
    memory = torch.stack([model.base_generator(w) for w, _ in per_example])
    biases = torch.stack([model.base_generator(b) for _, b in per_example])

    def key(x: torch.Tensor) -> torch.Tensor:
        slow = F.relu(model.key.weight @ x + model.key.bias)
        fast = F.relu(task_weight @ x + task_bias)
        return (slow + fast) / (slow + fast).norm()

    keys = torch.stack([key(x) for x in support])

    def mapped(x: torch.Tensor) -> torch.Tensor:
        reads = torch.softmax(model.log_scale.exp() * (keys @ key(x)), 0)
        fast_weight = sum(a * w for a, w in zip(reads, memory, strict=True))
        fast_bias = sum(a * b for a, b in zip(reads, biases, strict=True))
        return F.relu(model.base.weight @ x + model.base.bias) + F.relu(fast_weight @ x + fast_bias)

    prototypes = means(torch.stack([mapped(x) for x in support]), labels)
    scores = torch.stack([-((mapped(x) - prototypes) ** 2).sum(1) for x in query])
    return {"task_weight": task_weight, "memory": memory, "biases": biases, "scores": scores}


def test_fast_weights_and_scores_match_a_computation_by_hand() -> None:
    task = tiny_task()
    model = tiny_metanet()
    with torch.no_grad():
        model.fit_support(task[0], task[1])
        scores = model(task[2])
    expected = {k: v.detach() for k, v in by_hand(model, task).items()}
    fast = model.fast_weights
    torch.testing.assert_close(fast.task_weight, expected["task_weight"], atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(fast.example_weights, expected["memory"], atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(fast.example_biases, expected["biases"], atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(scores, expected["scores"], atol=1e-10, rtol=1e-10)
    assert fast.example_weights.abs().min() > 0  # every example wrote a real fast layer
    assert not torch.allclose(fast.example_weights[0], fast.example_weights[1])


def test_with_the_generators_zeroed_it_is_the_slow_network() -> None:
    support, labels, query, _ = tiny_task(4)
    model = tiny_metanet(2)
    with torch.no_grad():
        for generator in (model.base_generator, model.key_generator):
            generator.out.weight.zero_()
            generator.out.bias.zero_()
        model.fit_support(support, labels)
        scores, novelty = model.score_features(query)
        slow_support = F.relu(support @ model.base.weight.T + model.base.bias)
        slow_query = F.relu(query @ model.base.weight.T + model.base.bias)
        distances = ((slow_query[:, None] - means(slow_support, labels)[None]) ** 2).sum(2)
    torch.testing.assert_close(scores, -distances, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(novelty, distances.min(1).values, atol=1e-12, rtol=1e-10)


def test_a_fresh_metanet_on_relu_features_starts_near_prototypes() -> None:
    support, labels, query, _ = tiny_task(5)
    support, query = support.relu(), query.relu()  # as a Conv-4's features are
    torch.manual_seed(0)
    model = MetaNet(nn.Identity(), dim=4).double().eval()
    with torch.no_grad():
        model.fit_support(support, labels)
        distances = ((query[:, None] - means(support, labels)[None]) ** 2).sum(2)
        torch.testing.assert_close(model(query), -distances, atol=1e-3, rtol=0)


def test_meta_training_reaches_every_part() -> None:
    support, labels, query, query_labels = tiny_task(6)
    model = tiny_metanet().train()
    model.fit_support(support, labels)
    F.cross_entropy(model(query), query_labels).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
