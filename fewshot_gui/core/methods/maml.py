"""MAML (Finn et al. 2017) in the functional style, with a Proto-MAML head for any way."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..config import MAX_INNER_LR, MAX_INNER_STEPS
from ..errors import ConfigError
from .base import FewShotClassifier, check_support_labels
from .protonet import class_means, squared_euclidean

Params = dict[str, torch.Tensor]


class MAML(FewShotClassifier):
    """Inner gradient steps on the support loss; the outer step learns the initialisation.

    The adapted network is `body` followed by a linear head whose initial weights come from
    the support prototypes (w_k = 2 c_k, b_k = -|c_k|^2; Triantafillou et al. 2020), so one
    learned initialisation serves any number of classes. Inner steps build new parameter
    dicts and never touch the module's own parameters. While meta-training (training mode
    with gradients on), second-order MAML keeps the graph of the inner steps; `first_order`
    drops their second derivatives. Evaluation adapts detached copies and keeps no graph.
    """

    def __init__(
        self,
        encoder: nn.Module,
        body: nn.Module,
        inner_steps: int = 5,
        inner_lr: float = 0.4,
        test_inner_steps: int = 10,
        first_order: bool = False,
    ) -> None:
        super().__init__(encoder)
        steps_ok = all(0 <= steps <= MAX_INNER_STEPS for steps in (inner_steps, test_inner_steps))
        # `not <=` also refuses NaN, which compares false with everything.
        if not steps_ok or not 0 <= inner_lr <= MAX_INNER_LR:
            raise ConfigError(
                f"MAML needs inner_steps and test_inner_steps of 0 to {MAX_INNER_STEPS} and "
                f"an inner_lr of 0 to {MAX_INNER_LR:g}"
            )
        self.body = body
        self.inner_steps = inner_steps
        self.inner_lr = inner_lr
        self.test_inner_steps = test_inner_steps
        self.first_order = first_order
        self.fast_params: Params | None = None
        self._support: tuple[torch.Tensor, torch.Tensor] | None = None

    def fit_support_features(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        n_way = check_support_labels(labels, features.shape[0])
        meta_learning = self.training and torch.is_grad_enabled()
        steps = self.inner_steps if self.training else self.test_inner_steps
        second_order = meta_learning and not self.first_order
        with torch.enable_grad():  # adaptation needs gradients even when the caller has none
            body = {
                name: param if meta_learning else param.detach().requires_grad_()
                for name, param in self.body.named_parameters()
            }
            prototypes = class_means(self._body(body, features), labels, n_way)
            fast = {**body, "head.weight": 2 * prototypes, "head.bias": -prototypes.pow(2).sum(1)}
            for _ in range(steps):
                loss = F.cross_entropy(self._logits(fast, features), labels)
                fast = self._inner_step(fast, loss, second_order, keep_graph=meta_learning)
        self.fast_params = fast if meta_learning else {k: v.detach() for k, v in fast.items()}
        self._support = (features.detach(), labels)

    def forward_features(self, features: torch.Tensor) -> torch.Tensor:
        if self.fast_params is None:
            raise ConfigError("call fit_support before scoring queries")
        return self._logits(self.fast_params, features)

    def novelty(self, features: torch.Tensor) -> torch.Tensor:
        """Squared distance to the nearest class centre in the adapted body's embedding."""
        if self._support is None:
            raise ConfigError("call fit_support before scoring queries")
        support, labels = self._support
        with torch.no_grad():
            centres = class_means(self._adapted_body(support), labels, int(labels.max()) + 1)
            return squared_euclidean(self._adapted_body(features), centres).min(1).values

    def _adapted_body(self, features: torch.Tensor) -> torch.Tensor:
        assert self.fast_params is not None
        body = {k: v for k, v in self.fast_params.items() if not k.startswith("head.")}
        return self._body(body, features)

    def _inner_step(
        self, fast: Params, loss: torch.Tensor, second_order: bool, keep_graph: bool
    ) -> Params:
        # First-order meta-learning still backpropagates through the forward passes (and the
        # prototype head), so their graph must outlive these gradients.
        grads = torch.autograd.grad(
            loss,
            list(fast.values()),
            create_graph=second_order,
            retain_graph=keep_graph,
            allow_unused=True,
        )
        return {
            name: param if grad is None else param - self.step_size(name, keep_graph) * grad
            for (name, param), grad in zip(fast.items(), grads, strict=True)
        }

    def step_size(self, name: str, meta_learning: bool) -> float | torch.Tensor:
        """The inner learning rate of the fast parameter `name` (`head.*` for the head)."""
        return self.inner_lr

    def _body(self, params: Params, features: torch.Tensor) -> torch.Tensor:
        buffers = dict(self.body.named_buffers())
        return functional_call(self.body, (params, buffers), (features,)).flatten(1)

    def _logits(self, fast: Params, features: torch.Tensor) -> torch.Tensor:
        body = {k: v for k, v in fast.items() if not k.startswith("head.")}
        return F.linear(self._body(body, features), fast["head.weight"], fast["head.bias"])
