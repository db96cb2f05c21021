"""The LSTM meta-learner: its preprocessing by hand, and one update against plain SGD."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fewshot_gui.core.errors import ConfigError
from fewshot_gui.core.methods import MetaLSTM
from fewshot_gui.core.methods.meta_lstm import preprocess

pytestmark = pytest.mark.usefixtures("float64")


def tiny_task(seed: int = 0) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    support = torch.randn(6, 1, 4, 4, generator=generator)
    query = torch.randn(9, 1, 4, 4, generator=generator)
    return support, torch.tensor([0, 0, 1, 1, 2, 2]), query, torch.tensor([0, 1, 2] * 3)


def tiny_learner(**kwargs: object) -> MetaLSTM:
    """A conv learner small enough to write out by hand: 3x3 conv with 2 filters, tanh."""
    torch.manual_seed(1)
    body = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Flatten())
    return MetaLSTM(nn.Identity(), body, **kwargs).double()


def set_gates(model: MetaLSTM, learning_rate: float) -> None:
    """Forget gate exactly 1 (sigmoid(40) rounds to 1 in float64), input gate at the rate."""
    with torch.no_grad():
        for gate in (model.meta_learner.input_gate, model.meta_learner.forget_gate):
            gate.weight.zero_()
        model.meta_learner.forget_gate.bias.fill_(40.0)
        model.meta_learner.input_gate.bias.fill_(math.log(learning_rate / (1 - learning_rate)))


def test_preprocessing_matches_the_formula_by_hand() -> None:
    values = torch.tensor([1.0, -math.exp(-5), 1e-5, -2e-5, 0.0, 3.0])
    expected = torch.tensor(
        [
            [0.0, 1.0],
            [-0.5, -1.0],
            [-1.0, math.exp(10) * 1e-5],
            [-1.0, -math.exp(10) * 2e-5],
            [-1.0, 0.0],
            [math.log(3.0) / 10, 1.0],
        ]
    )
    torch.testing.assert_close(preprocess(values), expected, atol=1e-12, rtol=0)


def test_forget_gate_one_and_input_gate_at_the_rate_is_one_sgd_step() -> None:
    support, labels, query, _ = tiny_task()
    lr = 0.3
    model = tiny_learner(inner_steps=1, test_inner_steps=1, inner_lr=lr).eval()
    set_gates(model, lr)
    with torch.no_grad():
        model.fit_support(support, labels)
        ours = model(query)

    # The same step written out: F.conv2d, prototype head, autograd, theta - lr * grad.
    conv = model.body[0]
    weight = conv.weight.detach().clone().requires_grad_()
    bias = conv.bias.detach().clone().requires_grad_()

    def body(w: torch.Tensor, b: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(F.conv2d(x, w, b)).flatten(1)

    embedded = body(weight, bias, support)
    prototypes = torch.stack([embedded[labels == c].mean(0) for c in range(3)]).detach()
    head_w = (2 * prototypes).requires_grad_()
    head_b = (-(prototypes**2).sum(1)).requires_grad_()
    params = [weight, bias, head_w, head_b]
    loss = F.cross_entropy(body(weight, bias, support) @ head_w.T + head_b, labels)
    grads = torch.autograd.grad(loss, params)
    w, b, hw, hb = (p - lr * g for p, g in zip(params, grads, strict=True))
    reference = body(w, b, query) @ hw.T + hb
    torch.testing.assert_close(ours, reference.detach(), atol=1e-12, rtol=1e-10)
    assert (ours - model._logits(model.fast_params, query)).abs().max() == 0
    unadapted = tiny_learner(test_inner_steps=0, inner_lr=lr).eval()
    unadapted.fit_support(support, labels)
    assert (unadapted(query) - ours).abs().max() > 1e-3  # the step did something


def test_slow_parameters_keep_their_values_and_fast_ones_move() -> None:
    support, labels, _, _ = tiny_task()
    model = tiny_learner(test_inner_steps=3, inner_lr=0.3, slow_prefixes=("0.",)).eval()
    model.fit_support(support, labels)
    assert torch.equal(model.fast_params["0.weight"], model.body[0].weight.detach())
    assert torch.equal(model.fast_params["0.bias"], model.body[0].bias.detach())
    embedded = torch.tanh(model.body[0](support)).flatten(1)
    prototypes = torch.stack([embedded[labels == c].mean(0) for c in range(3)])
    assert not torch.allclose(model.fast_params["head.weight"], 2 * prototypes)


def test_meta_training_reaches_the_meta_learner_and_the_initial_weights() -> None:
    support, labels, query, query_labels = tiny_task(2)
    model = tiny_learner(inner_steps=2, inner_lr=0.1).train()
    before = [p.detach().clone() for p in model.parameters()]
    model.fit_support(support, labels)
    F.cross_entropy(model(query), query_labels).backward()
    for part in (model.meta_learner.input_gate, model.meta_learner.forget_gate, model.body[0]):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())
    # The LSTM below the gates sees only detached inputs, but its output feeds the gates.
    assert model.meta_learner.lstm.weight_ih.grad.abs().sum() > 0
    for old, new in zip(before, model.parameters(), strict=True):
        assert torch.equal(old, new)  # adapting never writes the module's own weights


def test_the_initial_learning_rate_must_be_a_rate() -> None:
    for bad in (0.0, 1.0, 2.5):
        with pytest.raises(ConfigError, match="strictly"):
            tiny_learner(inner_lr=bad)
