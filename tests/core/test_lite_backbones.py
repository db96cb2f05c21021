"""The pretrained photo backbones by name: Lite0, Lite2 and the two together."""

import torch

from fewshot_gui.core.backbones import get_backbone
from fewshot_gui.core.efficientnet_lite import LITE2, build_lite


def test_lite2_is_the_wheels_network_frozen_at_224() -> None:
    spec = get_backbone("lite2")
    backbone = spec.build().train()  # training mode must not reach the batch norms
    torch.manual_seed(0)
    images = torch.randn(2, 3, 64, 64)

    with torch.no_grad():
        features = backbone(images)

    assert (spec.input_size, spec.feature_dim, spec.pretrained) == (224, 1280, True)
    assert not any(p.requires_grad for p in backbone.parameters())
    assert torch.equal(features, build_lite(LITE2)(images))


def test_the_ensemble_concatenates_each_members_unit_length_features() -> None:
    lite0, lite2 = get_backbone("lite0"), get_backbone("lite2")
    spec = get_backbone("lite0+lite2")
    ensemble = spec.build().eval()
    torch.manual_seed(0)
    images = torch.rand(3, 3, 64, 64) * 2 - 1

    with torch.no_grad():
        features = ensemble(images)
        first, second = lite0.build()(images), lite2.build()(images)

    assert spec.feature_dim == features.shape[1] == 2560
    assert (spec.input_size, spec.mean, spec.std) == (224, lite0.mean, lite0.std)
    assert (lite0.mean, lite0.std) == (lite2.mean, lite2.std)  # one input feeds both
    torch.testing.assert_close(features[:, :1280], first / first.norm(dim=1, keepdim=True))
    torch.testing.assert_close(features[:, 1280:], second / second.norm(dim=1, keepdim=True))
    torch.testing.assert_close(features.norm(dim=1), torch.full((3,), 2**0.5))
