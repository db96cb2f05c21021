"""Meta-SGD (Li et al. 2017): MAML whose inner learning rate is learned, one per weight."""

from __future__ import annotations

import torch
from torch import nn

from .maml import MAML


def _key(name: str) -> str:
    return name.replace(".", "-")  # a module attribute name may hold no dot


class MetaSGD(MAML):
    """MAML's inner loop with `param - lr * grad`, where `lr` is a learned tensor of the
    parameter's shape, meta-trained with the initial weights (`inner_lrs`).

    Every rate starts at `inner_lr`, so an untrained Meta-SGD adapts exactly as MAML does.
    The Proto-MAML head's weights (n_way, D) change shape with the way, and its classes are
    interchangeable: its rates are one per feature (1, D), shared by every class, and one
    for the biases. `head_dim` is D, the size of the body's flat output.
    """

    def __init__(
        self,
        encoder: nn.Module,
        body: nn.Module,
        head_dim: int,
        inner_steps: int = 5,
        inner_lr: float = 0.4,
        test_inner_steps: int = 10,
        first_order: bool = False,
    ) -> None:
        super().__init__(encoder, body, inner_steps, inner_lr, test_inner_steps, first_order)
        shapes = {name: param.shape for name, param in body.named_parameters()}
        shapes |= {"head.weight": torch.Size((1, head_dim)), "head.bias": torch.Size((1,))}
        self.inner_lrs = nn.ParameterDict(
            {
                _key(name): nn.Parameter(torch.full(shape, inner_lr))
                for name, shape in shapes.items()
            }
        )

    def step_size(self, name: str, meta_learning: bool) -> torch.Tensor:
        rate = self.inner_lrs[_key(name)]
        return rate if meta_learning else rate.detach()
