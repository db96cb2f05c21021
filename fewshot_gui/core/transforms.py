"""Decoded pixels -> model input tensors, as a backbone spec asks for them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .backbones import BackboneSpec
from .images import load_rgb_array


def pixels_for(path: Path, spec: BackboneSpec) -> np.ndarray:
    """One image as the backbone's uint8 pixels: (input_size, input_size, channels)."""
    rgb = load_rgb_array(path, spec.input_size)
    if spec.channels == 1:
        # ITU-R 601 luma, the same weights as PIL's convert("L").
        gray = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return np.rint(gray).astype(np.uint8)[..., None]
    return rgb


def to_tensor(pixels: np.ndarray | torch.Tensor, spec: BackboneSpec) -> torch.Tensor:
    """uint8 pixels (N, H, W, C) -> normalized float input (N, C, H, W)."""
    batch = torch.as_tensor(pixels).permute(0, 3, 1, 2).float().div_(255.0)
    if spec.invert:
        batch = 1.0 - batch
    mean = torch.tensor(spec.mean, device=batch.device).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, device=batch.device).view(1, -1, 1, 1)
    return (batch - mean) / std
