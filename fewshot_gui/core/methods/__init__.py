"""Few-shot methods, one file each, all with the surface of `FewShotClassifier`."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from torch import nn

from ..backbones import BackboneSpec, Encoder, build_neck, get_backbone
from ..config import METHOD_NAMES, ModelConfig
from ..errors import ConfigError
from .base import FewShotClassifier
from .maml import MAML
from .matching import MatchingNetwork
from .meta_lstm import MetaLSTM
from .meta_sgd import MetaSGD
from .metanet import MetaNet
from .protonet import ProtoNet

__all__ = [
    "MAML",
    "METHODS",
    "FewShotClassifier",
    "MatchingNetwork",
    "MetaLSTM",
    "MetaNet",
    "MetaSGD",
    "ProtoNet",
    "build_model",
    "embedding_layers",
]


class Parts(NamedTuple):
    """What every method is built from: the backbone, the neck on it and its output size."""

    spec: BackboneSpec
    backbone: nn.Module
    neck: nn.Module
    feature_dim: int


Builder = Callable[[ModelConfig, Parts], FewShotClassifier]


def _protonet(config: ModelConfig, parts: Parts) -> FewShotClassifier:
    return ProtoNet(Encoder(parts.backbone, parts.neck), metric=config.metric)


def _maml_parts(parts: Parts) -> tuple[Encoder, nn.Module]:
    """MAML adapts whatever is trainable: all of a Conv-4 (then the encoder passes pixels
    through), or the neck of a pretrained backbone."""
    if parts.spec.pretrained:
        return Encoder(parts.backbone, nn.Identity()), parts.neck
    return Encoder(nn.Identity(), nn.Identity()), nn.Sequential(parts.backbone, parts.neck)


def _maml(config: ModelConfig, parts: Parts) -> FewShotClassifier:
    return MAML(*_maml_parts(parts), **_inner_settings(config))


def _meta_sgd(config: ModelConfig, parts: Parts) -> FewShotClassifier:
    return MetaSGD(*_maml_parts(parts), parts.feature_dim, **_inner_settings(config))


def _matching(config: ModelConfig, parts: Parts) -> FewShotClassifier:
    encoder = Encoder(parts.backbone, parts.neck)
    return MatchingNetwork(encoder, parts.feature_dim, fce_steps=config.fce_steps)


def _meta_lstm(config: ModelConfig, parts: Parts) -> FewShotClassifier:
    settings = _inner_settings(config)
    del settings["first_order"]  # the meta-learner never sees second derivatives
    # On a Conv-4 the cell updates the last block and the head (CPU cost); the rest stays slow.
    slow = () if parts.spec.pretrained else tuple(f"0.blocks.{i}." for i in range(3))
    return MetaLSTM(*_maml_parts(parts), **settings, slow_prefixes=slow)


def _metanet(config: ModelConfig, parts: Parts) -> FewShotClassifier:
    return MetaNet(Encoder(parts.backbone, parts.neck), parts.feature_dim)


def _inner_settings(config: ModelConfig) -> dict[str, int | float | bool]:
    return {
        "inner_steps": config.inner_steps,
        "inner_lr": config.inner_lr,
        "test_inner_steps": config.test_inner_steps,
        "first_order": config.first_order,
    }


# One entry per name in config.METHOD_NAMES.
METHODS: dict[str, Builder] = {
    "protonet": _protonet,
    "maml": _maml,
    "matching": _matching,
    "meta-sgd": _meta_sgd,
    "meta-lstm": _meta_lstm,
    "metanet": _metanet,
}


def build_model(config: ModelConfig) -> FewShotClassifier:
    """A fresh model as `config` describes it (pretrained backbones come with their weights)."""
    builder = METHODS.get(config.method)
    if builder is None:
        known = ", ".join(METHOD_NAMES)
        raise ConfigError(f"method must be one of {known}; got {config.method!r}")
    spec = get_backbone(config.backbone)
    backbone = spec.build()  # before the neck: a seed gives the same weights as it always has
    neck, feature_dim = build_neck(config.neck, spec.feature_dim)
    return builder(config, Parts(spec, backbone, neck, feature_dim))


def embedding_layers(model: FewShotClassifier) -> tuple[nn.Module, nn.Module]:
    """The backbone and the neck of a model, wherever `build_model` put them."""
    if isinstance(model, MAML):
        if isinstance(model.encoder.backbone, nn.Identity):
            backbone, neck = model.body  # a Conv-4 MAML adapts nn.Sequential(backbone, neck)
            return backbone, neck
        return model.encoder.backbone, model.body
    return model.encoder.backbone, model.encoder.neck
