"""Meta Networks (Munkhdalai & Yu 2017): fast weights generated from the support's loss
gradients, added to slow weights in the base learner and in the embedding."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import grad, vmap

from ..errors import ConfigError
from .base import FewShotClassifier, check_support_labels
from .meta_lstm import preprocess
from .protonet import class_means, squared_euclidean

# Queries are scored in chunks: each one carries its own fast weights (dim x dim floats).
QUERY_CHUNK = 1024


class FastWeights(NamedTuple):
    """What fitting a support set of n examples leaves: the embedding's task-level fast
    layer (D, D), (D,); the support keys (n, D), unit length; the memory of each example's
    fast layer for the base learner (n, D, D), (n, D)."""

    task_weight: torch.Tensor
    task_bias: torch.Tensor
    keys: torch.Tensor
    example_weights: torch.Tensor
    example_biases: torch.Tensor


class FastWeightGenerator(nn.Module):
    """A coordinate-wise MLP from a preprocessed gradient to a fast weight: (...) -> (...)."""

    def __init__(self, hidden: int = 20) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.out = nn.Linear(hidden, 1)
        # Small but not zero: the fast branch's ReLU would pass no gradient at exactly zero.
        nn.init.normal_(self.out.weight, std=1e-3)
        nn.init.zeros_(self.out.bias)

    def forward(self, gradients: torch.Tensor) -> torch.Tensor:
        return self.out(self.layers(preprocess(gradients))).squeeze(-1)


def augmented(
    features: torch.Tensor,
    slow: nn.Linear,
    fast_weight: torch.Tensor,
    fast_bias: torch.Tensor,
) -> torch.Tensor:
    """A layer-augmented linear layer: relu(slow(x)) + relu(fast(x)), the paper's element-wise
    sum of the slow and fast branches. `fast_weight` is (out, in), or (n, out, in) and
    `fast_bias` (n, out) for one fast layer per row of `features` (n, in)."""
    if fast_weight.dim() == 3:
        fast = torch.bmm(fast_weight, features.unsqueeze(2)).squeeze(2) + fast_bias
    else:
        fast = F.linear(features, fast_weight, fast_bias)
    return F.relu(slow(features)) + F.relu(fast)


def _prototype_loss(
    weight: torch.Tensor,
    bias: torch.Tensor,
    features: torch.Tensor,
    labels: torch.Tensor,
    centres: torch.Tensor,
) -> torch.Tensor:
    """Cross-entropy of minus squared distances from relu(W x + b) to fixed `centres`."""
    outputs = F.relu(features @ weight.T + bias)
    logits = -(outputs.unsqueeze(-2) - centres).pow(2).sum(-1)
    return F.cross_entropy(logits.reshape(-1, len(centres)), labels.reshape(-1))


def example_gradients(
    layer: nn.Linear, features: torch.Tensor, labels: torch.Tensor, centres: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each support example's own loss gradient for the slow layer: (n, out, in), (n, out)."""
    weight, bias = layer.weight.detach(), layer.bias.detach()
    per_example = vmap(grad(_prototype_loss, argnums=(0, 1)), in_dims=(None, None, 0, 0, None))
    return per_example(weight, bias, features, labels, centres)


