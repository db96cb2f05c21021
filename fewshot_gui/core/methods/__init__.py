"""Few-shot methods, one file each, all with the surface of `FewShotClassifier`."""

from __future__ import annotations

from torch import nn

from ..backbones import Encoder, build_neck, get_backbone
from ..config import ModelConfig
from .base import FewShotClassifier
from .maml import MAML
from .protonet import ProtoNet

__all__ = ["MAML", "FewShotClassifier", "ProtoNet", "build_model", "embedding_layers"]


def build_model(config: ModelConfig) -> FewShotClassifier:
    """A fresh model as `config` describes it (pretrained backbones come with their weights).

    ProtoNet embeds with backbone and neck. MAML adapts whatever is trainable: all of a
    Conv-4 (then the encoder passes pixels through), or the neck of a pretrained backbone.
    """
    spec = get_backbone(config.backbone)
    backbone = spec.build()
    neck, _ = build_neck(config.neck, spec.feature_dim)
    if config.method == "protonet":
        return ProtoNet(Encoder(backbone, neck), metric=config.metric)
    if spec.pretrained:
        encoder, body = Encoder(backbone, nn.Identity()), neck
    else:
        encoder, body = Encoder(nn.Identity(), nn.Identity()), nn.Sequential(backbone, neck)
    return MAML(
        encoder,
        body,
        inner_steps=config.inner_steps,
        inner_lr=config.inner_lr,
        test_inner_steps=config.test_inner_steps,
        first_order=config.first_order,
    )


def embedding_layers(model: FewShotClassifier) -> tuple[nn.Module, nn.Module]:
    """The backbone and the neck of a model, wherever `build_model` put them."""
    if isinstance(model, MAML):
        if isinstance(model.encoder.backbone, nn.Identity):
            backbone, neck = model.body  # a Conv-4 MAML adapts nn.Sequential(backbone, neck)
            return backbone, neck
        return model.encoder.backbone, model.body
    return model.encoder.backbone, model.encoder.neck
