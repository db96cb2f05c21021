"""The pretrained photo backbones by name: Lite0, Lite2 and the two together."""

from pathlib import Path

import torch
from PIL import Image

from fewshot_gui.core.backbones import get_backbone
from fewshot_gui.core.config import ModelConfig
from fewshot_gui.core.datasets import ImagePool, load_pixels
from fewshot_gui.core.efficientnet_lite import LITE2, build_lite
from fewshot_gui.core.evaluation import pool_inputs
from fewshot_gui.core.jobs import drive
from fewshot_gui.core.methods import build_model
from fewshot_gui.core.transforms import to_tensor


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


def test_ensemble_features_of_a_pool_come_from_each_members_cache(tmp_path: Path) -> None:
    for index, colour in enumerate(["red", "navy", "gold", "teal"]):
        folder = tmp_path / "data" / ("warm" if index % 2 == 0 else "cool")
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 30), colour).save(folder / f"{colour}.jpg")
    pool = ImagePool.from_folder(tmp_path / "data")
    spec = get_backbone("lite0+lite2")
    model = build_model(ModelConfig(method="protonet", backbone=spec.name, metric="cosine"))
    cache = tmp_path / "cache"

    first = drive(pool_inputs(model, spec, pool, cache))
    again = drive(pool_inputs(model, spec, pool, cache))
    with torch.no_grad():
        direct = model.encoder.backbone(to_tensor(load_pixels(pool, spec), spec))

    torch.testing.assert_close(first, direct, atol=1e-5, rtol=1e-5)
    assert torch.equal(again, first)
    kept = sorted(path.name.split("-")[1] for path in cache.glob("features-*.npy"))
    assert kept == ["lite0", "lite2"]  # the members', not the combination's