def task_gradients(
    layer: nn.Linear, features: torch.Tensor, labels: torch.Tensor, centres: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean support loss's gradient for the slow layer: (out, in), (out,)."""
    weight, bias = layer.weight.detach(), layer.bias.detach()
    return grad(_prototype_loss, argnums=(0, 1))(weight, bias, features, labels, centres)


class MetaNet(FewShotClassifier):
    """MetaNet with an any-way prototype head, over a shared encoder (e.g. Conv-4).

    Fitting a support set: (1) the embedding's slow layer Q gives a task loss on the support
    (prototype cross-entropy); the generator d turns its gradient into task-level fast
    weights Q*, and the layer-augmented embedding relu(Q x) + relu(Q* x) gives each support
    example a key. (2) The base learner's slow layer W gives each support example its own
    loss; the generator m turns each example's gradient into fast weights W*_i, kept in a
    memory. (3) Any image reads the memory by attention, softmax over scaled cosine
    similarities of its key to the support keys, and is mapped by relu(W x) + relu(W*(x) x);
    scores are minus squared distances to the support's class means in that space.

    Slow layers start at the identity, so on a ReLU encoder (features >= 0) a fresh MetaNet
    scores as ProtoNet does up to the small initial fast weights. As in the paper, the
    gradients are inputs to the generators: nothing is backpropagated through them.
    """

    def __init__(self, encoder: nn.Module, dim: int, hidden: int = 20) -> None:
        super().__init__(encoder)
        if not 1 <= dim <= 4096:
            raise ConfigError(f"MetaNet needs a feature size of 1 to 4096, got {dim}")
        self.base = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        for layer in (self.base, self.key):
            nn.init.eye_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.base_generator = FastWeightGenerator(hidden)
        self.key_generator = FastWeightGenerator(hidden)
        # Cosines lie in [-1, 1]; a learned sharpness lets attention pick among 100 keys.
        self.log_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        self.fast_weights: FastWeights | None = None
        self.prototypes: torch.Tensor | None = None

    def points(self, features: torch.Tensor) -> torch.Tensor:
        return features.flatten(1)

    def fit_support_features(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        n_way = check_support_labels(labels, features.shape[0])
        points = self.points(features)
        with torch.no_grad():
            key_centres = class_means(F.relu(self.key(points)), labels, n_way)
            base_centres = class_means(F.relu(self.base(points)), labels, n_way)
        key_weight, key_bias = task_gradients(self.key, points, labels, key_centres)
        task_weight = self.key_generator(key_weight)
        task_bias = self.key_generator(key_bias)
        keys = F.normalize(augmented(points, self.key, task_weight, task_bias), dim=1)
        weight_grads, bias_grads = example_gradients(self.base, points, labels, base_centres)
        self.fast_weights = FastWeights(
            task_weight,
            task_bias,
            keys,
            self.base_generator(weight_grads),
            self.base_generator(bias_grads),
        )
        self.prototypes = class_means(self._mapped(points), labels, n_way)

    def attention(self, points: torch.Tensor) -> torch.Tensor:
        """How much each image (n, D) reads each support example's fast weights -> (n, n_s)."""
        fast = self.fast_weights
        if fast is None:
            raise ConfigError("call fit_support before scoring queries")
        queries = F.normalize(augmented(points, self.key, fast.task_weight, fast.task_bias), dim=1)
        return torch.softmax(self.log_scale.exp() * queries @ fast.keys.T, dim=1)

    def _mapped(self, points: torch.Tensor) -> torch.Tensor:
        """The base learner's output (n, D) for points (n, D), each with its own fast weights."""
        assert self.fast_weights is not None
        memory, biases = self.fast_weights.example_weights, self.fast_weights.example_biases
        outputs = []
        for chunk in torch.split(points, QUERY_CHUNK):
            reads = self.attention(chunk)
            fast_weight = (reads @ memory.flatten(1)).view(-1, *memory.shape[1:])
            outputs.append(augmented(chunk, self.base, fast_weight, reads @ biases))
        return torch.cat(outputs)

    def _distances(self, points: torch.Tensor) -> torch.Tensor:
        if self.prototypes is None:
            raise ConfigError("call fit_support before scoring queries")
        return squared_euclidean(self._mapped(points), self.prototypes)

    def forward_features(self, features: torch.Tensor) -> torch.Tensor:
        return -self._distances(self.points(features))

    def novelty(self, features: torch.Tensor) -> torch.Tensor:
        """Squared distance to the nearest class mean in the base learner's output."""
        return self._distances(self.points(features)).min(1).values

    def score_points(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        distances = self._distances(points)
        return -distances, distances.min(1).values
