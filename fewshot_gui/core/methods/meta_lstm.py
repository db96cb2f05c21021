"""The LSTM meta-learner (Ravi & Larochelle 2017): a coordinate-wise LSTM whose cell state is
the learner's weights, whose input gate is the learning rate and forget gate the decay."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .base import check_support_labels
from .maml import MAML, Params
from .protonet import class_means

# Andrychowicz et al. 2016's preprocessing constant, as Ravi & Larochelle use it.
PREPROCESS_P = 10.0


def preprocess(values: torch.Tensor, p: float = PREPROCESS_P) -> torch.Tensor:
    """Gradients or losses (...,) -> (..., 2) of comparable scale: (log|x| / p, sign x) where
    |x| >= e^-p, else (-1, e^p x) (Andrychowicz et al. 2016, section 3.2)."""
    floor = math.exp(-p)
    large = values.abs() >= floor
    magnitude = torch.where(large, values.abs().clamp_min(floor).log() / p, -1.0)
    direction = torch.where(large, values.sign(), values * math.exp(p))
    return torch.stack([magnitude, direction], dim=-1)


class LSTMState:
    """What the meta-learner carries from one update to the next, per coordinate (n,)."""

    def __init__(
        self, hidden: torch.Tensor, memory: torch.Tensor, i: torch.Tensor, f: torch.Tensor
    ):
        self.hidden, self.memory, self.input_gate, self.forget_gate = hidden, memory, i, f


class MetaLearnerCell(nn.Module):
    """The two-layer meta-learner shared by every coordinate of the learner.

    A plain LSTM (4 -> `hidden`) reads the preprocessed gradient and loss; the meta-learner
    cell then sets i_t = sigmoid(W_I [h_t, theta_{t-1}, i_{t-1}] + b_I),
    f_t = sigmoid(W_F [h_t, theta_{t-1}, f_{t-1}] + b_F) and
    theta_t = f_t * theta_{t-1} - i_t * grad_t (the paper's equations 2, 3, 4).
    """

    def __init__(self, hidden: int = 20, learning_rate: float = 0.01) -> None:
        super().__init__()
        if not 0 < learning_rate < 1:
            raise ConfigError(
                f"the LSTM meta-learner's initial learning rate (inner_lr) must lie strictly "
                f"between 0 and 1, got {learning_rate}"
            )
        self.lstm = nn.LSTMCell(4, hidden)
        self.input_gate = nn.Linear(hidden + 2, 1)
        self.forget_gate = nn.Linear(hidden + 2, 1)
        for gate in (self.input_gate, self.forget_gate):
            nn.init.uniform_(gate.weight, -0.01, 0.01)
        # The paper starts f near 1 (bias 4 to 6) and i small; i's bias here gives inner_lr.
        nn.init.constant_(self.forget_gate.bias, 5.0)
        nn.init.constant_(self.input_gate.bias, math.log(learning_rate / (1 - learning_rate)))

    def forward(
        self,
        grad: torch.Tensor,
        loss: torch.Tensor,
        weights: torch.Tensor,
        state: LSTMState | None,
    ) -> tuple[torch.Tensor, LSTMState]:
        """One update of weights (n,) from their gradient (n,) and the loss (scalar)."""
        inputs = torch.cat([preprocess(grad), preprocess(loss).expand(len(grad), 2)], dim=1)
        if state is None:
            zeros = weights.new_zeros(len(weights))
            hidden, memory = self.lstm(inputs)
            previous_i, previous_f = zeros, zeros
        else:
            hidden, memory = self.lstm(inputs, (state.hidden, state.memory))
            previous_i, previous_f = state.input_gate, state.forget_gate
        theta = weights.unsqueeze(1)
        i = torch.sigmoid(self.input_gate(torch.cat([hidden, theta, previous_i[:, None]], 1)))
        f = torch.sigmoid(self.forget_gate(torch.cat([hidden, theta, previous_f[:, None]], 1)))
        i, f = i.squeeze(1), f.squeeze(1)
        return f * weights - i * grad, LSTMState(hidden, memory, i, f)


class MetaLSTM(MAML):
    """A learner (MAML's body with the Proto-MAML head) trained by the LSTM meta-learner.

    The cell state starts at the learner's initial weights (the module's own parameters, so
    learned like MAML's; the head from the support prototypes, so any number of classes
    works) and each of `inner_steps` updates is one step of `MetaLearnerCell` over all the
    learner's coordinates at once. As in the paper, the gradients and losses fed to the
    meta-learner are inputs: no gradient flows back through them (their section 3.3).
    """

    def __init__(
        self,
        encoder: nn.Module,
        body: nn.Module,
        inner_steps: int = 5,
        inner_lr: float = 0.01,
        test_inner_steps: int = 10,
        hidden: int = 20,
        slow_prefixes: tuple[str, ...] = (),
    ) -> None:
        super().__init__(encoder, body, inner_steps, inner_lr, test_inner_steps)
        self.meta_learner = MetaLearnerCell(hidden, inner_lr)
        # Parameters of the body named with these prefixes are meta-trained but never updated
        # per task: the cell then runs over the remaining coordinates only.
        self.slow_prefixes = slow_prefixes

    def fit_support_features(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        n_way = check_support_labels(labels, features.shape[0])
        meta_learning = self.training and torch.is_grad_enabled()
        steps = self.inner_steps if self.training else self.test_inner_steps
        with torch.enable_grad():  # the learner's gradients are needed even without a caller's
            body = {
                name: param if meta_learning else param.detach()
                for name, param in self.body.named_parameters()
            }
            with torch.set_grad_enabled(meta_learning):
                prototypes = class_means(self._body(body, features), labels, n_way)
            start = {**body, "head.weight": 2 * prototypes, "head.bias": -prototypes.pow(2).sum(1)}
            slow = {k: v for k, v in start.items() if k.startswith(self.slow_prefixes)}
            names = [name for name in start if name not in slow]
            shapes = [start[name].shape for name in names]
            weights = torch.cat([start[name].reshape(-1) for name in names])
            state = None
            for _ in range(steps):
                current = weights.detach().requires_grad_()
                learner = {**slow, **_unflatten(current, names, shapes)}
                loss = F.cross_entropy(self._logits(learner, features), labels)
                (grad,) = torch.autograd.grad(loss, current)
                with torch.set_grad_enabled(meta_learning):
                    weights, state = self.meta_learner(grad, loss.detach(), weights, state)
        fast = {**slow, **_unflatten(weights, names, shapes)}
        self.fast_params = fast if meta_learning else {k: v.detach() for k, v in fast.items()}
        self._support = (features.detach(), labels)


def _unflatten(weights: torch.Tensor, names: list[str], shapes: list[torch.Size]) -> Params:
    sizes = [math.prod(shape) for shape in shapes]
    parts = torch.split(weights, sizes)
    return {name: part.view(shape) for name, part, shape in zip(names, parts, shapes, strict=True)}
