"""Episodic evaluation: mean accuracy and 95% confidence interval over seeded episodes."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .backbones import BackboneSpec, get_backbone
from .config import EpisodeConfig
from .datasets import (
    EpisodeSampler,
    ImagePool,
    episode_tensors,
    load_pixels,
    with_rotated_classes,
)
from .engines import Engine
from .errors import ConfigError
from .methods import FewShotClassifier
from .transforms import to_tensor


@dataclass(frozen=True)
class Stage:
    """A long step has begun; `message` says which, for a status line."""

    message: str


@dataclass(frozen=True)
class EvalProgress:
    done: int
    total: int
    accuracy: float  # percent, over the episodes done so far


@dataclass(frozen=True)
class EvalResult:
    """Accuracy in percent with the half-width of its 95% interval (1.96 standard errors)."""

    accuracy: float
    ci95: float
    episodes: int
    way: int
    shot: int
    query: int
    transductive: bool = False
    rotated_classes: bool = False

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def mean_ci95(accuracies: list[float]) -> tuple[float, float]:
    """Mean and 95% interval half-width, both in percent, of per-episode accuracies in [0, 1]."""
    values = np.asarray(accuracies, dtype=np.float64) * 100.0
    if len(values) < 2:
        return float(values.mean()), float("nan")
    return float(values.mean()), float(1.96 * values.std(ddof=1) / math.sqrt(len(values)))


@torch.no_grad()
def embed_all(
    model: FewShotClassifier,
    inputs: torch.Tensor,
    batch_size: int = 128,
) -> torch.Tensor:
    """Embed (N, ...) model inputs in eval mode, batch by batch -> (N, ...) features."""
    was_training = model.training
    model.eval()
    try:
        batches = (inputs[i : i + batch_size] for i in range(0, len(inputs), batch_size))
        return torch.cat([model.embed(batch) for batch in batches])
    finally:
        model.train(was_training)


def evaluate_features(
    model: FewShotClassifier,
    features: torch.Tensor,
    labels: np.ndarray,
    episode: EpisodeConfig,
    episodes: int,
    seed: int,
    cancel: Callable[[], bool] | None = None,
    transductive: bool = False,
) -> Generator[EvalProgress, None, EvalResult]:
    """Evaluate on embedded images (N, ...) with class labels (N,): the encoder runs once.

    Valid because the encoder never changes during adaptation; the episode draws are the
    same for the same seed, whatever the model. `transductive` lets a model that can
    (`refine`) also learn from the episode's unlabeled queries, as labeling a folder does.
    """
    if transductive and not hasattr(model, "refine"):
        raise ConfigError(f"{type(model).__name__} has no transductive mode; drop --transductive")
    sampler = EpisodeSampler(labels, episode, seed)
    was_training = model.training
    model.eval()
    accuracies: list[float] = []
    try:
        for i in range(episodes):
            if cancel is not None and cancel():
                break
            support, support_labels, query, query_labels = episode_tensors(
                features, sampler.sample()
            )
            with torch.no_grad():
                model.fit_support_features(support, support_labels)
                if transductive:
                    model.refine(model.points(query))
                predicted = model.forward_features(query).argmax(1)
            accuracies.append((predicted == query_labels).float().mean().item())
            if (i + 1) % 25 == 0 or i + 1 == episodes:
                yield EvalProgress(i + 1, episodes, 100.0 * float(np.mean(accuracies)))
    finally:
        model.train(was_training)
    accuracy, ci95 = mean_ci95(accuracies) if accuracies else (float("nan"), float("nan"))
    return EvalResult(
        accuracy, ci95, len(accuracies), episode.way, episode.shot, episode.query, transductive
    )


def pool_inputs(
    model: FewShotClassifier,
    spec: BackboneSpec,
    pool: ImagePool,
    cache_dir: Path | None = None,
    role: str = "",
) -> Generator[Stage, None, torch.Tensor]:
    """Every image of a pool as model input: normalized images (N, C, H, W), or for a frozen
    pretrained backbone its features (N, D), computed once and cached on disk."""
    what = f"{len(pool.paths)} {role + ' ' if role else ''}images"
    if spec.pretrained:
        return (yield from _frozen_features(model.encoder.backbone, spec, pool, cache_dir, what))
    yield Stage(f"reading {what} of {len(pool.class_names)} classes")
    return to_tensor(load_pixels(pool, spec, cache_dir), spec)


def _frozen_features(
    backbone: nn.Module, spec: BackboneSpec, pool: ImagePool, cache_dir: Path | None, what: str
) -> Generator[Stage, None, torch.Tensor]:
    """A frozen backbone's features (N, D) of every image in `pool`, cached on disk. An
    ensemble combines its members' features, each cached on its own (and so shared with
    the members' own models); only the members' are kept, so the combination never goes stale."""
    if spec.members:
        parts = []
        for member, module in zip(spec.members, backbone.members, strict=True):
            member_spec = dataclasses.replace(get_backbone(member), input_size=spec.input_size)
            parts.append((yield from _frozen_features(module, member_spec, pool, cache_dir, what)))
        return backbone.combine(parts)
    cache_file = None
    if cache_dir is not None:
        key = json.dumps([str(pool.root), pool.fingerprint(), spec.name, spec.input_size])
        name = hashlib.sha256(key.encode()).hexdigest()[:20]
        cache_file = cache_dir / f"features-{spec.name}-{name}.npy"
        if cache_file.exists():
            features = np.load(cache_file, allow_pickle=False)
            if len(features) == len(pool.paths):
                return torch.from_numpy(features)
    yield Stage(f"reading {what} of {len(pool.class_names)} classes")
    pixels = load_pixels(pool, spec, None)
    yield Stage(f"computing {spec.name} features of {what}")
    with torch.no_grad():
        features = torch.cat(
            [backbone(to_tensor(pixels[i : i + 64], spec)) for i in range(0, len(pixels), 64)]
        )
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp.npy")
        np.save(tmp, features.numpy(), allow_pickle=False)
        tmp.replace(cache_file)
    return features


def evaluate(
    model: FewShotClassifier,
    spec: BackboneSpec,
    pool: ImagePool,
    episode: EpisodeConfig,
    episodes: int,
    seed: int = 0,
    cancel: Callable[[], bool] | None = None,
    cache_dir: Path | None = None,
    transductive: bool = False,
    engine: Engine | None = None,
    rotated_classes: bool = False,
) -> Generator[Stage | EvalProgress, None, EvalResult]:
    """Read and embed every image of the pool once, then run seeded episodes.

    With an `engine` the encoder runs there on every image's pixels, as labeling runs it,
    which measures what a reduced-precision engine costs in accuracy. `rotated_classes` adds
    each class turned by 90, 180 and 270 degrees as three more classes (Omniglot's protocol).
    """
    if rotated_classes and (engine is not None or spec.pretrained):
        raise ConfigError("rotated classes are for image backbones such as conv4, run by torch")
    if engine is not None:
        yield Stage(f"reading {len(pool.paths)} images of {len(pool.class_names)} classes")
        pixels = load_pixels(pool, spec).numpy()
        yield Stage(f"embedding {len(pixels)} images on {engine.name}")
        features = torch.cat(
            [torch.from_numpy(engine.embed(pixels[i : i + 64])) for i in range(0, len(pixels), 64)]
        )
        return (
            yield from evaluate_features(
                model, features, pool.labels, episode, episodes, seed, cancel, transductive
            )
        )
    inputs = yield from pool_inputs(model, spec, pool, cache_dir)
    labels = pool.labels
    if rotated_classes:
        inputs, labels = with_rotated_classes(inputs, labels)
    yield Stage(f"embedding {len(inputs)} images")
    model.encoder.skip_backbone = spec.pretrained
    try:
        features = embed_all(model, inputs)
    finally:
        model.encoder.skip_backbone = False
    result = yield from evaluate_features(
        model, features, labels, episode, episodes, seed, cancel, transductive
    )
    return dataclasses.replace(result, rotated_classes=rotated_classes)
