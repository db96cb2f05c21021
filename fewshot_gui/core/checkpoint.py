"""Checkpoints: weights in safetensors plus a JSON card; nothing is ever unpickled."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .. import __version__
from .atomic import write_json_atomic
from .backbones import BackboneSpec, get_backbone
from .config import ModelConfig, from_dict, to_dict
from .errors import CheckpointError, ConfigError
from .methods import FewShotClassifier, build_model
from .paths import builtin_models_dir, user_models_dir

CARD_FORMAT = "fewshot-gui-model/1"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "card.json"
DEFAULT_MODEL = "photo-lite0-protonet"
# A card is a few kilobytes and a few levels deep; these bounds only stop a hostile one.
MAX_CARD_BYTES = 1 << 20
MAX_CARD_DEPTH = 32


@dataclass
class LoadedModel:
    """A model ready to adapt, with the card it came with."""

    model: FewShotClassifier
    config: ModelConfig
    spec: BackboneSpec
    card: dict[str, Any]
    path: Path

    @property
    def name(self) -> str:
        return str(self.card.get("name") or self.path.name)


def shipped_state(model: FewShotClassifier, config: ModelConfig) -> dict[str, torch.Tensor]:
    """The tensors a checkpoint stores: all but a pretrained backbone's own weights."""
    state = model.state_dict()
    if get_backbone(config.backbone).pretrained:
        state = {k: v for k, v in state.items() if not k.startswith("encoder.backbone.")}
    return {k: v.detach().contiguous().cpu() for k, v in state.items()}


def save_model(
    directory: Path, model: FewShotClassifier, config: ModelConfig, card: dict[str, Any]
) -> Path:
    """Write `directory/model.safetensors` and `directory/card.json`, each atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    spec = get_backbone(config.backbone)
    full_card = {
        "format": CARD_FORMAT,
        "package_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        **card,
        "model": to_dict(config),
        "input": {
            "size": spec.input_size,
            "channels": spec.channels,
            "mean": list(spec.mean),
            "std": list(spec.std),
            "invert": spec.invert,
        },
    }
    tmp = directory / f".{WEIGHTS_FILE}.tmp"
    save_file(shipped_state(model, config), str(tmp), metadata={"format": CARD_FORMAT})
    tmp.chmod(0o644)  # safetensors creates it private; weights are meant to be shared
    os.replace(tmp, directory / WEIGHTS_FILE)
    write_json_atomic(directory / CARD_FILE, full_card)
    return directory


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file, or from a `.pt` file with `weights_only=True`.

    Anything else, a pickle dressed as a checkpoint included, is a `CheckpointError`, and
    so is a tensor holding NaN or infinity.
    """
    _check_regular_file(path)
    state = _read_tensors(path)
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{path}: {key} holds NaN or infinite weights")
    return state


