"""Which torch device to run on, and how to say so to a person."""

from __future__ import annotations

import os
import platform

import torch

from .errors import ConfigError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def pick_device(requested: str = "auto") -> tuple[torch.device, str]:
    """The device to use and a description such as "CUDA (NVIDIA H100)" or "CPU (2 threads)".

    `auto` prefers CUDA, then Apple's MPS, then the CPU; asking for one that is missing is
    a `ConfigError` rather than a silent fallback.
    """
    if requested not in DEVICE_CHOICES:
        raise ConfigError(f"device must be one of {', '.join(DEVICE_CHOICES)}, got {requested!r}")
    has_mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if requested in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda"), f"CUDA ({torch.cuda.get_device_name(0)})"
    if requested in ("auto", "mps") and has_mps:
        return torch.device("mps"), "MPS (Apple GPU)"
    if requested in ("cuda", "mps"):
        raise ConfigError(f"{requested.upper()} is not available here; use --device auto or cpu")
    return torch.device("cpu"), f"CPU ({torch.get_num_threads()} threads)"


def describe_machine() -> str:
    """One line for model cards and benchmark logs: processor, cores, torch, accelerator."""
    accelerator = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{_processor()}, {os.cpu_count()} cores, {platform.system()}, "
        f"torch {torch.__version__}, {accelerator}"
    )


def _processor() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
