"""Frozen-feature accuracy of backbones on held-out photo classes: which input size, which
way of combining two backbones.

No training: each image is embedded once by the frozen backbone (cached on disk like
`fewshot eval`), then seeded episodes are scored with cosine prototypes, on the raw
features ("cosine", what `fewshot eval --baseline NAME:cosine` measures) and after the
square root and unit length that the shipped models' `power-affine` neck starts from
("power"). Every row draws the same episodes (same seed).

    python benchmarks/feature_choice.py --data ../shared/data/caltech101-dev --holdout 20 \
        --sizes lite0@224 lite2@224 lite2@260 --combine lite0@224+lite2@224
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from fewshot_gui.core.backbones import get_backbone
from fewshot_gui.core.config import EpisodeConfig, ModelConfig
from fewshot_gui.core.datasets import ImagePool
from fewshot_gui.core.evaluation import evaluate_features, pool_inputs
from fewshot_gui.core.jobs import drive
from fewshot_gui.core.methods import build_model
from fewshot_gui.core.paths import cache_dir

SETTINGS = ((5, 1), (5, 5), (20, 1))


def features_at(name_at_size: str, pool: ImagePool) -> torch.Tensor:
    """Frozen features (N, D) of every image in `pool` by backbone NAME at SIZE pixels."""
    name, _, size = name_at_size.partition("@")
    spec = get_backbone(name)
    spec = dataclasses.replace(spec, input_size=int(size or spec.input_size))
    model = build_model(ModelConfig(method="protonet", backbone=name, metric="cosine"))
    started = time.perf_counter()
    features = drive(pool_inputs(model, spec, pool, cache_dir()))
    print(f"  {name_at_size}: {tuple(features.shape)} in {time.perf_counter() - started:.0f} s")
    return features


def power(features: torch.Tensor) -> torch.Tensor:
    """The square root and unit length that the `power-affine` neck starts with."""
    return F.normalize(features.clamp_min(0).sqrt(), dim=1)


def accuracies(features: torch.Tensor, labels, episodes: int, seed: int) -> list[str]:
    """'accuracy ± ci95' for each of SETTINGS, with cosine prototypes on `features`."""
    model = build_model(ModelConfig(method="protonet", backbone="conv4", metric="cosine"))
    cells = []
    for way, shot in SETTINGS:
        result = drive(
            evaluate_features(model, features, labels, EpisodeConfig(way, shot, 15), episodes, seed)
        )
        cells.append(f"{result.accuracy:.2f} ± {result.ci95:.2f}")
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder of class folders")
    parser.add_argument("--holdout", type=int, default=20, help="the K held-out folders only")
    parser.add_argument("--sizes", nargs="*", default=[], metavar="NAME@SIZE")
    parser.add_argument(
        "--combine",
        nargs="*",
        default=[],
        metavar="A@SIZE+B@SIZE",
        help="two backbones' features: each unit length then concatenated, and concatenated",
    )
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
        f"{torch.__version__}, load {' / '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    pool = ImagePool.from_folder(args.data).split_holdout_groups(args.holdout)[1]
    print(
        f"{len(pool.class_names)} held-out classes, {len(pool.paths)} images; "
        f"{args.episodes} episodes per setting, 15 queries per class, seed {args.seed}"
    )
    rows: list[tuple[str, torch.Tensor]] = []
    for name_at_size in args.sizes:
        rows.append((name_at_size, features_at(name_at_size, pool)))
    for pair in args.combine:
        first, second = (features_at(part, pool) for part in pair.split("+"))
        each_unit = torch.cat([F.normalize(first, dim=1), F.normalize(second, dim=1)], dim=1)
        rows.append((f"{pair}, each unit length, concatenated", each_unit))
        rows.append((f"{pair}, concatenated", torch.cat([first, second], dim=1)))
    # Episodes are small products: one thread, which a busy machine does not stall.
    torch.set_num_threads(1)
    header = " | ".join(f"{way}w{shot}s" for way, shot in SETTINGS)
    print(f"\n| features | metric | {header} |")
    print("|---|---|" + "---|" * len(SETTINGS))
    for label, features in rows:
        for metric, transformed in (("cosine", features), ("power", power(features))):
            cells = accuracies(transformed, pool.labels, args.episodes, args.seed)
            print(f"| {label} | {metric} | {' | '.join(cells)} |", flush=True)
    print(f"load after: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
