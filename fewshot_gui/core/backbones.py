"""Backbones by name: each declares its input size, channels and normalization."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError


@dataclass(frozen=True)
class BackboneSpec:
    """What a backbone needs as input and what it gives back.

    `mean` and `std` are per channel on pixel values scaled to [0, 1]; `invert` flips
    grayscale images first (Omniglot strokes are dark on white, the network wants them bright).
    `pretrained` backbones come with weights from an installed package and stay frozen.
    """

    name: str
    input_size: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    feature_dim: int
    build: Callable[[], nn.Module]
    pretrained: bool = False
    invert: bool = False
    # An ensemble's member backbones by name; its module combines their features (`combine`).
    members: tuple[str, ...] = ()


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 conv with 64 filters, batch norm, ReLU, 2x2 max-pool (Snell et al.; Finn et al.)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )


class Conv4(nn.Module):
    """The Conv-4 embedding: four conv blocks, flattened. (N, C, H, W) -> (N, 64 * H/16 * W/16)."""

    def __init__(self, in_channels: int = 1, hidden: int = 64) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            conv_block(in_channels, hidden),
            conv_block(hidden, hidden),
            conv_block(hidden, hidden),
            conv_block(hidden, hidden),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.blocks(images).flatten(1)


class FrozenLite(nn.Module):
    """An EfficientNet-Lite with its ImageNet weights, frozen and always in eval mode."""

    def __init__(self, variant: str) -> None:
        super().__init__()
        from .efficientnet_lite import VARIANTS, build_lite

        self.net = build_lite(VARIANTS[variant], pretrained=True)
        self.net.requires_grad_(False)
        self.net.eval()

    def train(self, mode: bool = True) -> FrozenLite:
        # Batch-norm statistics of pretrained weights must never drift.
        super().train(mode)
        self.net.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


class FrozenLiteEnsemble(nn.Module):
    """Several frozen Lite models on the same input: (N, 3, H, W) -> (N, 1280 * members).

    Each member's features are scaled to unit length before they are concatenated, so that
    each member weighs the same in a cosine metric whatever the size of its activations
    (measured better than plain concatenation; docs/models.md).
    """

    def __init__(self, variants: tuple[str, ...], unit_members: bool = True) -> None:
        super().__init__()
        self.members = nn.ModuleList(FrozenLite(variant) for variant in variants)
        self.unit_members = unit_members

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.combine([member(images) for member in self.members])

    def combine(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """Each member's features (N, 1280), in order -> the ensemble's (N, 1280 * members)."""
        if self.unit_members:
            parts = [F.normalize(part, dim=1) for part in parts]
        return torch.cat(parts, dim=1)


# The input size each Lite backbone runs at; Lite2's native 260 measured worse than 224 on
# held-out photo classes (docs/models.md, benchmarks/feature_choice.py).
LITE_INPUT_SIZE = 224


def _lite_spec(name: str, members: tuple[str, ...] = ()) -> BackboneSpec:
    from .efficientnet_lite import LITE_FEATURE_DIM, LITE_MEAN, LITE_STD

    return BackboneSpec(
        name=name,
        input_size=LITE_INPUT_SIZE,
        channels=3,
        mean=LITE_MEAN,
        std=LITE_STD,
        feature_dim=LITE_FEATURE_DIM * max(1, len(members)),
        build=(lambda: FrozenLiteEnsemble(members)) if members else (lambda: FrozenLite(name)),
        pretrained=True,
        members=members,
    )


_REGISTRY: dict[str, Callable[[], BackboneSpec]] = {
    "conv4": lambda: BackboneSpec(
        name="conv4",
        input_size=28,
        channels=1,
        mean=(0.0,),
        std=(1.0,),
        feature_dim=64,
        build=lambda: Conv4(in_channels=1),
        invert=True,
    ),
    "conv4-rgb84": lambda: BackboneSpec(
        name="conv4-rgb84",
        input_size=84,
        channels=3,
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        feature_dim=64 * 5 * 5,
        build=lambda: Conv4(in_channels=3),
    ),
    "lite0": lambda: _lite_spec("lite0"),
    "lite2": lambda: _lite_spec("lite2"),
    "lite0+lite2": lambda: _lite_spec("lite0+lite2", members=("lite0", "lite2")),
}


def backbone_names() -> list[str]:
    """The registered backbone names, sorted."""
    return sorted(_REGISTRY)


def get_backbone(name: str) -> BackboneSpec:
    """The spec registered under `name`; a `ConfigError` lists the choices otherwise."""
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise ConfigError(
            f"unknown backbone {name!r}; choose one of: {', '.join(backbone_names())}"
        ) from None


class Affine(nn.Module):
    """A learned per-feature shift and scale: (N, D) -> (N, D), the identity at start."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.shift = nn.Parameter(torch.zeros(dim))
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.shift) * self.scale

    @torch.no_grad()
    def initialise(self, features: torch.Tensor) -> None:
        """Start centred on the training data (N, D): the shift begins at its mean."""
        self.shift.copy_(features.mean(0))


class PowerAffine(nn.Module):
    """Power transform, unit length, then `Affine`: (N, D) -> (N, D).

    The square root evens out the heavy-tailed non-negative features of a ReLU network and
    centring removes their common direction, both of which help nearest-prototype
    classification (Hu et al. 2021; Wang et al. 2019, "SimpleShot").
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.affine = Affine(dim)

    def transform(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(features.clamp_min(0).sqrt(), dim=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.affine(self.transform(features))

    def initialise(self, features: torch.Tensor) -> None:
        self.affine.initialise(self.transform(features))


def build_neck(neck: str, in_dim: int) -> tuple[nn.Module, int]:
    """A small trainable part on top of a backbone, and its output size.

    "" is none, "affine" a per-feature shift and scale, "power-affine" a square root and
    unit length first, "linear:D" one linear map to D, "mlp:H,D" a hidden ReLU layer of H
    then a linear map to D. Necks with an `initialise(features)` method start from the
    training data's statistics.
    """
    kind, _, sizes = neck.partition(":")
    try:
        dims = [int(size) for size in sizes.split(",")] if sizes else []
    except ValueError:
        dims = [-1]
    if kind == "" and not dims:
        return nn.Identity(), in_dim
    if kind == "affine" and not dims:
        return Affine(in_dim), in_dim
    if kind == "power-affine" and not dims:
        return PowerAffine(in_dim), in_dim
    if kind == "linear" and len(dims) == 1 and dims[0] > 0:
        return nn.Linear(in_dim, dims[0]), dims[0]
    if kind == "mlp" and len(dims) == 2 and min(dims) > 0:
        hidden, out = dims
        return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out)), out
    raise ConfigError(
        f"unknown neck {neck!r}; use '', 'affine', 'power-affine', 'linear:D' or 'mlp:H,D'"
    )


class Encoder(nn.Module):
    """Backbone then neck: (N, C, H, W) -> (N, D).

    While `skip_backbone` is set the input is taken as backbone features already, which lets
    training on a frozen pretrained backbone compute those features once.
    """

    def __init__(self, backbone: nn.Module, neck: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.skip_backbone = False

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = images if self.skip_backbone else self.backbone(images)
        return self.neck(features)
