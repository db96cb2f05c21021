"""What each few-shot method costs when labeling: the same images, the same support set,
every model in one run, the first one the baseline.

Per model, through the app's `Labeler` (torch float32, one thread per core as labeling
runs, no disk cache): the first pass over the folder (decode, embed, score) in images/s;
`set_support` (embed the examples, adapt, calibrate `unknown` by leaving out each example
and each class) in ms; and `relabel` of every row under that support in ms. Held-out
Omniglot alphabets, `--way` classes with `--shot` examples each, every other drawing of
theirs to label. Best of `--rounds` for the timings after the first pass.

    python benchmarks/method_speed.py --data ../shared/data/omniglot/images_background \
        --models omniglot-conv4-protonet omniglot-conv4-maml omniglot-conv4-matching
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from fewshot_gui.core.checkpoint import load_model
from fewshot_gui.core.datasets import ImagePool
from fewshot_gui.core.devices import describe_machine
from fewshot_gui.core.jobs import drive
from fewshot_gui.core.labeling import Labeler, SupportSet


def task(data: Path, holdout: int, way: int, shot: int) -> tuple[SupportSet, dict[Path, str]]:
    """The first `way` held-out classes: `shot` examples each, the rest of theirs to label
    (path -> true class)."""
    pool = ImagePool.from_folder(data).split_holdout_groups(holdout)[1]
    support: dict[str, list[Path]] = {}
    truth: dict[Path, str] = {}
    for index in range(way):
        name = f"class{index:02d}"
        paths = [
            Path(p) for p, label in zip(pool.paths, pool.labels, strict=True) if label == index
        ]
        support[name] = paths[:shot]
        truth |= {path: name for path in paths[shot:]}
    return SupportSet.from_mapping(support), truth


def measure(
    model: str, support: SupportSet, truth: dict[Path, str], rounds: int
) -> dict[str, float]:
    images = list(truth)
    labeler = Labeler(load_model(model), device="cpu", engine="torch")
    drive(labeler.set_support(support))
    started = time.perf_counter()
    drive(labeler.label(images))
    first_pass = len(images) / (time.perf_counter() - started)
    adapt, relabel = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        drive(labeler.set_support(support))
        adapt.append(time.perf_counter() - started)
        started = time.perf_counter()
        labels = labeler.relabel()
        relabel.append(time.perf_counter() - started)
    names = {p.path: p.label for p in labels}
    accuracy = sum(names[p] == t for p, t in truth.items()) / len(images)
    return {
        "images/s": first_pass,
        "set_support ms": 1000 * min(adapt),
        "relabel ms": 1000 * min(relabel),
        "accuracy": 100 * accuracy,  # `unknown` counts as wrong
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--models", nargs="+", required=True, help="the first is the baseline")
    parser.add_argument("--holdout", type=int, default=5)
    parser.add_argument("--way", type=int, default=20)
    parser.add_argument("--shot", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    support, truth = task(args.data, args.holdout, args.way, args.shot)
    print(f"{describe_machine()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{args.way} classes x {args.shot} examples, {len(truth)} images to label")
    print(f"load before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    baseline: dict[str, float] = {}
    for model in args.models:
        figures = measure(model, support, truth, args.rounds)
        baseline = baseline or figures
        print(
            f"{model:<28} first pass {figures['images/s']:7.0f} images/s "
            f"({figures['images/s'] / baseline['images/s']:.2f}x)  "
            f"set_support {figures['set_support ms']:8.1f} ms "
            f"({figures['set_support ms'] / baseline['set_support ms']:.1f}x)  "
            f"relabel {figures['relabel ms']:7.1f} ms "
            f"({figures['relabel ms'] / baseline['relabel ms']:.1f}x)  "
            f"labels right {figures['accuracy']:.1f}%",
            flush=True,
        )
    print(f"load after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
