"""Labeling speed of each method's model beside omniglot-conv4-protonet, in the same run.

For each model, on Omniglot characters it never trained on: the time to adapt to a support
set (`set_support`, the leave-one-out calibration of `unknown` included) and to label a
folder (`label`, images read, embedded and scored; no disk cache), wall clock and this
process's CPU time, so a busy machine shows as wall >> CPU.

    OMP_NUM_THREADS=1 python benchmarks/method_label_speed.py \
        --data ../shared/data/omniglot/images_background --holdout 5 \
        --models omniglot-conv4-protonet omniglot-conv4-meta-lstm omniglot-conv4-metanet \
        --way 5 --shot 5
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from fewshot_gui.core.checkpoint import load_model
from fewshot_gui.core.datasets import ImagePool
from fewshot_gui.core.devices import describe_machine
from fewshot_gui.core.jobs import drive
from fewshot_gui.core.labeling import UNKNOWN, Labeler, SupportSet


def timed(job: object) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    drive(job)  # type: ignore[arg-type]
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--holdout", type=int, default=5)
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--way", type=int, default=20)
    parser.add_argument("--shot", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    pool = ImagePool.from_folder(args.data).split_holdout_groups(args.holdout)[1]
    rng = np.random.default_rng(args.seed)
    classes = rng.choice(len(pool.class_names), args.way, replace=False)
    support: dict[str, list[Path]] = {}
    truth: dict[Path, str] = {}
    for c in classes:
        paths = [Path(p) for p, label in zip(pool.paths, pool.labels, strict=True) if label == c]
        support[pool.class_names[c]] = paths[: args.shot]
        truth.update((p, pool.class_names[c]) for p in paths[args.shot :])
    images = sorted(truth)
    print(f"{describe_machine()}; torch threads {torch.get_num_threads()}; load {os.getloadavg()}")
    print(f"{args.way} classes x {args.shot} examples; {len(images)} images to label")
    for name in args.models:
        labeler = Labeler(load_model(name))
        adapt_wall, adapt_cpu = timed(labeler.set_support(SupportSet.from_mapping(support)))
        label_wall, label_cpu = timed(labeler.label(images))
        wall, cpu = time.perf_counter(), time.process_time()
        predictions = labeler.relabel()
        relabel_wall, relabel_cpu = time.perf_counter() - wall, time.process_time() - cpu
        right = sum(p.label == truth[p.path] for p in predictions)
        unknown = sum(p.label == UNKNOWN for p in predictions)
        labeler.set_unknown("off")
        right_off = sum(p.label == truth[p.path] for p in labeler.relabel())
        print(
            f"{name:<28} adapt {adapt_wall:6.2f} s (cpu {adapt_cpu:6.2f}); "
            f"label {len(images) / label_wall:7.1f} images/s "
            f"(cpu {len(images) / max(label_cpu, 1e-9):7.1f}); "
            f"relabel {relabel_wall:5.2f} s (cpu {relabel_cpu:5.2f}); "
            f"{100 * right / len(images):.1f}% right, {unknown} unknown; "
            f"unknown off: {100 * right_off / len(images):.1f}% right"
        )
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