def _check_regular_file(path: Path) -> None:
    """Refuse what is not a regular file before opening it: reading a FIFO would block."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing") from None
    except OSError as error:
        raise CheckpointError(f"cannot read {path}: {error.strerror or error}") from error
    if not stat.S_ISREG(mode):
        raise CheckpointError(f"{path} is not a regular file")


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix in (".pt", ".pth"):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise CheckpointError(
                f"{path} is not a plain tensor file; only weights load, never code ({error})"
            ) from error
        if not isinstance(state, dict) or not all(
            isinstance(v, torch.Tensor) for v in state.values()
        ):
            raise CheckpointError(f"{path} must hold a flat dict of tensors")
        return state
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f"{path} is not a valid safetensors file ({error}); checkpoints are never "
            "unpickled, so re-save the weights with safetensors"
        ) from error


def read_card(directory: Path) -> dict[str, Any]:
    """The model card of `directory`, checked for shape (not for its model: see `load_model`).

    A card that is not a regular file, over MAX_CARD_BYTES, not JSON, nested deeper than
    MAX_CARD_DEPTH, or whose `name`, `model` or `input` has the wrong type is a
    `CheckpointError`.
    """
    card_path = directory / CARD_FILE
    if not os.path.lexists(card_path):
        raise CheckpointError(f"{directory} has no {CARD_FILE}; is it a model folder?")
    _check_regular_file(card_path)
    try:
        with card_path.open("rb") as handle:
            data = handle.read(MAX_CARD_BYTES + 1)
    except OSError as error:
        raise CheckpointError(f"cannot read {card_path}: {error.strerror or error}") from error
    if len(data) > MAX_CARD_BYTES:
        raise CheckpointError(f"{card_path} is over {MAX_CARD_BYTES >> 20} MB; not a model card")
    try:
        card = json.loads(data.decode("utf-8"))
    except RecursionError:
        raise CheckpointError(f"{card_path} is nested too deeply to be a model card") from None
    # ValueError: JSON errors, bad UTF-8, and integers past Python's 4300-digit limit.
    except ValueError as error:
        raise CheckpointError(f"{card_path} is not valid JSON: {error}") from error
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise CheckpointError(f"{card_path} is not a {CARD_FORMAT} model card")
    if _depth(card) > MAX_CARD_DEPTH:
        raise CheckpointError(f"{card_path} is nested too deeply to be a model card")
    for key, kind in (("name", str), ("model", dict), ("input", dict)):
        if key in card and not isinstance(card[key], kind):
            raise CheckpointError(f"{card_path}: {key!r} must be a {kind.__name__}")
    return card


def _depth(document: Any) -> int:
    """How deeply lists and dicts nest in a JSON document, without recursing."""
    deepest, stack = 0, [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            if depth <= MAX_CARD_DEPTH:
                children = node.values() if isinstance(node, dict) else node
                stack.extend((child, depth + 1) for child in children)
    return deepest


def load_model(name_or_path: str | Path) -> LoadedModel:
    """Rebuild a model from its card, then load its weights strictly; returns it in eval mode."""
    directory = resolve_model(name_or_path)
    card = read_card(directory)
    try:
        config = from_dict(ModelConfig, card.get("model", {}))
        model = build_model(config)  # a backbone this version does not know, say
    except ConfigError as error:
        raise CheckpointError(f"{directory / CARD_FILE}: {error}") from error
    state = load_tensors(directory / WEIGHTS_FILE)
    expected = shipped_state(model, config)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{directory} does not match its card: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    for key, tensor in state.items():
        if tensor.shape != expected[key].shape:
            raise CheckpointError(
                f"{directory}: {key} has shape {tuple(tensor.shape)}, "
                f"the card's model needs {tuple(expected[key].shape)}"
            )
    model.load_state_dict(state, strict=False)
    model.eval()
    return LoadedModel(model, config, get_backbone(config.backbone), card, directory)


def model_search_path() -> list[Path]:
    """Where models are found by name: the user's models folder, then the built-in ones."""
    return [user_models_dir(), builtin_models_dir()]


def resolve_model(name_or_path: str | Path) -> Path:
    """A model folder from a path or an installed model's name."""
    path = Path(name_or_path).expanduser()
    if path.is_file() and path.name in (CARD_FILE, WEIGHTS_FILE):
        return path.parent
    if path.is_dir():
        return path
    for root in model_search_path():
        if (root / str(name_or_path) / CARD_FILE).is_file():
            return root / str(name_or_path)
    known = ", ".join(name for name, _ in list_models()) or "none installed"
    raise CheckpointError(f"no model {str(name_or_path)!r}: give a model folder or one of: {known}")


def list_models() -> list[tuple[str, dict[str, Any]]]:
    """(name, card) of every installed model; a user's model shadows a built-in namesake."""
    return find_models()[0]


def find_models() -> tuple[list[tuple[str, dict[str, Any]]], list[tuple[Path, str]]]:
    """`list_models`, and (folder, why) for each installed model whose card is damaged."""
    found: dict[str, dict[str, Any]] = {}
    damaged: list[tuple[Path, str]] = []
    for root in model_search_path():
        if not root.is_dir():
            continue
        for directory in sorted(p for p in root.iterdir() if (p / CARD_FILE).is_file()):
            if directory.name in found:
                continue
            try:
                found[directory.name] = read_card(directory)
            except CheckpointError as error:
                damaged.append((directory, str(error)))
    return sorted(found.items()), damaged
