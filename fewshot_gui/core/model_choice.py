"""Which installed model to start with on this computer, and how to say what each trades."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigError

# The model the app starts with until this computer has measured a better fit.
SAFE_DEFAULT = "photo-lite0-protonet"
# Model-only images/s a photo model must reach here to be the CPU default: labeling also
# decodes on the same cores and runs at 75-86% of this (docs/benchmarks.md), so 150 keeps
# labeling at or above 120 images/s.
MIN_IMAGES_PER_SECOND = 150.0
_ACCURACY_SETTING = "20-way 1-shot"


def measured_speeds(engines_dir: Path | None) -> dict[str, float]:
    """Model name -> model-only images/s of its fastest engine, as this computer measured
    them (`EngineProbe` decisions in `engines_dir/choices.json`); the latest of each."""
    if engines_dir is None:
        return {}
    # Both import torch: not at import time, the window imports this module.
    from .devices import describe_machine
    from .engine_choice import read_decisions

    decisions = read_decisions(engines_dir)
    machine = describe_machine()
    latest: dict[str, tuple[str, float]] = {}
    for key, decision in decisions.items():
        if not isinstance(decision, dict) or machine not in str(key):
            continue
        name, rates = decision.get("model"), decision.get("rates")
        if not isinstance(name, str) or not isinstance(rates, dict) or not rates:
            continue
        numbers = [r for r in rates.values() if isinstance(r, int | float)]
        date = str(decision.get("date", ""))
        if numbers and (name not in latest or date >= latest[name][0]):
            latest[name] = (date, float(max(numbers)))
    return {name: rate for name, (_, rate) in latest.items()}


def chooser_text(name: str, card: dict[str, Any], speed: float | None) -> str:
    """What the model chooser shows: the name, what the model trades, and its speed here
    once measured, e.g. "photo-lite2-protonet: more accurate, slower (160 images/s here)"."""
    trade = card.get("trade")
    words = trade.get("words") if isinstance(trade, dict) else None
    text = f"{name}: {words}" if isinstance(words, str) and words else name
    return f"{text} ({speed:.0f} images/s here)" if speed else text


def _accuracy(card: dict[str, Any]) -> float:
    figure = card.get("evaluation", {}).get(_ACCURACY_SETTING, {})
    accuracy = figure.get("accuracy") if isinstance(figure, dict) else None
    return float(accuracy) if isinstance(accuracy, int | float) else 0.0


def _cost(card: dict[str, Any]) -> float | None:
    trade = card.get("trade")
    cost = trade.get("cost_vs_lite0") if isinstance(trade, dict) else None
    return float(cost) if isinstance(cost, int | float) and cost > 0 else None


def default_model(
    models: Sequence[tuple[str, dict[str, Any]]], device_type: str, speeds: dict[str, float]
) -> str:
    """The photo model to start with on this device.

    On a GPU, the most accurate (speed is moot there). On the CPU, the most accurate whose
    model-only speed here reaches `MIN_IMAGES_PER_SECOND`: measured, or estimated from the
    safe default's measured speed and the model's measured cost relative to Lite0 (its
    card's `trade.cost_vs_lite0`). Until this computer has measured anything, the safe
    default (`SAFE_DEFAULT`).
    """
    cards = dict(models)
    photo = [n for n in cards if n.startswith("photo-") and n.endswith("-protonet")]
    if not photo:
        return SAFE_DEFAULT if SAFE_DEFAULT in cards else (next(iter(cards), SAFE_DEFAULT))
    by_accuracy = sorted(photo, key=lambda n: _accuracy(cards[n]), reverse=True)
    if device_type != "cpu":
        return by_accuracy[0]
    base = speeds.get(SAFE_DEFAULT)
    for name in by_accuracy:
        cost = _cost(cards[name])
        speed = speeds.get(name) or (base / cost if base and cost else None)
        if speed is not None and speed >= MIN_IMAGES_PER_SECOND:
            return name
    return SAFE_DEFAULT if SAFE_DEFAULT in cards else by_accuracy[-1]


def chooser_entries(
    models: Sequence[tuple[str, dict[str, Any]]], requested_device: str, engines_dir: Path | None
) -> tuple[list[tuple[str, str]], str]:
    """(name, chooser text) of each model, and the one to start with on the device that
    `requested_device` ("auto", "cpu", ...) gives here."""
    from .devices import pick_device

    try:
        device_type = pick_device(requested_device)[0].type
    except ConfigError:  # the worker reports an unavailable device when it loads the model
        device_type = "cpu"
    speeds = measured_speeds(engines_dir)
    entries = [(name, chooser_text(name, card, speeds.get(name))) for name, card in models]
    return entries, default_model(models, device_type, speeds)
